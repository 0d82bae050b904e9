"""Patches: Envoy config the inventory cannot say, merged into named generated resources.

A patch is the user's own Envoy config: xdsgen checks only that its target is generated
(a patch that no longer matches is an error, never silently dropped); Envoy's validation
checks the rest before apply. The merging itself happens after rendering (xdsgen/patching.py).
"""

from __future__ import annotations

from typing import Any

from xdsgen.model.ir import Listener, Patch, RouteConfig
from xdsgen.model.problems import Problems
from xdsgen.schema_errors import suggest
from xdsgen.spec import Spec


def targets(
    clusters: set[str], listeners: list[Listener], route_configs: list[RouteConfig]
) -> dict[str, set[str]]:
    """Every name each kind of target can have in this model."""
    vhosts = {vh.name for rc in route_configs for vh in rc.virtual_hosts}
    routes = {
        f"{vh.name}/{route.name}"
        for rc in route_configs
        for vh in rc.virtual_hosts
        for route in vh.routes
    }
    return {
        "cluster": set(clusters),
        "listener": {item.name for item in listeners},
        "connection_manager": {item.name for item in listeners if item.http_chains},
        "route_config": {rc.name for rc in route_configs},
        "vhost": vhosts,
        "route": routes,
    }


def build(spec: Spec, names: dict[str, set[str]], problems: Problems) -> tuple[Patch, ...]:
    patches = []
    for patch in spec.patches:
        known = names[patch.kind]
        if patch.target not in known:
            problems.error(
                (*patch.path, patch.kind),
                f"{patch.kind.replace('_', ' ')} {patch.target!r} is not generated from this "
                "inventory: the patch would change nothing",
                suggest(patch.target, sorted(known))
                or "`xdsgen render INVENTORY --stdout` shows the generated names",
            )
            continue
        _check_nulls_in_lists(patch.merge, (*patch.path, "merge"), problems)
        patches.append(Patch(kind=patch.kind, target=patch.target, merge=patch.merge))
    return tuple(patches)


def _check_nulls_in_lists(value: Any, path: tuple[Any, ...], problems: Problems) -> None:
    """null removes a key; inside a list it means nothing Envoy could read."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_nulls_in_lists(item, (*path, key), problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if item is None:
                problems.error((*path, index), "null in a list: Envoy reads no such value")
            else:
                _check_nulls_in_lists(item, (*path, index), problems)
