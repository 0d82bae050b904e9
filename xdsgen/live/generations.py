"""Directory mode's plan: the generations (whole sets of files) apply swaps in, one
after the other, each confirmed before the next (live/swap.py writes them).

When `..data` moves, Envoy re-reads every file, in an order it does not promise: one
inotify instance per subscription, all woken by the same rename (Envoy 1.40 was seen
reloading the newest subscription first: routes, then listeners, then clusters, the
reverse of make-before-break). So every generation must be safe to load in any order
after the one before it:

  A. clusters (old and new): the files on disk, with cds.yaml holding the new clusters
     plus the old ones the running listeners and routes use. Only cds.yaml changes.
  B. the new listeners, routes and secrets, with A's clusters, and the rds_/sds_ files the
     running listeners read kept one more generation. Whatever Envoy loads first, every
     cluster either generation names exists, and every file either one reads is there.
  C. the rendered files: the clusters and files nothing uses any more are gone. Only
     cds.yaml shrinks, and only by what B's listeners and routes no longer name.

A generation equal to the one before it is left out: a route edit is one swap (B), a new
upstream used by a new route two (A, B), a renamed one three. `render` (no Envoy to
confirm) writes B alone: `one_generation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

from xdsgen.conventions import (
    CDS_FILE,
    EMPTY_BODY,
    LDS_FILE,
    is_config_file,
    is_rds,
    is_sds,
    versioned,
)
from xdsgen.live.certs import CertReload
from xdsgen.live.plan import Previous, Step, changed_names, cluster_references, union_cds
from xdsgen.parsed import resources_of

Files = dict[str, str]


def _kept(old: Mapping[str, str], new: Mapping[str, str]) -> Files:
    """The rds_/sds_ files the running listeners read that the new config drops: kept one
    generation, so that a listener Envoy has not replaced yet never reads a missing file."""
    from xdsgen.live.confirm import subscriptions

    read = subscriptions(old.get(LDS_FILE))
    return {n: t for n, t in old.items() if (is_rds(n) or is_sds(n)) and n not in new and n in read}


def _bridge_cds(old: Mapping[str, str], new: Mapping[str, str], previous: Previous) -> str:
    """cds.yaml with the new clusters plus the old ones the running config still uses."""
    running = [old.get(LDS_FILE), *(t for n, t in old.items() if is_rds(n))]
    union = union_cds(old.get(CDS_FILE), new[CDS_FILE], cluster_references(running), previous)
    return union if union is not None else new[CDS_FILE]


def _target(old: Mapping[str, str], new: Mapping[str, str]) -> Files:
    target = dict(new)
    for name in (CDS_FILE, LDS_FILE):
        # Envoy never notices a missing file: "no clusters" is said with an empty list.
        if name not in target and name in old:
            target[name] = versioned(EMPTY_BODY)
    return target


def one_generation(
    old_files: Mapping[str, str], new_files: Mapping[str, str], previous: Previous = None
) -> Files:
    """Generation B alone (render): the new files, the old clusters and the rds_/sds_ files
    the files on disk still use kept until the next one."""
    old = {n: t for n, t in old_files.items() if is_config_file(n)}
    target = _target(old, new_files)
    if CDS_FILE not in target:
        return target
    return {**target, **_kept(old, target), CDS_FILE: _bridge_cds(old, target, previous)}


def _same_clusters(a: Optional[str], b: Optional[str]) -> bool:
    """The same clusters, whatever the order or version line (union_cds reorders)."""
    first, second = resources_of(a), resources_of(b)
    if first is None or second is None:
        return a == b
    return {str(r.get("name")): r for r in first} == {str(r.get("name")): r for r in second}


def generation_step(what: str, before: Mapping[str, str], after: Mapping[str, str]) -> Step:
    """A swap from `before` to `after`, confirmed like a final rename step: every file the
    new listeners read at its own version, the changed ones freshly read."""
    lds = after.get(LDS_FILE)
    return Step(
        what,
        writes=tuple(sorted((n, t) for n, t in after.items() if before.get(n) != t)),
        removes=tuple(sorted(n for n in before if n not in after)),
        lds_before=lds,
        final=True,
        causes=changed_names(before.get(CDS_FILE), after.get(CDS_FILE, ""))
        | changed_names(before.get(LDS_FILE), lds or ""),
        generation=tuple(sorted(after.items())),
    )


def plan_generations(
    old_files: Mapping[str, str],
    new_files: Mapping[str, str],
    reloads: tuple[CertReload, ...] = (),
    stale: tuple[str, ...] = (),
    previous_clusters: Previous = None,
) -> list[Step]:
    """The swaps from the files on disk to the new ones (see the module doc); certificates
    renewed in place are re-read after A. `stale` files (Envoy runs another version) are
    re-read with any swap; with no other change, one swap of the same files does it."""
    old = {n: t for n, t in old_files.items() if is_config_file(n)}
    target = _target(old, new_files)
    candidates: list[tuple[str, Files]] = []
    if CDS_FILE in target:
        bridge_cds = _bridge_cds(old, target, previous_clusters)
        a = {**old, CDS_FILE: bridge_cds}
        b = {**target, **_kept(old, target), CDS_FILE: bridge_cds}
        others_change = {n: t for n, t in a.items() if n != CDS_FILE} != {
            n: t for n, t in b.items() if n != CDS_FILE
        }
        if others_change and not _same_clusters(old.get(CDS_FILE), bridge_cds):
            candidates.append(("clusters (old and new)", a))
        candidates.append(("listeners, routes and secrets (old clusters kept)", b))
    candidates.append(("without what nothing uses", target))
    steps: list[Step] = []
    now: Files = old
    for what, files in candidates:
        if files != now:
            steps.append(generation_step(what, now, files))
            now = files
        if reloads and what.startswith("clusters"):
            steps.append(Step("certificates", reloads=reloads, lds_before=now.get(LDS_FILE)))
            reloads = ()
    if reloads:
        steps.insert(0, Step("certificates", reloads=reloads, lds_before=old.get(LDS_FILE)))
    if not steps and stale:
        steps.append(
            Step(
                "the same files again (Envoy runs other versions)",
                writes=tuple(sorted((n, target[n]) for n in stale if n in target)),
                lds_before=target.get(LDS_FILE),
                final=True,
                generation=tuple(sorted(target.items())),
            )
        )
    return steps
