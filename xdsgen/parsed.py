"""xDS files as data, parsed once per process.

render's verify already parses every file it writes; the plan, the confirmer and the
envoy check need the same resources. They share one cache keyed by the text itself (a
rendered file is one string object passed around, so its hash is computed once), so a
no-op apply parses each rendered file once and each file on disk once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Optional

_CACHE: OrderedDict[str, Any] = OrderedDict()
_CACHE_FILES = 256  # files; a 10 000-vhost config is ~20 of them


def remember(text: str, document: Any) -> None:
    _CACHE[text] = document
    _CACHE.move_to_end(text)
    while len(_CACHE) > _CACHE_FILES:
        _CACHE.popitem(last=False)


def retain(texts: Iterable[str]) -> None:
    """Forget every file but `texts`. `apply --watch` calls it after each apply with the
    files on disk and the ones just rendered: the next plan compares nothing else, and a
    long-lived watcher must not keep the parsed files of every config it ever applied
    (at 10 000 vhosts one route file parsed is ~25 MB)."""
    keep = set(texts)
    for text in [t for t in _CACHE if t not in keep]:
        del _CACHE[text]


def load_yaml(text: str) -> Any:
    """xdsgen's own files by its strict subset parser (same result as PyYAML whenever it
    accepts a text, several times faster); anything else, e.g. a hand-edited file, by
    PyYAML. Raises ValueError or yaml.YAMLError."""
    from xdsgen.yamlsubset import SubsetError, parse

    try:
        return parse(text)
    except SubsetError:
        pass
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def is_parsed(text: str) -> bool:
    """Whether `text` is in the cache (document() would not parse it)."""
    return text in _CACHE


def document(text: str) -> Any:
    """The parsed file (cached; callers must not change it)."""
    found = _CACHE.get(text, _CACHE)
    if found is not _CACHE:
        return found
    doc = load_yaml(text)
    remember(text, doc)
    return doc


def resources_of(text: Optional[str]) -> Optional[list[dict[str, Any]]]:
    """The resources of one xDS file; [] when absent, None when it does not parse."""
    if text is None:
        return []
    import yaml

    try:
        doc = document(text)
    except (ValueError, RecursionError, yaml.YAMLError):  # not a file we can reason about
        return None
    if not isinstance(doc, dict):
        return None
    items = doc.get("resources") or []
    if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
        return None
    return items
