"""The draft's `patches:`: fields the inventory cannot say, carried over from the original
where a patch makes the draft do what the original does, and only there.

The readers offer each such field as a patch on the object it belongs to (carrying.py);
the comparer pairs every original object with the draft objects that answered the same
question (same socket, server name, host, path). A field becomes a patch on each paired
draft resource. The patched draft is then rendered and compared again: a patch stays only
if every pairing of its resource now shows the original's field (a vhost the draft shares
between two original vhosts that disagree gets neither), the inventory accepts it and, when
an Envoy binary is at hand, `envoy --mode validate` accepts the patched render. A
difference is resolved only when every pairing of its original object shows the field; any
other stays listed, as loud as it was.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from xdsgen.importer.differences import Difference, Report, printable
from xdsgen.importer.semantics import Cluster, Hcm, Listener, Route, Vhost
from xdsgen.importer.shapes import as_list

KINDS = ("cluster", "listener", "connection_manager", "route_config", "vhost", "route")
MAX_ROUNDS = 12
Slot = tuple[str, str, str]  # kind, draft resource, field
# Keys whose string value names a cluster: a patch naming one the draft has not (or has
# under another name) would point at nothing.
_CLUSTER_KEYS = ("cluster", "cluster_name", "collector_cluster")


@dataclass
class Evaluation:
    """A draft rendered and compared with the original."""

    report: Report
    pairs: list[tuple[Any, Any]]


@dataclass
class WrittenPatch:
    kind: str
    target: str
    merge: dict[str, Any]
    fields: list[str]
    origins: list[str] = field(default_factory=list)  # where each field came from

    def line(self) -> str:
        kind = self.kind.replace("_", " ")
        return printable(f"patched: {kind} {self.target}: {', '.join(self.fields)}")

    def entry(self) -> dict[str, Any]:
        return {self.kind: self.target, "merge": self.merge}


@dataclass
class _Candidate:
    merge: Any
    order: tuple[int, ...] = ()
    origins: list[str] = field(default_factory=list)
    # The original objects (and their field) this patch is for.
    serves: list[tuple[Any, tuple[str, str]]] = field(default_factory=list)


def target_of(draft_object: Any, kind: str) -> Optional[str]:
    """The name a patch of `kind` gives the draft resource `draft_object` was read from."""
    if kind in ("cluster", "listener") and isinstance(draft_object, (Cluster, Listener)):
        return draft_object.name or None
    if kind == "vhost" and isinstance(draft_object, Vhost):
        return draft_object.name or None
    if isinstance(draft_object, Hcm):
        if kind == "route_config":
            return draft_object.route_config or None
        chain = draft_object.chain
        if kind == "connection_manager" and chain is not None and chain.listener is not None:
            return chain.listener.name or None
    if kind == "route" and isinstance(draft_object, Route):
        vhost = draft_object.vhost
        if vhost is not None and vhost.name and draft_object.name:
            return f"{vhost.name}/{draft_object.name}"
    return None


def _partners(pairs: list[tuple[Any, Any]]) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = defaultdict(list)
    for ours, theirs in pairs:
        if not any(theirs is known for known in found[id(ours)]):
            found[id(ours)].append(theirs)
    return found


def _names_ok(value: Any, clusters: set[str]) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if key in _CLUSTER_KEYS and isinstance(inner, str) and inner not in clusters:
                    return False
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
    return True


def propose(
    differences: list[Difference], pairs: list[tuple[Any, Any]], clusters: set[str]
) -> dict[Slot, _Candidate]:
    """Each offered field as a patch on every draft resource its object was paired with;
    a field two originals give one draft resource differently is offered to neither."""
    partners = _partners(pairs)
    found: dict[Slot, _Candidate] = {}
    conflicts: set[Slot] = set()
    for difference in differences:
        offer = difference.carry
        if offer is None or difference.anchor is None or not _names_ok(offer.merge, clusters):
            continue
        for theirs in partners.get(id(difference.anchor), []):
            target = target_of(theirs, offer.kind)
            if target is None:
                continue
            slot = (offer.kind, target, offer.key)
            merge = _extended(offer, theirs)
            candidate = found.setdefault(slot, _Candidate(merge, offer.order))
            if candidate.merge != merge:
                conflicts.add(slot)
            if difference.where not in candidate.origins:
                candidate.origins.append(difference.where)
            candidate.serves.append((difference.anchor, (offer.kind, offer.key)))
    return {slot: c for slot, c in found.items() if slot not in conflicts}


def _extended(offer: Any, theirs: Any) -> Any:
    """An extending offer's lists after what the draft's resource has there already."""
    if not offer.extends:
        return offer.merge
    raw = theirs.route_headers if isinstance(theirs, Hcm) else theirs.raw
    own = raw if isinstance(raw, dict) else {}
    return {key: [*as_list(own.get(key)), *value] for key, value in offer.merge.items()}


def failing(candidates: dict[Slot, _Candidate], pairs: list[tuple[Any, Any]]) -> set[Slot]:
    """Patches some pairing contradicts: the draft's resource shows a field its original
    has not (or another value), or the patch did not give it the original's."""
    bad: set[Slot] = set()
    for ours, theirs in pairs:
        for key in set(ours.extras) | set(theirs.extras):
            if _same(ours.extras.get(key), theirs.extras.get(key)):
                continue
            kind, name = key
            target = target_of(theirs, kind)
            if target is not None and (kind, target, name) in candidates:
                bad.add((kind, target, name))
    return bad


