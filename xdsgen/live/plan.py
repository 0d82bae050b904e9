"""What an apply would change, resource by resource, and the ordered steps that change it.

Both are pure functions of the files (name -> text) on disk and the rendered ones, so
they are tested without Envoy, and `rollback` is the same transition run backwards.

Make-before-break order (each step confirmed through Envoy's admin before the next):
  1. CDS with the new clusters plus the old ones the running listeners and routes still use
  2. SDS files that are new or changed (a new listener's secret must exist first)
  3. certificates renewed in place (see live/certs.py)
  4. RDS files that are new or changed (a new listener's routes must exist first)
  5. LDS
  6. CDS without the removed clusters
  7. rds_/sds_ files xdsgen wrote that no listener refers to any more are removed
Removing a cluster before the routes that use it are gone would fail requests; adding a
listener before its rds_/sds_ files exist would leave it warming or refused.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from xdsgen.conventions import (
    CDS_FILE,
    EMPTY_BODY,
    KINDS,
    LDS_FILE,
    is_config_file,
    is_rds,
    is_sds,
    kind_of,
    versioned,
)
from xdsgen.live.certs import CertReload
from xdsgen.live.digests import RouteDigest
from xdsgen.parsed import resources_of

ACTIONS = ("+", "~", "-")
# The clusters of the last confirmed config, or a function that reads them when needed.
Previous = Union[None, list[dict[str, Any]], Callable[[], Optional[list[dict[str, Any]]]]]


# The digests of a route file apply stored before (live/digests.py), or None.
Known = Callable[[str], Optional[dict[str, Any]]]


def named_resources(
    files: Mapping[str, str], known: Optional[Known] = None
) -> tuple[dict[tuple[str, str], Any], set[str]]:
    """(kind, name) -> resource over every file; and the kinds whose files did not parse.
    With `known`, a route file not parsed yet whose digests are stored is represented by
    them (a RouteDigest per route configuration) instead of being parsed."""
    found: dict[tuple[str, str], Any] = {}
    unreadable: set[str] = set()
    for file_name, text in files.items():
        if not is_config_file(file_name):
            continue
        kind = kind_of(file_name)
        digests = known(text) if known is not None and is_rds(file_name) else None
        if digests is not None:
            found.update((("route", name), d) for name, d in digests.items())
            continue
        items = resources_of(text)
        if items is None:
            unreadable.add(kind)
            continue
        for item in items:
            found[(kind, str(item.get("name", "")))] = item
    return found, unreadable


def cluster_references(texts: list[Optional[str]]) -> Optional[set[str]]:
    """Every cluster name the given LDS/RDS texts mention (route, tcp_proxy, udp route, an
    auth service...), or None when one of them does not parse (then assume all are used)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("cluster", "cluster_name") and isinstance(value, str):
                    found.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for text in texts:
        items = resources_of(text)
        if items is None:
            return None
        walk(items)
    return found


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Change:
    """One resource that changes: action "+", "~" or "-"; kind cluster/listener/route/secret
    (or "file" for a file of ours whose resources could not be read)."""

    action: str
    kind: str
    name: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.action} {self.kind} {self.name}" + (
            f" ({self.detail})" if self.detail else ""
        )


@dataclass(frozen=True)
class Plan:
    old_files: dict[str, str]  # on disk now (the files xdsgen manages there)
    new_files: dict[str, str]  # what the config directory should hold
    changes: tuple[Change, ...]
    cert_reloads: tuple[CertReload, ...] = ()
    # Files whose content is right but which Envoy does not run (edited in place, or
    # rejected once): written again so that Envoy reads them.
    stale: tuple[str, ...] = ()

    @property
    def writes(self) -> dict[str, str]:
        return {
            n: t for n, t in self.new_files.items() if self.old_files.get(n) != t or n in self.stale
        }

    @property
    def removes(self) -> list[str]:
        return sorted(n for n in self.old_files if n not in self.new_files)

    @property
    def empty(self) -> bool:
        return not self.writes and not self.removes and not self.cert_reloads

    def lines(self) -> list[str]:
        return [c.line() for c in self.changes]

    def totals(self) -> str:
        counts = {a: sum(1 for c in self.changes if c.action == a) for a in ACTIONS}
        return f"{counts['+']} to add, {counts['~']} to change, {counts['-']} to remove"

    def diff(self) -> str:
        """A unified diff of every file that changes (what --dry-run --diff prints)."""
        out: list[str] = []
        for name in sorted(set(self.writes) | set(self.removes)):
            old = self.old_files.get(name)
            new = self.new_files.get(name)
            out.extend(
                difflib.unified_diff(
                    (old or "").splitlines(keepends=True),
                    (new or "").splitlines(keepends=True),
                    fromfile=f"a/{name}" if old is not None else "/dev/null",
                    tofile=f"b/{name}" if new is not None else "/dev/null",
                )
            )
        return "".join(line if line.endswith("\n") else line + "\n" for line in out)

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": [
                {"action": c.action, "kind": c.kind, "name": c.name, "detail": c.detail}
                for c in self.changes
            ],
            "writes": sorted(self.writes),
            "removes": self.removes,
        }


