"""A one-line (or JSON) summary of what an inventory makes, per address family."""

from __future__ import annotations

from dataclasses import dataclass

from xdsgen.model import Model


@dataclass(frozen=True)
class Summary:
    upstreams: int
    vhosts: int
    routes: int
    certificates: int
    listeners: dict[str, list[str]]  # family -> ["http 80", "tcp 139", ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "upstreams": self.upstreams,
            "vhosts": self.vhosts,
            "routes": self.routes,
            "certificates": self.certificates,
            "listeners": self.listeners,
        }

    def line(self) -> str:
        families = "; ".join(
            f"{family}: {', '.join(ports)}" for family, ports in sorted(self.listeners.items())
        )
        return (
            f"{self.upstreams} upstreams, {self.vhosts} vhosts, {self.routes} routes, "
            f"{self.certificates} certificates; {families or 'no listeners'}"
        )


def summarize(model: Model) -> Summary:
    vhosts = {vh.name: vh for rc in model.route_configs for vh in rc.virtual_hosts}
    listeners: dict[str, list[str]] = {}
    for listener in sorted(model.listeners, key=lambda item: (item.kind, item.port)):
        listeners.setdefault(listener.family, []).append(f"{listener.kind} {listener.port}")
    return Summary(
        upstreams=len(model.clusters),
        vhosts=len(vhosts),
        routes=sum(len(vh.routes) for vh in vhosts.values()),
        certificates=len(model.secrets),
        listeners=listeners,
    )
