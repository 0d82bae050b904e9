"""What an apply would change, resource by resource, and the ordered steps that change it.

Both are pure functions of the files (name -> text) on disk and the rendered ones, so
they are tested without Envoy, and `rollback` is the same transition run backwards.

Make-before-break order (each step confirmed through Envoy's admin before the next):
  1. CDS with the new clusters plus the old ones the running routes still use
  2. SDS files that are new or changed (a new listener's secret must exist first)
  3. certificates renewed in place (see apply.reload_certificates)
  4. RDS files that are new or changed (a new listener's routes must exist first)
  5. LDS
  6. CDS without the removed clusters
  7. rds_/sds_ files no listener refers to any more are removed
Removing a cluster before the routes that use it are gone would fail requests; adding a
listener before its rds_/sds_ files exist would leave it warming or refused.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from xdsgen.model import CDS_FILE, LDS_FILE

KIND_ORDER = ("cluster", "secret", "route", "listener")
ACTIONS = ("+", "~", "-")
_RDS_RE = re.compile(r"^rds_[^/]+\.yaml$")
_SDS_RE = re.compile(r"^sds_[^/]+\.yaml$")
# What Envoy is given for cds.yaml/lds.yaml when rolling back to "no such file": an empty
# set of resources is the closest config Envoy accepts (a deleted file is never noticed).
EMPTY_BODY = "resources: []\n"


def is_config_file(name: str) -> bool:
    return name in (CDS_FILE, LDS_FILE) or bool(_RDS_RE.match(name) or _SDS_RE.match(name))


def versioned(body: str) -> str:
    return f'version_info: "{hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]}"\n{body}'


def file_version(text: Optional[str]) -> Optional[str]:
    """The version_info of a file xdsgen wrote (its first line), or None."""
    if not text:
        return None
    first = text.split("\n", 1)[0]
    if first.startswith("version_info:"):
        value = first.split(":", 1)[1].strip()
        return value.strip("\"'")
    return None


def load_yaml(text: str) -> Any:
    # Files xdsgen wrote are read by its strict parser (same result as PyYAML whenever it
    # accepts a text, several times faster: the plan runs on every cron apply); anything
    # else, e.g. a hand-edited file, by PyYAML.
    from xdsgen.yamlsubset import SubsetError, parse

    try:
        return parse(text)
    except SubsetError:
        pass
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def resources_of(text: Optional[str]) -> Optional[list[dict[str, Any]]]:
    """The resources of one xDS file; [] when absent, None when it does not parse."""
    if text is None:
        return []
    try:
        doc = load_yaml(text)
    except Exception:  # any YAML error: the file is not one we can reason about
        return None
    if not isinstance(doc, dict):
        return None
    items = doc.get("resources") or []
    if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
        return None
    return items


def _kind_of(file_name: str) -> str:
    if file_name == CDS_FILE:
        return "cluster"
    if file_name == LDS_FILE:
        return "listener"
    return "route" if file_name.startswith("rds_") else "secret"


def named_resources(files: dict[str, str]) -> tuple[dict[tuple[str, str], Any], set[str]]:
    """(kind, name) -> resource over every file; and the kinds whose files did not parse."""
    found: dict[tuple[str, str], Any] = {}
    unreadable: set[str] = set()
    for file_name, text in files.items():
        if not is_config_file(file_name):
            continue
        kind = _kind_of(file_name)
        items = resources_of(text)
        if items is None:
            unreadable.add(kind)
            continue
        for item in items:
            found[(kind, str(item.get("name", "")))] = item
    return found, unreadable


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Change:
    """One resource that changes: action "+", "~" or "-"; kind cluster/listener/route/secret."""

    action: str
    kind: str
    name: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.action} {self.kind} {self.name}" + (
            f" ({self.detail})" if self.detail else ""
        )


@dataclass(frozen=True)
class CertReload:
    """A certificate whose files changed while its sds_ file did not: Envoy must re-read them."""

    secret: str
    cert: str
    key: str
    fingerprint: str
    reason: str = "certificate files changed"


@dataclass(frozen=True)
class Plan:
    old_files: dict[str, str]  # on disk now (config files only)
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
    if kind == "route":
        old_vh = {v.get("name"): v for v in old.get("virtual_hosts") or []}
        new_vh = {v.get("name"): v for v in new.get("virtual_hosts") or []}
        parts = [f"+vhost {n}" for n in sorted(set(new_vh) - set(old_vh), key=str)]
        parts += [f"-vhost {n}" for n in sorted(set(old_vh) - set(new_vh), key=str)]
        parts += [
            f"~vhost {n}"
            for n in sorted(set(old_vh) & set(new_vh), key=str)
            if old_vh[n] != new_vh[n]
        ]
        return ", ".join(parts)
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(keys)


def compute_plan(
    old_files: dict[str, str],
    new_files: dict[str, str],
    cert_reloads: tuple[CertReload, ...] = (),
    stale: dict[str, str] | None = None,
) -> Plan:
    """`stale`: file name -> the version Envoy runs instead of the one in the file."""
    old_files = {n: t for n, t in old_files.items() if is_config_file(n)}
    old, unreadable = named_resources(old_files)
    new, _ = named_resources(new_files)
    changes = []
    for key in sorted(set(old) | set(new), key=lambda k: (KIND_ORDER.index(k[0]), k[1])):
        kind, name = key
        if key not in old:
            if kind in unreadable:
                changes.append(Change("~", kind, name, "the file on disk did not parse"))
            else:
                changes.append(Change("+", kind, name))
        elif key not in new:
            changes.append(Change("-", kind, name))
        elif old[key] != new[key]:
            changes.append(Change("~", kind, name, _differences(kind, old[key], new[key])))
    stale_names = tuple(
        sorted(n for n in (stale or {}) if n in new_files and old_files.get(n) == new_files[n])
    )
    listed = {(c.kind, c.name) for c in changes}
    for file_name in stale_names:
        kind = _kind_of(file_name)
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
    changes.sort(key=lambda c: (KIND_ORDER.index(c.kind), c.name))
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
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


def union_cds(old_text: Optional[str], new_text: str) -> Optional[str]:
    """cds.yaml with every new cluster plus the old ones the new config drops, or None when
    no old cluster is dropped (then the new file itself is the first step)."""
    old = resources_of(old_text)
    new = resources_of(new_text)
    if not old or new is None:
        return None
    new_names = {r.get("name") for r in new}
    dropped = [r for r in old if r.get("name") not in new_names]
    if not dropped:
        return None
    import yaml

    # A transient file, never a template's output: safe_dump quotes whatever needs it.
    body = yaml.safe_dump(
        {"resources": new + dropped}, sort_keys=False, default_flow_style=False, width=1000
    )
    return versioned(body)


def plan_steps(
    old_files: dict[str, str],
    new_files: dict[str, str],
    reloads: tuple[CertReload, ...] = (),
    stale: tuple[str, ...] = (),
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
    steps: list[Step] = []

    final_cds = changed.get(CDS_FILE)
    if final_cds is not None:
        union = union_cds(old_files.get(CDS_FILE), final_cds)
        if union is not None:
            steps.append(
                Step("clusters (old and new)", writes=((CDS_FILE, union),), lds_before=lds_now)
            )
        else:
            steps.append(Step("clusters", writes=((CDS_FILE, final_cds),), lds_before=lds_now))
            final_cds = None
    secrets = tuple(sorted((n, t) for n, t in changed.items() if n.startswith("sds_")))
    if secrets:
        steps.append(Step("secrets", writes=secrets, lds_before=lds_now))
    if reloads:
        steps.append(Step("certificates", reloads=reloads, lds_before=lds_now))
    routes = tuple(sorted((n, t) for n, t in changed.items() if n.startswith("rds_")))
    if routes:
        steps.append(Step("routes", writes=routes, lds_before=lds_now))
    if LDS_FILE in changed:
        steps.append(
            Step(
                "listeners", writes=((LDS_FILE, changed[LDS_FILE]),), lds_before=lds_now, final=True
            )
        )
        lds_now = changed[LDS_FILE]
    if final_cds is not None:
        steps.append(Step("clusters", writes=((CDS_FILE, final_cds),), lds_before=lds_now))
    removes = tuple(sorted(n for n in old_files if n not in target))
    if removes:
        steps.append(Step("unused files", removes=removes, lds_before=lds_now))
    return steps
