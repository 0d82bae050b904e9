"""The resources an import starts from: what each given file is, and the files they name.

A file is a static bootstrap (its static_resources, and the LDS/CDS files its
dynamic_resources name), or a file-based xDS file (`resources:`: listeners, clusters,
route configurations, secrets, load assignments, in any mix), told apart by content. The
reader follows RDS, SDS and EDS paths through `Context.follow`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from xdsgen.errors import InventoryError, Problem
from xdsgen.importer.differences import Report
from xdsgen.importer.reading import Files
from xdsgen.importer.shapes import (
    as_list,
    as_map,
    integer,
    is_v2_type,
    message_name,
    text,
    type_url,
)

KINDS = {
    "Listener": "listeners",
    "Cluster": "clusters",
    "RouteConfiguration": "route_configs",
    "Secret": "secrets",
    "ClusterLoadAssignment": "assignments",
}
_BOOTSTRAP_KEYS = {"static_resources", "dynamic_resources", "admin", "node", "layered_runtime"}
# Bootstrap sections that do not change what the proxy serves (the draft's bootstrap comes
# from `xdsgen bootstrap`).
_BOOTSTRAP_QUIET = {
    "node",
    "admin",
    "static_resources",
    "dynamic_resources",
    "stats_config",
    "stats_sinks",
    "stats_flush_interval",
    "watchdog",
    "watchdogs",
    "cluster_manager",
    "layered_runtime",
    "overload_manager",
    "hds_config",
    "flags_path",
    "enable_dispatcher_stats",
    "header_prefix",
    "stats_server_version_override",
    "use_tcp_for_dns_lookups",
    "typed_dns_resolver_config",
    "bootstrap_extensions",
    "fatal_actions",
    "application_log_config",
}


@dataclass
class Item:
    data: dict[str, Any]
    source: str  # the file it came from, as the user named it (or as a config named it)


@dataclass
class Inputs:
    listeners: list[Item] = field(default_factory=list)
    clusters: list[Item] = field(default_factory=list)
    route_configs: list[Item] = field(default_factory=list)
    secrets: list[Item] = field(default_factory=list)
    assignments: list[Item] = field(default_factory=list)
    admin: Optional[tuple[str, int]] = None
    first: str = ""  # the first file given: drafts live beside it


class Context:
    """Everything the readers share: the files, the report, and lookups by name."""

    def __init__(self, files: Files, report: Report, inputs: Inputs):
        self.files = files
        self.report = report
        self.inputs = inputs
        self.v2 = False
        # Where each HTTP or TCP chain logs: (where, file or None, custom format?).
        self.access_logs: list[tuple[str, Optional[str], Union[bool, str]]] = []

    def follow(self, source: Any, what: str, referrer: str) -> tuple[Optional[list[Item]], str]:
        """The resources of the file a config source names (RDS, SDS, EDS, LDS, CDS), or
        None and why they cannot be read."""
        source_map = as_map(source)
        path = text(as_map(source_map.get("path_config_source")).get("path")) or text(
            source_map.get("path")
        )
        source_path = as_map(source_map.get("path_config_source"))
        watched = text(as_map(source_path.get("watched_directory")).get("path"))
        if watched:
            self.files.watched_dirs.append(watched)
        if not path:
            if source_map.get("ads") is not None or source_map.get("api_config_source"):
                return None, f"{what} comes from a management server"
            return None, f"{what} has no file path"
        found = self.files.find(path, referrer)
        if found is None:
            return None, f"{what} file {path} not found (nor beside {referrer})"
        inputs = Inputs()
        add_document(self.files.load(found), found, inputs, self, nested=True)
        items = inputs.listeners + inputs.clusters + inputs.route_configs
        return items + inputs.secrets + inputs.assignments, ""

    def seen_type(self, url: str) -> None:
        if is_v2_type(url):
            self.v2 = True


def kind_of(item: dict[str, Any]) -> Optional[str]:
    """Which resource an item is: by its @type, else by the keys only that kind has."""
    url = type_url(item)
    if url:
        return KINDS.get(message_name(url))
    if "filter_chains" in item or "default_filter_chain" in item or "address" in item:
        return "listeners"
    if "virtual_hosts" in item:
        return "route_configs"
    if "tls_certificate" in item or "validation_context" in item:
        return "secrets"
    if "cluster_name" in item and "endpoints" in item:
        return "assignments"
    if "connect_timeout" in item or "load_assignment" in item or "hosts" in item:
        return "clusters"
    return None


def add_document(doc: Any, path: str, inputs: Inputs, ctx: Context, nested: bool = False) -> None:
    """Sort the resources of one file into `inputs`."""
    if isinstance(doc, dict) and "resources" in doc:
        items = as_list(doc["resources"])
    elif isinstance(doc, dict) and (set(doc) & _BOOTSTRAP_KEYS) and not nested:
        _bootstrap(doc, path, inputs, ctx)
        return
    elif isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict) and kind_of(doc):
        items = [doc]
    else:
        raise InventoryError(
            [
                Problem(
                    0,
                    0,
                    "",
                    "not an Envoy bootstrap (static_resources) nor an xDS file (resources:)",
                    "give the bootstrap, or the LDS and CDS files",
                    source=path,
                )
            ]
        )
    for index, item in enumerate(items):
        if isinstance(item, dict) and message_name(type_url(item)) == "Resource":
            item = as_map(item.get("resource"))  # a discovery Resource wrapper
        kind = kind_of(item) if isinstance(item, dict) else None
        if kind is None:
            ctx.report.note(f"{path}: resources[{index}]", "not a resource xdsgen knows; skipped")
            continue
        ctx.seen_type(type_url(item))
        getattr(inputs, kind).append(Item(item, path))


def _bootstrap(doc: dict[str, Any], path: str, inputs: Inputs, ctx: Context) -> None:
    static = as_map(doc.get("static_resources"))
    for section in ("listeners", "clusters", "secrets"):
        for item in as_list(static.get(section)):
            if isinstance(item, dict):
                ctx.seen_type(type_url(item))
                getattr(inputs, section).append(Item(item, path))
    dynamic = as_map(doc.get("dynamic_resources"))
    for key, what in (("lds_config", "LDS"), ("cds_config", "CDS")):
        if key in dynamic:
            found, why = ctx.follow(dynamic[key], what, path)
            for item in found or []:
                kind = kind_of(item.data)
                if kind:
                    getattr(inputs, kind).append(item)
            if found is None:
                ctx.report.differ(
                    "ports",
                    f"{path}: dynamic_resources.{key}",
                    f"{why}: the draft has none of its resources",
                )
    admin = as_map(as_map(as_map(doc.get("admin")).get("address")).get("socket_address"))
    host, port = text(admin.get("address")), integer(admin.get("port_value"))
    if host and port:
        inputs.admin = (host, port)
        try:
            exposed = not ipaddress.ip_address(host).is_loopback
        except ValueError:
            exposed = True
        if exposed:
            ctx.report.differ(
                "admin",
                f"{path}: admin",
                f"Envoy's admin interface listens on {host}:{port}, reachable from the network; "
                "the draft keeps it on loopback (xdsgen never exposes /quitquitquit)",
            )
    if "tracing" in doc:
        ctx.report.differ("tracing", f"{path}: tracing", "tracing is not carried over")
    for key in sorted(set(doc) - _BOOTSTRAP_QUIET - {"tracing"}):
        ctx.report.note(f"{path}: {key}", "not carried over (xdsgen bootstrap writes its own)")


def collect(paths: list[str], ctx: Context) -> Inputs:
    inputs = ctx.inputs
    inputs.first = paths[0]
    for path in paths:
        add_document(ctx.files.load(path), path, inputs, ctx)
    return inputs


def require_something(paths: list[str], ctx: Context) -> None:
    """An import with neither listeners nor clusters is the wrong file, or one whose
    resources live elsewhere: say which."""
    if ctx.inputs.listeners or ctx.inputs.clusters:
        return
    why = [
        d.message for d in ctx.report.differences if d.where.endswith(("lds_config", "cds_config"))
    ]
    raise InventoryError(
        [
            Problem(
                0,
                0,
                "",
                "no listeners and no clusters in " + ", ".join(paths),
                "; ".join(why) if why else "give the bootstrap, or the LDS and CDS files",
                source=paths[0],
            )
        ]
    )