def _same(ours: Any, theirs: Any) -> bool:
    return bool(ours == theirs)


def resolver(pairs: list[tuple[Any, Any]]) -> Callable[[Any, tuple[str, str]], bool]:
    """Whether an original object's field is carried: every draft object paired with it
    (at least one) shows the same."""
    partners = _partners(pairs)

    def resolved(ours: Any, key: tuple[str, str]) -> bool:
        found = partners.get(id(ours), [])
        return bool(found) and all(_same(ours.extras.get(key), t.extras.get(key)) for t in found)

    return resolved


def written(candidates: dict[Slot, _Candidate]) -> list[WrittenPatch]:
    """One patch per draft resource, its fields merged in the original's order."""
    grouped: dict[tuple[str, str], WrittenPatch] = {}

    def rank(item: tuple[Slot, _Candidate]) -> tuple[Any, ...]:
        (kind, target, name), candidate = item
        return (KINDS.index(kind), target, candidate.order, name)

    for (kind, target, name), candidate in sorted(candidates.items(), key=rank):
        patch = grouped.setdefault((kind, target), WrittenPatch(kind, target, {}, []))
        patch.merge = _combined(patch.merge, candidate.merge)
        patch.fields.append(name)
        patch.origins.extend(o for o in candidate.origins if o not in patch.origins)
    return list(grouped.values())


def _combined(ours: Any, theirs: Any) -> Any:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = dict(ours)
        for key, value in theirs.items():
            out[key] = _combined(out[key], value) if key in out else value
        return out
    return theirs


# --------------------------------------------------------------------------- proving


