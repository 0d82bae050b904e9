"""The model: inventory -> spec (typed, defaulted) -> model parts -> the IR templates print.

Each part owns one concern and reports to one problems collector:
  envoy.py         config directory, admin address, access log
  families.py      the IPv4/IPv6 split (listen)
  upstreams.py     clusters
  certificates.py  secrets, ACME settings
  challenges.py    ACME on the listeners: http-01 tokens, certificates not obtained yet
  http.py          vhosts and routes, shadowed routes, domains two vhosts claim
  tls.py           TLS chains by SNI, passthrough, SNI clashes
  listeners.py     the listeners of each family and the port maps
  ports.py         the port table, the admin out of the proxy's reach
  patches.py       Envoy config the inventory cannot say, on named generated resources
  health.py        health checks, outlier ejection, backup endpoints, HTTP/2 upstreams
  pages.py         error pages and maintenance (route files only)
  compression.py   brotli/gzip per vhost
  http3.py         QUIC listeners and alt-svc
  logformat.py     access-log line formats
  access.py        who may reach what: allow lists, trusted proxies, PROXY protocol
  auth.py          authenticators: htpasswd files, forward auth services
  headers.py       what backends are told about the client; hsts, security and other headers
The IR is in ir.py; single values are parsed in values.py.
"""

from __future__ import annotations

from typing import Any, Optional

from xdsgen.errors import InventoryError, Problem
from xdsgen.inventory import Inventory
from xdsgen.model import (
    access,
    certificates,
    challenges,
    compression,
    envoy,
    families,
    health,
    http,
    http3,
    logformat,
    pages,
    patches,
    tls,
    upstreams,
)
from xdsgen.model.ir import (
    AdminAddress,
    Cluster,
    Endpoint,
    Envoy,
    FilterChain,
    HttpManager,
    Listener,
    Model,
    Route,
    RouteConfig,
    Secret,
    TcpProxy,
    UpstreamTls,
    VirtualHost,
)
from xdsgen.model.listeners import Listeners
from xdsgen.model.ports import check_admin_clash
from xdsgen.model.problems import Problems
from xdsgen.model.values import (
    domain_problem,
    format_duration,
    is_ip,
    parse_admin,
    parse_endpoint,
)
from xdsgen.spec import DEFAULTS, Spec, read

DEFAULT_CONFIG_DIR = DEFAULTS["envoy.config_dir"]
DEFAULT_CONNECT_TIMEOUT = DEFAULTS["upstreams.*.connect_timeout"]
DEFAULT_CA = DEFAULTS["upstreams.*.tls.ca"]


def build(inventory: Inventory, check_files: bool = False) -> Model:
    """Build the model or raise InventoryError with every problem found.

    `check_files` makes missing certificate files errors (for `apply`: Envoy would refuse
    the listener); otherwise they are warnings (rendering for another machine is normal).
    """
    from xdsgen.speed import gc_paused

    with gc_paused():
        problems = Problems(inventory)
        model = _build(read(inventory.data), inventory, problems, check_files)
        problems.raise_errors()
        return model


def build_part(
    data: dict[str, Any], inventory: Inventory, check_files: bool, http_first: int
) -> Optional[Model]:
    """The model of `data`, a part of `inventory`'s data whose vhosts are the inventory's from
    index `http_first` on (xdsgen/reuse.py); None when it has errors. Problems are located
    in `inventory`."""
    from xdsgen.speed import gc_paused

    with gc_paused():
        problems = Problems(inventory)
        model = _build(read(data, http_first=http_first), inventory, problems, check_files)
    return None if problems.errors else model


def _build(spec: Spec, inventory: Inventory, problems: Problems, check_files: bool) -> Model:
    settings = envoy.build(spec.envoy, inventory.base_dir, problems)
    usable = families.build(spec, problems)
    clusters = upstreams.build(spec, problems)
    clusters = health.build(spec, clusters, problems)
    error_pages = pages.read(spec, inventory.base_dir, problems)
    secrets, certs = certificates.build(
        spec, settings.config_dir, settings.envoy_dir, problems, check_files
    )
    challenges.check(spec, usable, problems)
    http.check(spec, problems)
    tls.check_passthrough(spec, problems)
    built = Listeners(spec, usable, problems)
    built.build()
    check_admin_clash(spec, settings, usable, built.tcp_ports, clusters, problems)
    upstreams.check_unused(spec, built.used_upstreams, problems)
    # Maintenance routes first, so that access gives them the vhost's allow, auth and headers.
    route_configs = pages.apply(spec, error_pages, built.route_configs)
    # Who may reach what (issue 14): decorates what the parts above built.
    access_part = access.Access(spec, clusters, problems, check_files)
    access_part.build()
    listeners, route_configs, access_clusters = access_part.apply(built.listeners, route_configs)
    clusters = {**clusters, **{c.name: c for c in access_clusters}}
    route_configs = compression.apply(spec, route_configs)
    listeners, route_configs = http3.build(
        spec, usable, listeners, route_configs, built.udp_ports, problems
    )
    listeners = pages.filters(listeners, route_configs)
    listeners = compression.filters(listeners, route_configs)
    listeners = logformat.apply(settings.access_log_format, listeners)
    names = patches.targets(set(clusters), listeners, route_configs)
    used_secrets = {c.secret for item in listeners for c in item.filter_chains if c.secret}
    return Model(
        envoy=settings,
        clusters=tuple(sorted(clusters.values(), key=lambda c: c.name)),
        listeners=tuple(sorted(listeners, key=lambda item: item.name)),
        route_configs=tuple(sorted(route_configs, key=lambda r: r.name)),
        secrets=tuple(
            sorted((s for s in secrets.values() if s.name in used_secrets), key=lambda s: s.name)
        ),
        warnings=tuple(sorted(problems.warnings)),
        certificates=certs,
        patches=patches.build(spec, names, problems),
        user_files=tuple(sorted(access_part.user_files)),
    )


def _within(path: str, other: str) -> bool:
    """True when key path `path` is `other` or lies below it."""
    return path == other or (path.startswith(other) and path[len(other)] in ".[")


def meaning_problems(
    inventory: Inventory, check_files: bool, shape_problems: list[Problem]
) -> list[Problem]:
    """The meaning errors of an inventory whose shape is partly wrong, minus those about the
    parts already reported (their values cannot be trusted). The spec leaves out what has
    not the shape it needs, so the checks run on the rest."""
    if any(not p.path for p in shape_problems):
        return []
    problems = Problems(inventory)
    _build(read(inventory.data, tolerant=True), inventory, problems, check_files)
    broken = [p.path for p in shape_problems]
    return [
        p
        for p in problems.errors
        if p not in shape_problems
        and not any(_within(p.path, b) or _within(b, p.path) for b in broken)
    ]


__all__ = [
    "DEFAULT_CA",
    "DEFAULT_CONFIG_DIR",
    "DEFAULT_CONNECT_TIMEOUT",
    "AdminAddress",
    "Cluster",
    "Endpoint",
    "Envoy",
    "FilterChain",
    "HttpManager",
    "InventoryError",
    "Listener",
    "Model",
    "Route",
    "RouteConfig",
    "Secret",
    "TcpProxy",
    "UpstreamTls",
    "VirtualHost",
    "build",
    "build_part",
    "domain_problem",
    "format_duration",
    "is_ip",
    "meaning_problems",
    "parse_admin",
    "parse_endpoint",
]
