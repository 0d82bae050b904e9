"""The changed vhosts of a reused render (xdsgen/reuse.py): each built and rendered alone,
checked against what the kept render made of it, and spliced into the kept route files."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Optional, cast

from xdsgen.conventions import is_rds, versioned
from xdsgen.errors import Problem
from xdsgen.inventory import Inventory
from xdsgen.model import Model
from xdsgen.render import Rendered

Options = tuple[bool, Optional[str], bool]  # check_files, config_dir, servable
# Route keys whose effect stays within the vhost's own part of the route files.
ROUTE_KEYS = frozenset({"prefix", "path", "upstream", "rewrite", "websocket", "timeout", "retries"})
# What a vhost built alone is built without (its own upstreams and certificate are added).
_ELSEWHERE = ("http", "tcp", "udp", "tls_passthrough", "upstreams", "certificates")
_VHOST_LINE = "\n  - name: "
_VHOST_NAME = re.compile(r'  - name: "vhost(\d+)_')


def fragments(text: str) -> Optional[tuple[str, list[int], list[str]]]:
    """A route file's body as (header, vhost indices, fragments): header + the fragments
    joined is the body (the text after the version line). None: not a file of that shape."""
    body = text.partition("\n")[2]
    start = body.find(_VHOST_LINE)
    if start < 0:
        return None
    header, indices, parts = body[: start + 1], [], []
    at = start + 1
    while at < len(body):
        end = body.find(_VHOST_LINE, at)
        end = len(body) if end < 0 else end + 1
        match = _VHOST_NAME.match(body, at)
        if match is None:
            return None
        indices.append(int(match.group(1)))
        parts.append(body[at:end])
        at = end
    return header, indices, parts


def routes_of(item: Any) -> list[dict[str, Any]]:
    routes = item.get("routes") if isinstance(item, dict) else None
    return [r for r in routes if isinstance(r, dict)] if isinstance(routes, list) else []


def upstreams_of(item: Any) -> list[str]:
    """The upstream of each of a vhost's routes (inventory data)."""
    return [str(route.get("upstream")) for route in routes_of(item)]


def under(problem: Problem, index: int) -> bool:
    prefix = f"http[{index}]"
    return problem.path == prefix or problem.path.startswith((prefix + ".", prefix + "["))