def _differences(kind: str, old: Any, new: Any) -> str:
    """A short hint at what changed inside a resource."""
    if isinstance(old, RouteDigest) and isinstance(new, RouteDigest):
        now, was = new.vhosts, old.vhosts
        parts = [f"+vhost {n}" for n in sorted(set(now) - set(was))]
        parts += [f"-vhost {n}" for n in sorted(set(was) - set(now))]
        parts += [
            f"~vhost {n}" + (" (htpasswd file changed)" if new.users_only(old, n) else "")
            for n in sorted(set(was) & set(now))
            if was[n] != now[n]
        ]
        return ", ".join(parts)
    if kind == "route":
        old_vh = {v.get("name"): v for v in old.get("virtual_hosts") or []}
        new_vh = {v.get("name"): v for v in new.get("virtual_hosts") or []}
        parts = [f"+vhost {n}" for n in sorted(set(new_vh) - set(old_vh), key=str)]
        parts += [f"-vhost {n}" for n in sorted(set(old_vh) - set(new_vh), key=str)]
        parts += [
            f"~vhost {n}"
            + (" (htpasswd file changed)" if _users_only(old_vh[n], new_vh[n]) else "")
            for n in sorted(set(old_vh) & set(new_vh), key=str)
            if old_vh[n] != new_vh[n]
        ]
        return ", ".join(parts)
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(keys)


def _users_only(old: Any, new: Any) -> bool:
    """Whether two vhosts differ only in their routes' metadata (an htpasswd file edited)."""
    from xdsgen.live.digests import without_route_metadata

    return isinstance(old, dict) and without_route_metadata(old) == without_route_metadata(new)


def _route_digests(files: Mapping[str, str]) -> dict[tuple[str, str], Any]:
    from xdsgen.live.digests import route_digests

    found: dict[tuple[str, str], Any] = {}
    for name, text in files.items():
        if is_rds(name):
            found.update((("route", n), d) for n, d in (route_digests(text) or {}).items())
    return found


def _unparsed(known: Known) -> Known:
    """`known`, but never for a text parsed already (an unchanged file: the render parsed
    it): comparing parsed resources is exact, and then free."""
    from xdsgen.parsed import is_parsed

    def lookup(text: str) -> Optional[dict[str, Any]]:
        return None if is_parsed(text) else known(text)

    return lookup


def _order(change: Change) -> tuple[int, str]:
    return (KINDS.index(change.kind) if change.kind in KINDS else len(KINDS), change.name)


def compute_plan(
    old_files: dict[str, str],
    new_files: dict[str, str],
    cert_reloads: tuple[CertReload, ...] = (),
    stale: Optional[dict[str, str]] = None,
    known: Optional[Known] = None,
) -> Plan:
    """`old_files`: the files of ours on disk (anything else is never touched);
    `stale`: file name -> the version Envoy runs instead of the one in the file;
    `known`: the stored digests of a route file (see named_resources)."""
    old_files = {n: t for n, t in old_files.items() if is_config_file(n)}
    old, unreadable = named_resources(old_files, None if known is None else _unparsed(known))
    new, _ = named_resources(new_files)
    # An old route known by its stored digests is compared digest to digest; one whose
    # file had none stored (left by a killed apply) was parsed, and is compared parsed.
    digests = (
        _route_digests(new_files) if any(isinstance(r, RouteDigest) for r in old.values()) else {}
    )
    changes = []
    for key in sorted(set(old) | set(new), key=lambda k: (KINDS.index(k[0]), k[1])):
        kind, name = key
        if key not in old:
            if kind in unreadable:
                changes.append(Change("~", kind, name, "the file on disk did not parse"))
            else:
                changes.append(Change("+", kind, name))
        elif key not in new:
            changes.append(Change("-", kind, name))
        else:
            was = old[key]
            now = digests.get(key, new[key]) if isinstance(was, RouteDigest) else new[key]
            if was != now:
                changes.append(Change("~", kind, name, _differences(kind, was, now)))
    # A removed file whose resources could not be read is still listed: no removal unsaid.
    for name in sorted(n for n in old_files if n not in new_files):
        if resources_of(old_files[name]) is None:
            changes.append(Change("-", "file", name, "it did not parse"))
    stale_names = tuple(
        sorted(n for n in (stale or {}) if n in new_files and old_files.get(n) == new_files[n])
    )
    listed = {(c.kind, c.name) for c in changes}
    for file_name in stale_names:
        kind = kind_of(file_name)
        running = (stale or {})[file_name] or "nothing"
        for item in resources_of(new_files[file_name]) or []:
            if (kind, str(item.get("name", ""))) not in listed:
                listed.add((kind, str(item.get("name", ""))))
                changes.append(
                    Change(
                        "~",
                        kind,
                        str(item.get("name", "")),
                        f"Envoy runs version {running}, not the file's",
                    )
                )
    changed_secrets = {c.name for c in changes if c.kind == "secret"}
    reloads = tuple(r for r in cert_reloads if r.secret not in changed_secrets)
    for reload in reloads:
        changes.append(Change("~", "secret", reload.secret, reload.reason))
    changes.sort(key=_order)
    return Plan(old_files, dict(new_files), tuple(changes), reloads, stale_names)


