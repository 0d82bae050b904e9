"""`xdsgen firewall` and allow (issue 14): a listener only some networks may use is opened
to those networks only, in every format; a family none of them belongs to stays closed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import write_inventory

from xdsgen.firewall import firewall
from xdsgen.pipeline import load_model

INVENTORY: dict[str, Any] = {
    "version": 1,
    "listen": {
        "ipv4": {"address": "0.0.0.0", "http": 80, "https": 443},
        "ipv6": {"address": "::", "http": 80, "https": 443},
    },
    "networks": {"lan": ["192.168.1.0/24", "fd00::/8"], "vpn": ["10.8.0.0/24"]},
    "upstreams": {"lede": "127.0.0.1:81", "ssh": "192.168.1.2:22", "wg": "127.0.0.1:51820"},
    "http": [
        {
            "domains": ["router.example.com"],
            "allow": ["lan"],
            "routes": [{"prefix": "/", "upstream": "lede"}],
        },
        {
            "domains": ["lan.example.com"],
            "routes": [{"prefix": "/", "upstream": "lede", "allow": ["vpn"]}],
        },
    ],
    "tcp": [{"port": 2222, "upstream": "ssh", "allow": ["lan"]}, {"port": 2223, "upstream": "ssh"}],
    "udp": [{"port": 51820, "upstream": "wg", "allow": ["vpn"]}],
}


def rules(tmp_path: Path, data: dict[str, Any], fmt: str = "uci") -> str:
    return firewall(load_model(str(write_inventory(tmp_path / "i.yaml", data))), fmt)


def sections(text: str) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        head = re.fullmatch(r"config rule '([A-Za-z0-9_]+)'", line)
        if head:
            current = found.setdefault(head.group(1), {})
            continue
        option = re.fullmatch(r"\t(option|list) ([a-z_]+) '([^']*)'", line)
        assert option, f"not UCI: {line!r}"
        current.setdefault(option.group(2), []).append(option.group(3))
    return found


def test_restricted_listeners_are_opened_to_their_networks_only(tmp_path: Path) -> None:
    found = sections(rules(tmp_path, INVENTORY))
    # Every vhost of the http listeners has an allow: lan and vpn together.
    assert found["xdsgen_http_ipv4"]["src_ip"] == ["10.8.0.0/24", "192.168.1.0/24"]
    assert found["xdsgen_http_ipv6"]["src_ip"] == ["fd00::/8"]
    assert found["xdsgen_tcp_2222_ipv4"]["src_ip"] == ["192.168.1.0/24"]
    assert "src_ip" not in found["xdsgen_tcp_2223_ipv4"]  # no allow: from anywhere
    assert found["xdsgen_udp_51820_ipv4"]["src_ip"] == ["10.8.0.0/24"]
    # vpn has no IPv6 network: the UDP map is not opened on IPv6, and the file says why.
    assert "xdsgen_udp_51820_ipv6" not in found
    assert "# xdsgen_udp_51820_ipv6: not opened: its allow names no ipv6 network" in rules(
        tmp_path, INVENTORY
    )


def test_one_open_vhost_opens_its_listener_to_everyone(tmp_path: Path) -> None:
    data = {
        **INVENTORY,
        "http": [
            *INVENTORY["http"],
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "lede"}]},
        ],
    }
    found = sections(rules(tmp_path, data))
    assert "src_ip" not in found["xdsgen_http_ipv4"]


def test_trusted_proxies_are_let_through_to_the_http_listeners(tmp_path: Path) -> None:
    data = {**INVENTORY, "trusted_proxies": ["173.245.48.0/20"]}
    found = sections(rules(tmp_path, data))
    assert "173.245.48.0/20" in found["xdsgen_http_ipv4"]["src_ip"]
    assert "173.245.48.0/20" not in found["xdsgen_tcp_2222_ipv4"]["src_ip"]


def test_uci_script_and_nft_say_the_same(tmp_path: Path) -> None:
    script = rules(tmp_path, INVENTORY, "uci-script")
    assert "uci add_list firewall.xdsgen_tcp_2222_ipv4.src_ip='192.168.1.0/24'" in script
    assert "xdsgen_udp_51820_ipv6=rule" not in script
    nft = rules(tmp_path, INVENTORY, "nft")
    assert 'ip saddr 192.168.1.0/24 tcp dport 2222 accept comment "xdsgen"' in nft
    assert re.search(r"ip6 saddr fd00::/8 tcp dport \{ 80, 2222 \} accept", nft)
    assert "udp dport 51820" in nft and nft.count("udp dport 51820") == 1
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox is missing: apt-get install busybox (scripts/test does)")
    path = tmp_path / "fw.sh"
    path.write_text(script)
    assert subprocess.run([busybox, "sh", "-n", str(path)]).returncode == 0


def test_nft_with_sources_parses_with_nft(tmp_path: Path) -> None:
    nft = shutil.which("nft")
    if nft is None:
        pytest.fail("nft is missing: apt-get install nftables (scripts/test does)")
    include = tmp_path / "xdsgen.nft"
    include.write_text(rules(tmp_path, INVENTORY, "nft"))
    wrapper = tmp_path / "fw4.nft"
    wrapper.write_text(
        f'table inet fw4 {{\n  chain input_wan {{\n    include "{include}"\n  }}\n}}\n'
    )
    result = subprocess.run(
        [nft, "-c", "-f", str(wrapper)], capture_output=True, text=True, env={**os.environ}
    )
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert result.returncode == 0, result.stderr
