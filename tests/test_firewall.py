"""`xdsgen firewall`: fw4 rules for exactly the listener ports, in three forms."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from harness import EXAMPLE, write_inventory

from xdsgen.cli import main
from xdsgen.firewall import firewall
from xdsgen.pipeline import load_model

BASE: dict[str, Any] = {
    "version": 1,
    "listen": {
        "ipv4": {"address": "0.0.0.0", "http": 80, "https": 443},
        "ipv6": {"address": "fd00::1", "https": 8443},
    },
    "upstreams": {"web": "127.0.0.1:8080", "smb": "127.0.0.1:445", "dns": "127.0.0.1:5353"},
    "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "web"}]}],
    "tls_passthrough": [{"sni": ["nas.example.com"], "upstream": "web"}],
    "tcp": [
        {"port": 139, "upstream": "smb"},
        {"port": 4450, "upstream": "smb", "families": ["ipv4"]},
    ],
    "udp": [{"port": 53, "upstream": "dns"}],
}


def parse_uci(text: str) -> dict[str, dict[str, str]]:
    """Minimal UCI reader: section name -> options (every line must be a known shape)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        head = re.fullmatch(r"config rule '([A-Za-z0-9_]+)'", line)
        if head:
            current = sections.setdefault(head.group(1), {})
            continue
        option = re.fullmatch(r"\toption ([a-z_]+) '([^']*)'", line)
        assert option, f"not UCI: {line!r}"
        current[option.group(1)] = option.group(2)
    return sections


def triples(sections: dict[str, dict[str, str]]) -> set[tuple[str, str, int]]:
    return {(s["family"], s["proto"], int(s["dest_port"])) for s in sections.values()}


def model_for(tmp_path: Path, data: dict[str, Any]) -> Any:
    return load_model(str(write_inventory(tmp_path / "inventory.yaml", data)))


def test_uci_rules_are_exactly_the_listeners(tmp_path: Path) -> None:
    model = model_for(tmp_path, BASE)
    sections = parse_uci(firewall(model, "uci"))
    assert triples(sections) == {
        (lst.family, lst.protocol.lower(), lst.port) for lst in model.listeners
    }
    assert triples(sections) == {
        ("ipv4", "tcp", 80),
        ("ipv4", "tcp", 443),
        ("ipv4", "tcp", 139),
        ("ipv4", "tcp", 4450),
        ("ipv4", "udp", 53),
        ("ipv6", "tcp", 8443),
        ("ipv6", "tcp", 139),
        ("ipv6", "udp", 53),
    }
    for name, options in sections.items():
        assert name.startswith("xdsgen_") and options["name"] == name
        assert options["src"] == "wan" and options["target"] == "ACCEPT"
        # ipv6 listens on one address only: the rule is as narrow as the listener.
        assert options.get("dest_ip") == ("fd00::1" if options["family"] == "ipv6" else None)
    assert parse_uci(firewall(model, "uci", zone="wan6"))["xdsgen_http_ipv4"]["src"] == "wan6"


def test_a_removed_port_disappears_from_every_format(tmp_path: Path) -> None:
    before = {fmt: firewall(model_for(tmp_path, BASE), fmt) for fmt in ("uci", "uci-script", "nft")}
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["tcp"] = [t for t in data["tcp"] if t["port"] != 4450]
    after = {fmt: firewall(model_for(tmp_path, data), fmt) for fmt in ("uci", "uci-script", "nft")}
    assert ("ipv4", "tcp", 4450) in triples(parse_uci(before["uci"]))
    assert triples(parse_uci(before["uci"])) - triples(parse_uci(after["uci"])) == {
        ("ipv4", "tcp", 4450)
    }
    assert "4450" in before["uci-script"] and "4450" not in after["uci-script"]
    assert "4450" in before["nft"] and "4450" not in after["nft"]
    assert "139" in after["nft"]