def routes_only(old: Any, new: Any) -> bool:
    """Whether two vhosts differ only in routes whose keys stay within the route."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False
    if {k: v for k, v in old.items() if k != "routes"} != {
        k: v for k, v in new.items() if k != "routes"
    }:
        return False
    return (
        all(set(r) <= ROUTE_KEYS for r in routes_of(old) + routes_of(new))
        and len(routes_of(old)) == len(old.get("routes") or [])
        and len(routes_of(new)) == len(new.get("routes") or [])
    )


def _elsewhere(model: Model, index: int) -> list[tuple[str, str, Optional[str]]]:
    """The warnings of a vhost built alone about other parts, but that an upstream it
    names is unused (it is used elsewhere: Edits.same_upstreams_in_use)."""
    from xdsgen.errors import parse_path
    from xdsgen.model.upstreams import unused_message

    def unused(warning: Problem) -> bool:
        path = parse_path(warning.path)
        return (
            path is not None
            and len(path) == 2
            and path[0] == "upstreams"
            and warning.message == unused_message(str(path[1]))
        )

    return sorted(
        (w.path, w.message, w.hint) for w in model.warnings if not under(w, index) and not unused(w)
    )


class KeptVhosts(Sequence[Any]):
    """A route configuration's vhosts in a reused model: the kept ones (with the changed
    ones replaced), unpickled when first used. apply and render never use them (what they
    decided is in the files already); ~0.1 s at 10 000 vhosts is saved for nothing else.
    Behaves as the tuple it stands for (equality and hash included)."""

    def __init__(self, kept: Callable[[], dict[str, Any]], name: str, changed: dict[int, Any]):
        self._kept = kept
        self._name = name
        self._changed = changed
        self._items: Optional[tuple[Any, ...]] = None

    def items(self) -> tuple[Any, ...]:
        if self._items is None:
            self._items = tuple(self._changed.get(vh.index, vh) for vh in self._kept()[self._name])
        return self._items

    def __getitem__(self, index: Any) -> Any:
        return self.items()[index]

    def __len__(self) -> int:
        return len(self.items())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KeptVhosts):
            other = other.items()
        return isinstance(other, tuple) and self.items() == other

    def __hash__(self) -> int:
        return hash(self.items())

    def __repr__(self) -> str:
        return repr(self.items())

    def __reduce__(self) -> Any:
        return (tuple, (self.items(),))


class Edits:
    """The changed vhosts, each built and rendered alone, and what they replace."""

    def __init__(self, inventory: Inventory, options: Options, files: dict[str, str], meta: Any):
        self.inventory = inventory
        self.options = options
        self.base = files
        self.meta = meta
        self.counts: dict[str, int] = dict(meta["counts"])
        self._split: dict[str, Optional[tuple[str, list[int], list[str]]]] = {}
        self.fragments: dict[str, dict[int, str]] = {}  # route file -> index -> fragment
        self.vhosts: dict[str, dict[int, Any]] = {}  # route config -> index -> VirtualHost
        self.parsed: dict[str, dict[int, Any]] = {}  # route file -> index -> parsed vhost
        self.warnings: dict[int, list[Problem]] = {}

    def split(self, name: str) -> Optional[tuple[str, list[int], list[str]]]:
        if name not in self._split:
            self._split[name] = fragments(self.base[name]) if name in self.base else None
        return self._split[name]

    def rebuild(self, index: int, old: Any, new: Any) -> bool:
        """Build and render vhost `index` alone, old and new; False: reuse is not safe."""
        from xdsgen.parsed import document

        if not routes_only(old, new):
            return False
        names = set(upstreams_of(old) + upstreams_of(new))
        was, now = self._alone(index, old, names), self._alone(index, new, names)
        if was is None or now is None or not self._as_kept(index, *was):
            return False
        (old_model, old_files), (model, new_files) = was, now
        if set(old_files.files) != set(new_files.files) or any(
            old_files.files[n] != new_files.files[n] for n in old_files.files if not is_rds(n)
        ):
            return False
        if _elsewhere(old_model, index) != _elsewhere(model, index):
            return False  # the edit says something about another part
        for name, text in new_files.files.items():
            if not is_rds(name):
                continue
            found, base = fragments(text), self.split(name)
            if found is None or base is None or found[1] != [index] or found[0] != base[0]:
                return False
            self.fragments.setdefault(name, {})[index] = found[2][0]
            self.parsed.setdefault(name, {})[index] = document(text)["resources"][0][
                "virtual_hosts"
            ][0]
        for rc in model.route_configs:
            for vhost in rc.virtual_hosts:
                self.vhosts.setdefault(rc.name, {})[index] = vhost
        self.warnings[index] = [w for w in model.warnings if under(w, index)]
        if any(index in f for f in self.fragments.values()):  # served
            for name in upstreams_of(old):
                self.counts[name] = self.counts.get(name, 0) - 1
            for name in upstreams_of(new):
                self.counts[name] = self.counts.get(name, 0) + 1
        return True

    def _alone(self, index: int, item: Any, upstreams: set[str]) -> Optional[tuple[Model, Any]]:
        from xdsgen.model import build_part
        from xdsgen.render import render

        data = self.inventory.data
        part = {k: v for k, v in data.items() if k not in _ELSEWHERE}
        known = data.get("upstreams")
        if isinstance(known, dict):
            part["upstreams"] = {n: u for n, u in known.items() if n in upstreams}
        certificates, tls = data.get("certificates"), item.get("tls")
        if isinstance(certificates, dict):
            part["certificates"] = {tls: certificates[tls]} if tls in certificates else {}
        part["http"] = [item]
        check_files, config_dir, _ = self.options
        model = build_part(part, self.inventory, check_files, index)
        if model is None:
            return None
        if config_dir is not None:
            model = model.with_config_dir(config_dir)
        return model, render(model)

    def _as_kept(self, index: int, model: Model, rendered: Rendered) -> bool:
        """Whether vhost `index` built alone is what the kept render made of it."""
        from xdsgen.errors import format_path

        kept_in = set()
        for name in self.base:
            base = self.split(name) if is_rds(name) else None
            if base is not None and index in base[1]:
                kept_in.add(name)
        if kept_in != {n for n in rendered.files if is_rds(n)}:
            return False
        for name in kept_in:
            found, base = fragments(rendered.files[name]), self.split(name)
            assert base is not None
            if found is None or found[0] != base[0] or found[1] != [index]:
                return False
            if found[2][0] != base[2][base[1].index(index)]:
                return False
        mine = sorted((w.path, w.message, w.hint) for w in model.warnings if under(w, index))
        kept = sorted(
            (format_path(p), m, h) for p, m, h in self.meta["warnings"] if p[:2] == ("http", index)
        )
        return mine == kept

    def same_upstreams_in_use(self) -> bool:
        def used(counts: dict[str, int]) -> set[str]:
            return {name for name, count in counts.items() if count > 0}

        return used(self.counts) == used(self.meta["counts"])

    def files(self) -> Optional[dict[str, str]]:
        """Every file: the kept ones, route files with the new fragments in."""
        out = dict(self.base)
        for name, changes in self.fragments.items():
            base = self.split(name)
            if base is None:
                return None
            header, indices, parts = base
            text = versioned(header + "".join(changes.get(i, p) for i, p in zip(indices, parts)))
            again = fragments(text)
            if again is None or again[1] != indices:
                return None
            out[name] = text
        return out

    def model(self, kept: Model, vhosts: Callable[[], dict[str, Any]]) -> Model:
        """The kept model (its route configurations without their vhosts) with the vhosts
        in, the changed ones new, and the warnings located anew (lines may have moved).
        `vhosts`: the kept vhosts by route configuration."""
        configs = tuple(
            replace(
                rc,
                virtual_hosts=cast(Any, KeptVhosts(vhosts, rc.name, self.vhosts.get(rc.name, {}))),
            )
            for rc in kept.route_configs
        )
        warnings = [
            self.inventory.problem(path, message, hint, severity="warning")
            for path, message, hint in self.meta["warnings"]
            if not (path[:1] == ("http",) and len(path) > 1 and path[1] in self.warnings)
        ]
        for found in self.warnings.values():
            warnings += found
        return replace(kept, route_configs=configs, warnings=tuple(sorted(set(warnings))))

    def remember_digests(self, kept: Any, files: dict[str, str]) -> None:
        """The changed route files' digests (live/digests.py) from the kept ones, with the
        changed vhosts' own: the plan need not parse anything to compare them."""
        from xdsgen.live.digests import RouteDigest, remember
        from xdsgen.parsed import document

        if not isinstance(kept, dict):
            return
        for name, text in files.items():
            if not is_rds(name) or not isinstance(kept.get(name), dict):
                continue
            found = {rc: RouteDigest.from_json(d) for rc, d in kept[name].items()}
            digests = {rc: d for rc, d in found.items() if d is not None}
            if len(digests) != len(found):
                continue
            changes = self.parsed.get(name)
            if changes:
                resource = document(text)["resources"][0]  # remember() put it there
                hosts = {str(h.get("name")): h for h in changes.values()}
                rc = str(resource.get("name"))
                if rc not in digests:
                    continue
                digests[rc] = digests[rc].with_vhosts(resource, hosts)
            remember(text, digests)

    def remember(self, docs: Any, files: dict[str, str]) -> None:
        """Put every file's parsed form in the parse cache: the kept ones, and the changed
        route files as the kept parse with the changed vhosts' own parse in."""
        from xdsgen.conventions import file_version
        from xdsgen.parsed import remember

        if not isinstance(docs, dict) or set(docs) != set(files):
            return
        for name, text in files.items():
            doc = docs[name]
            changes = self.parsed.get(name)
            split = self.split(name)
            if changes and split is not None:
                resource = dict(doc["resources"][0])
                hosts = list(resource["virtual_hosts"])
                for place, index in enumerate(split[1]):
                    if index in changes:
                        hosts[place] = changes[index]
                resource["virtual_hosts"] = hosts
                doc = {**doc, "version_info": file_version(text), "resources": [resource]}
            remember(text, doc)
