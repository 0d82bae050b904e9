"""What the parts of one Gateway API export share: the API names, the options, and the
context each part adds its objects and differences to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from xdsgen.export.differences import Report
from xdsgen.export.manifests import Names, metadata
from xdsgen.export.source import Source

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
    # (route kind, route name, rule name, upstream) for every rule sending to an upstream
    rule_upstreams: list[tuple[str, str, str, str]] = field(default_factory=list)

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

    def used_upstreams(self) -> list[str]:
        return sorted({upstream for _, _, _, upstream in self.rule_upstreams})