@dataclass
class Prover:
    """Find the patches that carry over what they promise (see the module docstring).

    evaluate: the draft with these patches, rendered and compared with the original.
    invalid: the indexes of the patches the inventory's checks refuse.
    refusal: Envoy's reason for refusing the draft with these patches (None: accepted);
    None when there is no Envoy binary here (drafts.EnvoyCheck).
    """

    evaluate: Callable[[list[WrittenPatch]], Evaluation]
    invalid: Callable[[list[WrittenPatch]], set[int]]
    refusal: Optional[Callable[[list[WrittenPatch]], Optional[str]]]
    clusters: set[str]
    notes: list[tuple[str, str]] = field(default_factory=list)  # (where, message)

    def run(self, first: Evaluation) -> tuple[list[WrittenPatch], Evaluation]:
        offered = first.report.differences + first.report.offers
        candidates = propose(offered, first.pairs, self.clusters)
        for _ in range(MAX_ROUNDS):
            if not candidates:
                return [], first
            patches = written(candidates)
            refused = self.invalid(patches)
            if refused:
                self._drop(candidates, [patches[i] for i in refused])
                continue
            evaluation = self.evaluate(patches)
            bad = failing(candidates, evaluation.pairs)
            resolved = resolver(evaluation.pairs)
            # A patch that carries nothing for anyone (its resource no longer answers
            # what its original did) would only be noise.
            bad.update(
                slot
                for slot, candidate in candidates.items()
                if not any(resolved(ours, key) for ours, key in candidate.serves)
            )
            bad.update(_changed_behaviour(first, evaluation, candidates))
            if bad:
                for slot in bad:
                    del candidates[slot]
                continue
            if self.refusal is not None and self._envoy_refuses(candidates, patches):
                continue
            return patches, evaluation
        return [], first

    def _drop(self, candidates: dict[Slot, _Candidate], patches: list[WrittenPatch]) -> None:
        for patch in patches:
            for name in patch.fields:
                candidates.pop((patch.kind, patch.target, name), None)

    def _envoy_refuses(
        self, candidates: dict[Slot, _Candidate], patches: list[WrittenPatch]
    ) -> bool:
        """Drop the fields Envoy refuses, each tried alone when all together are refused;
        whether anything was dropped."""
        assert self.refusal is not None
        reason = self.refusal(patches)
        if reason is None:
            return False
        if self.refusal([]) is not None:
            return False  # the draft itself is refused: not the patches' doing
        refused: list[Slot] = []
        for patch in patches:
            if self.refusal([patch]) is None:
                continue
            for name in patch.fields:
                slot = (patch.kind, patch.target, name)
                alone = self.refusal(written({slot: candidates[slot]}))
                if alone is not None:
                    refused.append(slot)
                    self.notes.append(("", _refused_note(slot, alone)))
        if not refused:  # only together: keep none of them
            refused = list(candidates)
            self.notes.append(("", f"the patches are left out: Envoy refuses them: {reason}"))
        for slot in refused:
            del candidates[slot]
        return True


def _changed_behaviour(
    first: Evaluation, evaluation: Evaluation, candidates: dict[Slot, _Candidate]
) -> set[Slot]:
    """The patches to blame for answers the unpatched draft did not give (a listener filter
    list without the TLS inspector changes which chain a server name reaches): those on
    the resource such a difference names, else all of them."""

    def answers(report: Report) -> set[tuple[str, str, str]]:
        return {(d.topic, d.where, d.message) for d in report.differences if d.carry is None}

    before = answers(first.report)
    new = [
        d
        for d in evaluation.report.differences
        if d.carry is None and (d.topic, d.where, d.message) not in before
    ]
    if not new:
        return set()
    names = {d.resource.name for d in new if d.resource is not None and d.resource.name}
    names |= {name.split("/", 1)[0] for name in names}  # a route's vhost
    blamed = {slot for slot in candidates if slot[1] in names}
    return blamed or set(candidates)


def _refused_note(slot: Slot, reason: str) -> str:
    kind, target, name = slot
    return (
        f"{name} is not patched into {kind.replace('_', ' ')} {target}: Envoy refuses it: {reason}"
    )


# --------------------------------------------------------------------------- settling


def settle(report: Report, pairs: list[tuple[Any, Any]]) -> None:
    """Drop the differences (and notes) a patch resolved; name what a patch added that the
    original has not (none, once the prover is done: a safety net)."""
    resolved = resolver(pairs)
    topics = {(d.carry.kind, d.carry.key): d.topic for d in report.differences if d.carry}
    report.differences = [
        d
        for d in report.differences
        if d.carry is None
        or d.anchor is None
        or not resolved(d.anchor, (d.carry.kind, d.carry.key))
    ]
    for note, (ours, key) in report.unless.items():
        if resolved(ours, key) and note in report.notes:
            report.notes.remove(note)
    for ours, theirs in pairs:
        for key in sorted(set(theirs.extras) - set(ours.extras)):
            report.differ(
                topics.get(key, "other"),
                ours.where,
                f"a patch gives the draft's {target_of(theirs, key[0]) or key[0]} {key[1]}, "
                "which the original has not here",
            )
