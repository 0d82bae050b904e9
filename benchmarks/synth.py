"""Synthetic inventories for the scale benchmark.

N vhosts with 3 routes each, N/4 upstreams, N/10 TCP port maps (at least one of each).
Every other vhost terminates TLS with one shared certificate, every third redirects plain
HTTP to https, and the routes mix prefixes, a rewrite, a timeout and websocket upgrades,
so the rendered config has the shape of a real hosting box rather than N copies of one line.

Everything listens and points at loopback only. The output is deterministic for the same
arguments and written in flow style, one vhost per line, like a hand-kept inventory.

    python benchmarks/synth.py 1000 > /tmp/inv.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Optional


def _q(text: str) -> str:
    # JSON strings are valid YAML double-quoted scalars.
    return json.dumps(text)


def counts(n: int) -> dict[str, int]:
    return {"vhosts": n, "routes": 3 * n, "upstreams": max(1, n // 4), "tcp": max(1, n // 10)}


def generate(
    n: int,
    config_dir: str = "/tmp/xdsgen-bench/config",
    admin_port: Optional[int] = None,
    http_port: int = 18080,
    https_port: int = 18443,
    tcp_ports: Optional[Sequence[int]] = None,
    cert: str = "/tmp/xdsgen-bench/certs/site.crt",
    key: str = "/tmp/xdsgen-bench/certs/site.key",
    access_log: str = "off",
    endpoints: Sequence[str] = (),
) -> str:
    """The inventory text. `tcp_ports` gives one port per TCP map (default 20000, 20001, ...);
    without `admin_port` the admin is the default Unix socket in the config directory;
    `endpoints`: real backends, upstream j gets endpoints[j % len] (default: distinct
    loopback addresses nothing listens on)."""
    c = counts(n)
    ports = list(tcp_ports) if tcp_ports is not None else [20000 + i for i in range(c["tcp"])]
    if len(ports) < c["tcp"]:
        raise ValueError(f"need {c['tcp']} TCP ports, got {len(ports)}")
    admin = [] if admin_port is None else [f"  admin: {_q(f'127.0.0.1:{admin_port}')}"]
    lines = [
        "# synthetic inventory: benchmarks/synth.py",
        "version: 1",
        "envoy:",
        f"  config_dir: {_q(config_dir)}",
        *admin,
        f"  access_log: {_q(access_log)}",
        "listen:",
        f"  ipv4: {{address: 127.0.0.1, http: {http_port}, https: {https_port}}}",
        "upstreams:",
    ]
    ups = c["upstreams"]
    for j in range(ups):
        # Distinct loopback addresses and ports: static clusters, nothing is ever dialled.
        endpoint = (
            endpoints[j % len(endpoints)]
            if endpoints
            else (f"127.0.{(j >> 8) & 255}.{(j & 255) or 1}:{10000 + j % 50000}")
        )
        lines.append(f"  up{j}: {endpoint}")
    lines += [
        "certificates:",
        f"  site: {{cert: {_q(cert)}, key: {_q(key)}}}",
        "http:",
    ]
    for i in range(n):
        a, b, d = f"up{i % ups}", f"up{(i * 7 + 1) % ups}", f"up{(i * 13 + 2) % ups}"
        extra = ""
        if i % 2 == 0:
            extra += ", tls: site"
            if i % 3 == 0:
                extra += ", redirect_to_https: true"
        ws = ", websocket: true" if i % 5 == 0 else ""
        lines.append(
            f"  - {{domains: [site{i}.example.com, www.site{i}.example.com]{extra}, routes: ["
            f"{{prefix: /api/, upstream: {a}, timeout: 30s{ws}}}, "
            f"{{prefix: /static/, upstream: {b}, rewrite: /}}, "
            f"{{prefix: /, upstream: {d}}}]}}"
        )
    lines.append("tcp:")
    for k in range(c["tcp"]):
        lines.append(f"  - {{port: {ports[k]}, upstream: up{(k * 3) % ups}}}")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="number of vhosts")
    parser.add_argument("--config-dir", default="/tmp/xdsgen-bench/config")
    args = parser.parse_args(argv)
    sys.stdout.write(generate(args.n, config_dir=args.config_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
