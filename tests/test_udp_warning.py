"""Envoy's warning about UDP maps (issue 12, item 11), with the evidence for the choice.

UdpProxyConfig needs one of two fields to name the upstream: `matcher`, which Envoy
1.40 marks work-in-progress (a warning each time it builds a UDP listener), or
`cluster`, deprecated (a warning too, and due to be removed). No form is silent, so
xdsgen keeps the supported one and README explains the warning. These tests fail when
that stops being true (a new Envoy drops the work-in-progress mark, the templates
change, or README stops explaining what users see).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness import REPO, Envoy, UdpEcho, free_ports, running_envoy, udp_roundtrip, write_inventory

README = (REPO / "README.md").read_text()
WIP = re.compile(
    r"field 'envoy\.extensions\.filters\.udp\.udp_proxy\.v3\.UdpProxyConfig\.matcher' is "
    r"marked as work-in-progress"
)


def warnings(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if "][warning][" in line and "caught ENVOY_SIGTERM" not in line
    ]


def udp_inventory(tmp: Path) -> tuple[Path, UdpEcho, int]:
    echo = UdpEcho("dns")
    admin, port = free_ports(2)
    inventory = write_inventory(
        tmp / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"admin": f"127.0.0.1:{admin}", "access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1"}, "ipv6": {"address": "::1"}},
            "upstreams": {"dns": echo.endpoint},
            "udp": [{"port": port, "upstream": "dns"}],
        },
    )
    return inventory, echo, port


def test_the_only_warning_is_one_per_udp_listener(tmp_path: Path) -> None:
    inventory, echo, port = udp_inventory(tmp_path)
    try:
        with running_envoy(inventory, tmp_path) as envoy:
            assert udp_roundtrip("127.0.0.1", port, b"q") == b"dns:q"
            assert udp_roundtrip("::1", port, b"q") == b"dns:q"
            seen = warnings(envoy.log())
    finally:
        echo.close()
    assert len(seen) == 2, seen  # one UDP listener per family
    assert all(WIP.search(line) for line in seen), seen


def test_the_deprecated_cluster_field_is_not_quieter(tmp_path: Path) -> None:
    """The other form Envoy accepts: a deprecation warning instead (and it will go)."""
    inventory, echo, port = udp_inventory(tmp_path)
    try:
        with running_envoy(inventory, tmp_path / "first") as envoy:
            admin_port = envoy.admin_port
        config = tmp_path / "first" / "config"
        lds = (config / "lds.yaml").read_text()
        deprecated, count = re.subn(
            r"      matcher:\n(?:        .*\n)+?              cluster: (\"[^\"]+\")\n",
            r"      cluster: \1\n",
            lds,
        )
        assert count == 2, lds
        (config / "lds.yaml").write_text(deprecated)
        log = tmp_path / "second.log"
        envoy = Envoy(tmp_path / "first" / "bootstrap.yaml", admin_port, log).start()
        try:
            assert udp_roundtrip("127.0.0.1", port, b"q") == b"dns:q"
            seen = warnings(envoy.log())
        finally:
            envoy.stop()
    finally:
        echo.close()
    assert not any(WIP.search(line) for line in seen)
    assert any(
        "Using deprecated option "
        "'envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig.cluster'" in line
        for line in seen
    ), seen


def test_readme_explains_the_warning() -> None:
    section = README.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    entry = next(item for item in section.split("\n- ") if "work-in-progress" in item)
    for words in ("UdpProxyConfig.matcher", "UDP map", "deprecated", "cluster", "harmless"):
        assert words in entry, words
