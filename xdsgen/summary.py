"""A one-line (or JSON) summary of what an inventory makes, per address family."""

from __future__ import annotations

from dataclasses import dataclass

from xdsgen.model import Model

# Runs of ports listed one by one before the rest is only counted: a router with 300 TCP
# maps still gets a summary that fits a few lines of a terminal.
MAX_RUNS_SHOWN = 12


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def port_runs(ports: list[int]) -> str:
    """139, 445, 20000-20299: consecutive ports as one range; past MAX_RUNS_SHOWN runs,
    the rest as a count."""
    runs: list[list[int]] = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    shown = [f"{low}-{high}" if high > low else str(low) for low, high in runs[:MAX_RUNS_SHOWN]]
    hidden = sum(high - low + 1 for low, high in runs[MAX_RUNS_SHOWN:])
    if hidden:
        shown.append(f"and {plural(hidden, 'more port')}")
    return ", ".join(shown)


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
            f"{family}: {self.ports_line(family)}" for family in sorted(self.listeners)
        )
        counts = ", ".join(
            (
                plural(self.upstreams, "upstream"),
                plural(self.vhosts, "vhost"),
                plural(self.routes, "route"),
                plural(self.certificates, "certificate"),
            )
        )
        return f"{counts}; {families or 'no listeners'}"

    def ports_line(self, family: str) -> str:
        """http 80, https 443, tcp 139, 445, 20000-20299, udp 53."""
        by_kind: dict[str, list[int]] = {}
        for entry in self.listeners[family]:
            kind, _, port = entry.partition(" ")
            by_kind.setdefault(kind, []).append(int(port))
        return ", ".join(f"{kind} {port_runs(ports)}" for kind, ports in by_kind.items())


def summarize(model: Model) -> Summary:
    vhosts = {vh.name: vh for rc in model.route_configs for vh in rc.virtual_hosts}
    listeners: dict[str, list[str]] = {}
    for listener in sorted(model.listeners, key=lambda item: (item.kind, item.port)):
        listeners.setdefault(listener.family, []).append(f"{listener.kind} {listener.port}")
    return Summary(
        upstreams=sum(1 for c in model.clusters if c.derived_from is None),
        vhosts=len(vhosts),
        routes=sum(len(vh.routes) for vh in vhosts.values()),
        certificates=len(model.secrets),
        listeners=listeners,
    )