def test_nft_groups_ports_per_family_address_and_protocol(tmp_path: Path) -> None:
    text = firewall(model_for(tmp_path, BASE), "nft", zone="wan")
    rules = [line for line in text.splitlines() if not line.startswith("#")]
    assert rules == [
        'meta nfproto ipv4 tcp dport { 80, 139, 443, 4450 } accept comment "xdsgen"',
        'meta nfproto ipv4 udp dport 53 accept comment "xdsgen"',
        'ip6 daddr fd00::1 tcp dport { 139, 8443 } accept comment "xdsgen"',
        'ip6 daddr fd00::1 udp dport 53 accept comment "xdsgen"',
    ]
    assert "chain-pre/input_wan/xdsgen.nft" in text


def test_nft_include_parses_with_nft(tmp_path: Path) -> None:
    nft = shutil.which("nft")
    if nft is None:
        pytest.skip("nft is not installed (.ci/run installs nftables)")
    include = tmp_path / "xdsgen.nft"
    include.write_text(firewall(load_model(str(EXAMPLE)), "nft"))
    wrapper = tmp_path / "fw4.nft"
    # fw4 includes chain-pre files inside its own chain: the same place here.
    wrapper.write_text(
        f'table inet fw4 {{\n  chain input_wan {{\n    include "{include}"\n  }}\n}}\n'
    )
    result = subprocess.run([nft, "-c", "-f", str(wrapper)], capture_output=True, text=True)
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.nft"
    broken.write_text(include.read_text().replace("accept", "acept", 1))
    wrapper.write_text(wrapper.read_text().replace(str(include), str(broken)))
    assert subprocess.run([nft, "-c", "-f", str(wrapper)], capture_output=True).returncode != 0


def busybox() -> str:
    path = shutil.which("busybox")
    if path is None:
        pytest.fail("busybox is missing: apt-get install busybox (.ci/run does)")
    return path


def test_uci_script_replaces_old_xdsgen_rules_only(tmp_path: Path) -> None:
    script = tmp_path / "fw.sh"
    script.write_text(firewall(model_for(tmp_path, BASE), "uci-script"))
    assert subprocess.run([busybox(), "sh", "-n", str(script)]).returncode == 0
    # A stand-in `uci`: answers `show` with an old xdsgen rule and a rule of the user's,
    # and records every other call.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "uci.log"
    fake = bindir / "uci"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-q" ] && [ "$2" = "show" ]; then\n'
        '  echo "firewall.xdsgen_tcp_9999_ipv4=rule"\n'
        "  echo \"firewall.xdsgen_tcp_9999_ipv4.dest_port='9999'\"\n"
        '  echo "firewall.allow_ssh=rule"\n'
        '  echo "firewall.@rule[3]=rule"\n'
        "  exit 0\n"
        "fi\n"
        f'echo "$*" >> "{log}"\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    subprocess.run([busybox(), "sh", str(script)], env=env, check=True)
    calls = log.read_text().splitlines()
    assert calls[0] == "delete firewall.xdsgen_tcp_9999_ipv4"
    assert not any("allow_ssh" in c or "@rule" in c for c in calls)
    assert "set firewall.xdsgen_tcp_4450_ipv4.dest_port=4450" in calls
    assert "set firewall.xdsgen_https_ipv6.dest_ip=fd00::1" in calls
    assert calls[-1] == "commit firewall"
    added = {
        c.split()[1].split("=")[0].removeprefix("firewall.")
        for c in calls
        if c.startswith("set ") and c.endswith("=rule")
    }
    assert added == set(parse_uci(firewall(model_for(tmp_path, BASE), "uci")))


def test_cli_output_file_and_bad_zone(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inventory.yaml", BASE)
    out = tmp_path / "xdsgen.nft"
    runner = CliRunner()
    result = runner.invoke(main, ["firewall", str(inventory), "--format", "nft", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == firewall(load_model(str(inventory)), "nft", source=str(inventory))
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    result = runner.invoke(main, ["firewall", str(inventory), "--zone", "wan; reboot"])
    assert result.exit_code == 2
    assert "firewall zone name" in result.stderr