# --------------------------------------------------------------------------- the steps


@dataclass(frozen=True)
class Step:
    """Files written together (then confirmed together), or files removed, or certificates
    re-read. `what` names it for people: "clusters (old and new)", "listeners", ..."""

    what: str
    writes: tuple[tuple[str, str], ...] = ()
    removes: tuple[str, ...] = ()
    reloads: tuple[CertReload, ...] = ()
    # The LDS Envoy runs while this step is applied: which rds/sds files it subscribes to.
    lds_before: Optional[str] = None
    final: bool = False  # the LDS step: afterwards every subscription must match its file
    # Clusters or listeners this step adds or changes: only their warming is waited for
    # (a restore must not wait for a cluster whose DNS never answers, that it did not add).
    causes: frozenset[str] = frozenset()
    # Directory mode (live/generations.py): the whole set of files this step swaps in
    # (`writes`/`removes` then say what differs from the set before, for confirmation).
    generation: Optional[tuple[tuple[str, str], ...]] = None


def union_cds(
    old_text: Optional[str],
    new_text: str,
    referenced: Optional[set[str]] = None,
    previous: Previous = None,
) -> Optional[str]:
    """cds.yaml with every new cluster plus the old ones the new config drops that the
    running config still uses (`referenced`; None: all of them), or None when there is no
    such cluster (then the new file itself is the first step). `previous`: the clusters
    Envoy runs when the file on disk cannot tell (it does not parse), or a function that
    reads them (only called then)."""
    old = resources_of(old_text)
    if old is None:
        old = previous() if callable(previous) else previous
    new = resources_of(new_text)
    if not old or new is None:
        return None
    new_names = {r.get("name") for r in new}
    dropped = [
        r
        for r in old
        if r.get("name") not in new_names and (referenced is None or r.get("name") in referenced)
    ]
    if not dropped:
        return None
    from xdsgen.yamlsubset import dump

    return versioned(dump({"resources": [*new, *dropped]}))


def changed_names(old_text: Optional[str], new_text: str) -> frozenset[str]:
    old = {str(r.get("name")): r for r in resources_of(old_text) or []}
    return frozenset(
        str(r.get("name")) for r in resources_of(new_text) or [] if old.get(str(r.get("name"))) != r
    )


def plan_steps(
    old_files: dict[str, str],
    new_files: Mapping[str, str],
    reloads: tuple[CertReload, ...] = (),
    stale: tuple[str, ...] = (),
    previous_clusters: Previous = None,
) -> list[Step]:
    """The ordered steps from the files on disk to the new ones (see the module doc);
    `stale` files are written even though their content is unchanged."""
    old_files = {n: t for n, t in old_files.items() if is_config_file(n)}
    target = dict(new_files)
    for name in (CDS_FILE, LDS_FILE):
        # Envoy never notices a deleted file: "no clusters" is said with an empty list.
        if name not in target and name in old_files:
            target[name] = versioned(EMPTY_BODY)
    changed = {n: t for n, t in target.items() if old_files.get(n) != t or n in stale}
    lds_now = old_files.get(LDS_FILE)
    cds_now = old_files.get(CDS_FILE)
    steps: list[Step] = []

    final_cds = changed.get(CDS_FILE)
    if final_cds is not None:
        running = [lds_now, *(t for n, t in old_files.items() if is_rds(n))]
        union = union_cds(cds_now, final_cds, cluster_references(running), previous_clusters)
        first = union if union is not None else final_cds
        steps.append(
            Step(
                "clusters (old and new)" if union is not None else "clusters",
                writes=((CDS_FILE, first),),
                lds_before=lds_now,
                causes=changed_names(cds_now, first),
            )
        )
        if union is None:
            final_cds = None
        else:
            cds_now = union
    secrets = tuple(sorted((n, t) for n, t in changed.items() if is_sds(n)))
    if secrets:
        steps.append(Step("secrets", writes=secrets, lds_before=lds_now))
    if reloads:
        steps.append(Step("certificates", reloads=reloads, lds_before=lds_now))
    routes = tuple(sorted((n, t) for n, t in changed.items() if is_rds(n)))
    if routes:
        steps.append(Step("routes", writes=routes, lds_before=lds_now))
    if LDS_FILE in changed:
        steps.append(
            Step(
                "listeners",
                writes=((LDS_FILE, changed[LDS_FILE]),),
                lds_before=lds_now,
                final=True,
                causes=changed_names(lds_now, changed[LDS_FILE]),
            )
        )
        lds_now = changed[LDS_FILE]
    if final_cds is not None:
        steps.append(
            Step(
                "clusters",
                writes=((CDS_FILE, final_cds),),
                lds_before=lds_now,
                causes=changed_names(cds_now, final_cds),
            )
        )
    removes = tuple(sorted(n for n in old_files if n not in target))
    if removes:
        steps.append(Step("unused files", removes=removes, lds_before=lds_now))
    return steps
