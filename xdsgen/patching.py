"""Patches merged into the rendered files: the last step of render, after the templates'
output has been verified against the model.

A JSON merge patch (RFC 7386): mappings merge key by key, anything else replaces, null
removes a key. A patched file is written from data (yamlsubset.dump: every string
double-quoted), parsed back and compared, like every file xdsgen writes.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from xdsgen import conventions as xds
from xdsgen.errors import RenderError

HCM = "envoy.filters.network.http_connection_manager"


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386: the patched value (target is not changed)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def _each_named(items: list[Any], name: str, change: Callable[[dict[str, Any]], Any]) -> int:
    count = 0
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == name:
            items[index] = change(item)
            count += 1
    return count


def _patch_docs(docs: dict[str, Any], patch: Any) -> int:
    """Apply one patch to the parsed files it concerns; how many resources it changed."""
    kind, target, changes = patch.kind, patch.target, patch.merge
    if kind == "cluster":
        return _each_named(docs[xds.CDS_FILE]["resources"], target, lambda r: merge(r, changes))
    if kind == "listener":
        return _each_named(docs[xds.LDS_FILE]["resources"], target, lambda r: merge(r, changes))
    if kind == "connection_manager":

        def in_listener(listener: dict[str, Any]) -> dict[str, Any]:
            for chain in listener.get("filter_chains") or []:
                for network_filter in chain.get("filters") or []:
                    if network_filter.get("name") == HCM:
                        network_filter["typed_config"] = merge(
                            network_filter["typed_config"], changes
                        )
            return listener

        return _each_named(docs[xds.LDS_FILE]["resources"], target, in_listener)
    count = 0
    for name, doc in docs.items():
        if not xds.is_rds(name):
            continue
        (route_config,) = doc["resources"]
        if kind == "route_config":
            if route_config["name"] == target:
                doc["resources"] = [merge(route_config, changes)]
                count += 1
            continue
        vhosts = route_config["virtual_hosts"]
        if kind == "vhost":
            count += _each_named(vhosts, target, lambda v: merge(v, changes))
            continue
        vhost_name, _, route_name = target.partition("/")
        for vhost in vhosts:
            if vhost["name"] == vhost_name:
                count += _each_named(vhost["routes"], route_name, lambda r: merge(r, changes))
    return count


def apply_patches(files: dict[str, str], patches: tuple[Any, ...]) -> dict[str, str]:
    """The files with every patch merged in (only the files that change are rewritten)."""
    if not patches:
        return files
    from xdsgen.parsed import document, remember
    from xdsgen.yamlsubset import dump, parse

    originals = {name: document(text) for name, text in files.items()}
    docs = copy.deepcopy(originals)
    for patch in patches:
        if _patch_docs(docs, patch) == 0:  # the model checked the targets: a bug if none
            raise RenderError(f"patch on {patch.kind} {patch.target!r} matched nothing")
    patched = dict(files)
    for name, doc in docs.items():
        if doc == originals[name]:
            continue
        body = dump({k: v for k, v in doc.items() if k != "version_info"})
        text = xds.versioned(body)
        try:
            back = parse(text, floats=True)
        except ValueError as exc:
            raise RenderError(f"{name}: the patched file does not parse back: {exc}") from None
        if {k: v for k, v in back.items() if k != "version_info"} != {
            k: v for k, v in doc.items() if k != "version_info"
        }:
            raise RenderError(f"{name}: the patched file means something else than the patch")
        remember(text, back)
        patched[name] = text
    return patched
