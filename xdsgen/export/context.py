"""What the parts of one Gateway API export share: the API names, the options, and the
context each part adds its objects and differences to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from xdsgen.export.differences import Report
from xdsgen.export.manifests import Names, metadata
from xdsgen.export.source import Route, Source, VirtualHost

GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
MAX_LISTENERS = 64  # Gateway.spec.listeners maxItems
DEFAULT_CLASS = "eg"  # the GatewayClass Envoy Gateway's quickstart installs


@dataclass(frozen=True)
class GatewayOptions:
    name: Optional[str] = None  # default: envoy.node_id
    namespace: Optional[str] = None
    gateway_class: str = DEFAULT_CLASS


@dataclass
class GatewayListener:
    """One Gateway listener and what the inventory's per-family listeners put on it."""

    name: str
    protocol: str  # HTTP, HTTPS, TLS, TCP, UDP
    port: int
    hostname: Optional[str]
    families: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    # family -> what this listener serves there: a certificate (HTTPS), an upstream (TLS,
    # TCP, UDP); compared across families.
    variants: dict[str, Any] = field(default_factory=dict)

    def chosen(self) -> Any:
        return self.variants[sorted(self.variants)[0]]


@dataclass(frozen=True)
class Rule:
    """One rule of an exported route, with what the inventory says about it: the policies
    (BackendTrafficPolicy, SecurityPolicy) target it by sectionName."""

    kind: str  # HTTPRoute, TLSRoute, TCPRoute, UDPRoute
    route: str  # the route object's name
    name: str  # the rule's name
    upstream: Optional[str]  # None: answered without one (maintenance)
    path: str  # the inventory entry: http[0].routes[1], tcp[0], tls_passthrough[0]
    http: Optional[Route] = None  # HTTP: the route and its vhost
    vhost: Optional[VirtualHost] = None
    allow: Optional[tuple[str, ...]] = None  # TCP, UDP, TLS: allowed CIDRs (None: everyone)
    proxy_protocol: Optional[str] = None  # TCP, TLS: V1 or V2

    def ref(self) -> dict[str, Any]:
        return {
            "group": GATEWAY_GROUP,
            "kind": self.kind,
            "name": self.route,
            "sectionName": self.name,
        }


@dataclass
class Context:
    """What the parts of one export share: names, the report, the objects so far."""

    source: Source
    options: GatewayOptions
    gateway: str
    labels: dict[str, str]
    report: Report
    listeners: dict[tuple[str, int, Optional[str]], GatewayListener] = field(default_factory=dict)
    object_names: Names = field(default_factory=lambda: Names(253, dots=True))
    backend_names: Names = field(default_factory=lambda: Names(253, dots=True))
    rules: list[Rule] = field(default_factory=list)
    # Access keys (issue 14) an exporter part wrote or reported itself (key paths, or
    # prefixes ending in "."); gateway.py reports every other one as not exported.
    carried: set[str] = field(default_factory=set)
    # vhost key -> the page its ConfigMap holds (error page, or the maintenance page).
    pages: dict[str, Any] = field(default_factory=dict)
    maintenance: dict[str, int] = field(default_factory=dict)  # vhost key -> its status

    @property
    def namespace(self) -> Optional[str]:
        return self.options.namespace

    def meta(self, name: str) -> dict[str, Any]:
        return metadata(name, self.namespace, self.labels)

    def listener(self, protocol: str, port: int, hostname: Optional[str]) -> GatewayListener:
        return self.listeners[(protocol, port, hostname)]

    def backend_ref(self, upstream: str) -> dict[str, Any]:
        return {
            "group": "gateway.envoyproxy.io",
            "kind": "Backend",
            "name": self.backend_names(f"{self.gateway}-{upstream}"),
        }

    def backup_ref(self, upstream: str) -> dict[str, Any]:
        """The Backend with an upstream's backup endpoints (fallback: true)."""
        return {
            "group": "gateway.envoyproxy.io",
            "kind": "Backend",
            "name": self.backend_names(f"{self.gateway}-{upstream}-backup"),
        }

    def backend_refs(self, upstream: str) -> list[dict[str, Any]]:
        refs = [self.backend_ref(upstream)]
        if self.source.upstreams[upstream].backup:
            refs.append(self.backup_ref(upstream))
        return refs

    def used_upstreams(self) -> list[str]:
        return sorted({rule.upstream for rule in self.rules if rule.upstream is not None})

    def is_carried(self, key: str) -> bool:
        return key in self.carried or any(
            key.startswith(p) for p in self.carried if p.endswith(".")
        )
