"""`xdsgen export k8s|gateway-api`: the contract (stdout YAML, differences on stderr, exit
codes 0/7/1, -o), what the k8s objects hold, the limits, and egctl when it is installed."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from harness import Certs

from xdsgen.cli import main
from xdsgen.errors import EXIT_DIFFERS, EXIT_INVALID, EXIT_OK
from xdsgen.export.source import _build, load, unknown_keys

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "tests" / "export_cases"
KINDS = ("k8s", "gateway-api")


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output + result.stderr
    return result


def docs(text: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(text))


@pytest.mark.parametrize("kind", KINDS)
def test_everything_maps_exit_0_pure_yaml(kind: str) -> None:
    result = run("export", kind, str(CASES / "minimal" / "inventory.yaml"))
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("---\n")
    assert all(isinstance(d, dict) and "kind" in d for d in docs(result.stdout))


@pytest.mark.parametrize("kind", KINDS)
def test_differences_exit_7_on_stderr_one_line_each(kind: str) -> None:
    result = run("export", kind, str(CASES / "tls-terminate" / "inventory.yaml"))
    assert result.exit_code == EXIT_DIFFERS
    lines = [line for line in result.stderr.splitlines() if not line.startswith(" ")]
    differences = [line for line in lines if ": warning: " not in line]
    assert differences and all(
        line.startswith(("DIFFERENCE (access): ", "difference: ", "note: ")) for line in differences
    )
    assert any(
        "certificates.site" in line and "kubectl create secret tls" in line for line in differences
    )
    docs(result.stdout)  # stdout stays YAML


def test_access_differences_come_first() -> None:
    result = run("export", "gateway-api", str(CASES / "families-split" / "inventory.yaml"))
    assert result.exit_code == EXIT_DIFFERS
    heads = [line.split(":")[0] for line in result.stderr.splitlines() if not line.startswith(" ")]
    heads = [h for h in heads if h in ("DIFFERENCE (access)", "difference", "note")]
    assert heads == sorted(heads, key=["DIFFERENCE (access)", "difference", "note"].index)
    assert "DIFFERENCE (access)" in heads and "difference" in heads


def test_notes_alone_keep_exit_0() -> None:
    result = run(
        "export", "gateway-api", str(REPO / "tests" / "cases" / "round-robin" / "inventory.yaml")
    )
    assert result.exit_code == EXIT_OK
    assert result.stderr.startswith("note: ")


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_inventory_exit_1_nothing_on_stdout(tmp_path: Path, kind: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nlisten: {ipv4: {address: 0.0.0.0, http: 80}}\nupstreams: {}\n"
        "http: [{domains: ['*'], routes: [{prefix: /, upstream: nope}]}]\n"
    )
    result = run("export", kind, str(bad))
    assert result.exit_code == EXIT_INVALID
    assert result.stdout == ""
    assert "unknown upstream 'nope'" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_output_file_private_when_it_holds_keys(tmp_path: Path, kind: str) -> None:
    certs = Certs(tmp_path / "certs")
    cert, key = certs.issue("site", "www.example.com")
    text = (CASES / "tls-terminate" / "inventory.yaml").read_text()
    for name in ("site", "shop"):
        text = text.replace(f"/nonexistent/{name}/fullchain.pem", str(cert))
        text = text.replace(f"/nonexistent/{name}/privkey.pem", str(key))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(text)
    out = tmp_path / f"{kind}.yaml"
    result = run(
        "export", kind, str(inventory), "-o", str(out), "--namespace", "edge", "--name", "Home Lab"
    )
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout == ""
    assert f"wrote {out}" in result.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    objects = docs(out.read_text())
    assert {d["metadata"]["namespace"] for d in objects} == {"edge"}
    secrets = [d for d in objects if d["kind"] == "Secret"]
    assert secrets and all(d["metadata"]["name"].startswith("home-lab-tls-") for d in secrets)
    assert base64.b64decode(secrets[0]["data"]["tls.key"]) == key.read_bytes()
    assert base64.b64decode(secrets[0]["data"]["tls.crt"]) == cert.read_bytes()
    for config_map in (d for d in objects if d["kind"] == "ConfigMap"):
        assert "PRIVATE KEY" not in yaml.safe_dump(config_map)
    plain = tmp_path / "plain.yaml"
    assert (
        run("export", kind, str(CASES / "minimal" / "inventory.yaml"), "-o", str(plain)).exit_code
        == 0
    )
    assert stat.S_IMODE(os.stat(plain).st_mode) == 0o644


def test_k8s_contract(tmp_path: Path) -> None:
    """One ConfigMap with cds, lds, every rds_ and the bootstrap pointing into the mount with
    watched_directory; the workload mounts it as a directory at envoy.config_dir."""
    inventory = CASES / "families-split" / "inventory.yaml"
    for workload in ("daemonset", "deployment"):
        result = run("export", "k8s", str(inventory), "--workload", workload)
        objects = {d["kind"]: d for d in docs(result.stdout)}
        data = objects["ConfigMap"]["data"]
        assert {
            "cds.yaml",
            "lds.yaml",
            "bootstrap.yaml",
            "rds_http_ipv4.yaml",
            "rds_https_ipv6.yaml",
        } <= set(data)
        assert all(
            name.startswith(("rds_", "sds_"))
            for name in set(data) - {"cds.yaml", "lds.yaml", "bootstrap.yaml"}
        )
        mount = "/etc/envoy"
        bootstrap = yaml.safe_load(data["bootstrap.yaml"])
        for source in ("cds_config", "lds_config"):
            path_source = bootstrap["dynamic_resources"][source]["path_config_source"]
            assert path_source["path"].startswith(mount + "/")
            assert path_source["watched_directory"] == {"path": mount}
        lds = data["lds.yaml"]
        assert lds.count("path_config_source:") == lds.count("watched_directory:\n") > 0
        assert "-----BEGIN" not in "".join(data.values())
        kind = "DaemonSet" if workload == "daemonset" else "Deployment"
        pod = objects[kind]["spec"]["template"]["spec"]
        assert pod.get("hostNetwork", False) is (workload == "daemonset")
        (config_mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "xds"]
        assert config_mount == {"name": "xds", "mountPath": mount, "readOnly": True}
        assert ("Service" in objects) is (workload == "deployment")


def test_k8s_bootstrap_hash_rolls_pods_only_for_bootstrap_changes(tmp_path: Path) -> None:
    base = yaml.safe_load((CASES / "minimal" / "inventory.yaml").read_text())

    def annotation(data: dict[str, Any]) -> str:
        path = tmp_path / "inv.yaml"
        path.write_text(yaml.safe_dump(data))
        objects = docs(run("export", "k8s", str(path)).stdout)
        (daemonset,) = [d for d in objects if d["kind"] == "DaemonSet"]
        return str(
            daemonset["spec"]["template"]["metadata"]["annotations"]["xdsgen/bootstrap-sha256"]
        )

    first = annotation(base)
    base["http"][0]["routes"][0]["prefix"] = "/other/"
    assert annotation(base) == first  # an xDS change arrives through the volume
    base["envoy"] = {"max_connections": 99}
    assert annotation(base) != first  # a bootstrap change needs new pods


def test_configmap_over_1_mib_is_refused_with_what_to_do(tmp_path: Path) -> None:
    inventory = tmp_path / "big.yaml"
    synth = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "synth.py"), "1400"],
        capture_output=True,
        text=True,
        check=True,
    )
    inventory.write_text(synth.stdout)
    result = run("export", "k8s", str(inventory))
    assert result.exit_code == EXIT_INVALID
    assert result.stdout == ""
    assert "a ConfigMap holds at most 1 MiB" in result.stderr
    assert "export gateway-api" in result.stderr and "Split the inventory" in result.stderr


def test_more_listeners_than_a_gateway_holds(tmp_path: Path) -> None:
    data = yaml.safe_load((CASES / "minimal" / "inventory.yaml").read_text())
    data["tcp"] = [{"port": 20000 + i, "upstream": "app"} for i in range(70)]
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run("export", "gateway-api", str(path))
    assert result.exit_code == EXIT_INVALID
    assert "at most 64" in result.stderr
    assert run("export", "k8s", str(path)).exit_code == EXIT_OK


def test_inventory_keys_no_exporter_knows_are_access_differences() -> None:
    """A newer feature's key (here an invented rate limit and WAF) is never dropped
    silently."""
    from xdsgen import inventory as inventory_mod
    from xdsgen.export.gateway import GatewayOptions, export_gateway_api
    from xdsgen.export.k8s import K8sOptions, export_k8s

    path = str(CASES / "minimal" / "inventory.yaml")
    source = load(path)
    assert source.unknown_keys == ()
    data = inventory_mod.load(path).data
    data["http"][0]["routes"][0]["rate_limit"] = "10/s"
    data["waf"] = {"rules": {}}
    assert unknown_keys(data) == ["http[0].routes[0].rate_limit", "waf"]
    newer = _build(path, source.model, data)
    for result in (export_k8s(newer, K8sOptions()), export_gateway_api(newer, GatewayOptions())):
        assert result.report.differs
        lines = result.report.lines()
        assert any(line.startswith("DIFFERENCE (access): waf: not exported") for line in lines)
        assert any(
            line.startswith("DIFFERENCE (access): http[0].routes[0].rate_limit: not exported")
            for line in lines
        )


def test_every_example_key_is_known() -> None:
    for path in [
        REPO / "examples" / "home-router.yaml",
        *sorted((REPO / "tests" / "cases").glob("*/inventory.yaml")),
    ]:
        assert load(str(path)).unknown_keys == (), path


def test_egctl_translate_accepts_the_gateway_objects(tmp_path: Path) -> None:
    """Envoy Gateway's own translator, when installed, turns the export into xDS without
    errors. egctl is not a Python or Debian package: the only test allowed to skip."""
    egctl = shutil.which("egctl")
    if egctl is None:
        pytest.skip(
            "egctl (Envoy Gateway's CLI) is not installed; schema validation covers the rest"
        )
    out = tmp_path / "gateway.yaml"
    run(
        "export",
        "gateway-api",
        str(CASES / "passthrough-tcp-udp" / "inventory.yaml"),
        "-o",
        str(out),
    )
    gateway_class = (
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n"
        "metadata: {name: eg}\n"
        "spec: {controllerName: gateway.envoyproxy.io/gatewayclass-controller}\n"
    )
    out.write_text(gateway_class + out.read_text())
    result = subprocess.run(
        [egctl, "x", "translate", "--from", "gateway-api", "--to", "xds", "-f", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Accepted" in result.stdout or "listeners" in result.stdout.lower()


def test_access_keys_are_said_per_exporter(tmp_path: Path) -> None:
    """Access (issue 14): the k8s export carries it in the xDS files and names only the
    htpasswd file the pod needs; the Gateway API export writes Envoy Gateway policies and
    names exactly what they cannot say."""
    from xdsgen.export.gateway import GatewayOptions, export_gateway_api
    from xdsgen.export.k8s import K8sOptions, export_k8s

    source = load(str(REPO / "tests" / "cases" / "access-issue-example" / "inventory.yaml"))
    assert source.unknown_keys == ()
    assert "http[0].allow" in source.access_keys and "auth.sso" in source.access_keys
    k8s = export_k8s(source, K8sOptions()).report.lines()
    assert [line for line in k8s if line.startswith("DIFFERENCE (access): auth")] == [
        "DIFFERENCE (access): auth.family.basic: Envoy reads /etc/xdsgen/family.htpasswd in the "
        "pod: mount it there (a Secret); until then Envoy refuses the routes that use it"
    ]
    assert not any("allow" in line or "networks" in line for line in k8s)  # in the files
    result = export_gateway_api(source, GatewayOptions())
    gateway = result.report.lines()
    named = {
        key
        for key in source.access_keys
        if any(line.startswith(f"DIFFERENCE (access): {key}: ") for line in gateway)
    }
    # Passthrough and UDP allow lists have no Envoy Gateway policy; a TCP map's is weaker.
    assert named == {"tcp[0].allow", "tls_passthrough[0].allow", "udp[0].allow"}
    kinds = [d["kind"] for d in docs(result.text)]
    assert kinds.count("SecurityPolicy") == 4  # allow, sso, family, the TCP map's allow
