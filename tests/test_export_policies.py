"""`xdsgen export gateway-api` with the edge (issue 15) and access (issue 14) features: Envoy
Gateway's policies are written, exit 0 when everything maps, 7 with each thing that does
not named on stderr (who-can-reach-what first, loud), and no access key ever dropped
silently. The objects themselves are pinned by tests/export_cases/ and validated by
tests/test_export_schema.py; tests/test_export_policies_envoy.py shows Envoy reading them."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result
from k8s_schemas import CHANNELS, problems

from xdsgen.cli import main
from xdsgen.errors import EXIT_DIFFERS, EXIT_OK
from xdsgen.export.gateway import GatewayOptions, export_gateway_api
from xdsgen.export.source import _build, load

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "tests" / "export_cases"
USERS = "alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n"


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output + result.stderr
    return result


def objects(text: str) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text)}


def test_everything_maps_exit_0_with_the_policies(tmp_path: Path) -> None:
    (tmp_path / "down.html").write_text("<p>down</p>\n")
    data = {
        "version": 1,
        "listen": {"ipv4": {"address": "0.0.0.0", "http": 80}},
        "networks": {"lan": ["192.168.1.0/24"]},
        "upstreams": {
            "app": {
                "endpoints": ["192.168.1.10:8080"],
                "health_check": {"tcp": True, "interval": "3s"},
            },
            "grpc": {"endpoints": ["192.168.1.20:50051"], "h2": True},
            "ssh": "192.168.1.2:22",
        },
        "http": [
            {
                "domains": ["app.example.com"],
                "allow": ["lan"],
                "compress": True,
                "error_page": "down.html",
                "routes": [
                    {"path": "/api.Service/Call", "upstream": "grpc"},
                    {"prefix": "/", "upstream": "app", "retries": 2},
                ],
            }
        ],
        "tcp": [{"port": 2222, "upstream": "ssh", "proxy_protocol": "v2"}],
    }
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(data))
    result = run("export", "gateway-api", str(inventory))
    assert result.exit_code == EXIT_OK, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith(" ")]
    assert lines and all(line.startswith("note: ") for line in lines), lines
    found = objects(result.stdout)
    (security,) = [d for d in found.values() if d["kind"] == "SecurityPolicy"]
    assert security["spec"]["authorization"] == {
        "defaultAction": "Deny",
        "rules": [{"action": "Allow", "principal": {"clientCIDRs": ["192.168.1.0/24"]}}],
    }
    assert len(security["spec"]["targetRefs"]) == 2  # both rules of the vhost
    app = found["BackendTrafficPolicy/xdsgen-http-vhost0-app.example.com-route-1"]["spec"]
    assert app["healthCheck"]["active"] == {
        "type": "TCP",
        "tcp": {},
        "interval": "3s",
        "timeout": "2s",
        "unhealthyThreshold": 2,
        "healthyThreshold": 1,
    }
    assert app["healthCheck"]["panicThreshold"] == 0
    assert app["retry"]["numRetries"] == 2
    assert app["compressor"] == [{"type": "Brotli"}, {"type": "Gzip"}]
    assert app["responseOverride"][0]["source"] == "Local"
    page = found["ConfigMap/xdsgen-page-vhost0-app.example.com"]["data"]["response.body"]
    assert page == "<p>down</p>\n"
    assert found["Backend/xdsgen-grpc"]["spec"]["appProtocols"] == ["gateway.envoyproxy.io/h2c"]
    tcp = found["BackendTrafficPolicy/xdsgen-tcp-2222-forward"]["spec"]
    assert tcp["proxyProtocol"] == {"version": "V2"}
    for channel in CHANNELS:
        assert problems(list(found.values()), channel) == []


ACCESS_LINES = [
    "DIFFERENCE (access): tcp[0].allow: Envoy Gateway refuses a client outside the allow list "
    "when it sends its first byte, after it has connected the upstream: a server that speaks "
    "first (an SSH banner) answers refused clients; xdsgen closes their connection at once",
    "DIFFERENCE (access): tls_passthrough[0].allow: not exported: Envoy Gateway has no allow "
    "list for TLS passthrough (SecurityPolicy takes no TLSRoute): every client reaches nas",
    "DIFFERENCE (access): udp[0].allow: not exported: Envoy Gateway has no allow list for a UDP "
    "map (SecurityPolicy takes no UDPRoute): every client reaches dns",
    "DIFFERENCE (access): trusted_proxies: backends receive X-Forwarded-For as it came, with the "
    "connection's address appended: a client that connects directly can put any address "
    "first; xdsgen replaces the header with the client's address alone (let backends believe "
    "only the last address of X-Forwarded-For)",
]
BEHAVIOUR_LINES = [
    "difference: http[2].routes[0]: clients outside the allow list (lan) are asked to log in "
    "(family) before they are refused: Envoy Gateway checks the login first, xdsgen the "
    "address",
    "difference: http[1].routes[1]: content-security-policy, referrer-policy, "
    "x-content-type-options, x-frame-options are added to every response, also where the "
    "backend sent its own: Gateway API can set or append a header, not add it only where "
    "absent (the backend's own value then comes with a second one)",
    "difference: auth.sso.forward.headers_to_upstream: remote-user is removed from the "
    "requests of every vhost (also http[0], http[2]), not only where sso is asked: Envoy "
    "Gateway removes them for the whole Gateway, before the routes are known",
]


def test_what_does_not_map_exit_7_named_on_stderr_access_first() -> None:
    result = run("export", "gateway-api", str(CASES / "access" / "inventory.yaml"))
    assert result.exit_code == EXIT_DIFFERS
    lines = [line for line in result.stderr.splitlines() if not line.startswith(" ")]
    lines = [line for line in lines if ": warning: " not in line]
    for expected in ACCESS_LINES + BEHAVIOUR_LINES:
        assert expected in lines, expected
    heads = [line.split(":")[0] for line in lines]
    assert heads == sorted(heads, key=["DIFFERENCE (access)", "difference", "note"].index)
    # What maps is not named: the allow lists and logins of the vhosts are SecurityPolicies.
    assert not any(line.startswith("DIFFERENCE (access): http[") for line in lines)
    kinds = {d["kind"] for d in yaml.safe_load_all(result.stdout)}
    assert {"SecurityPolicy", "BackendTLSPolicy", "ClientTrafficPolicy"} <= kinds


def test_basic_auth_users_are_a_secret_written_like_keys(tmp_path: Path) -> None:
    users = tmp_path / "family.htpasswd"
    users.write_text(USERS)
    users.chmod(0o640)
    text = (CASES / "access" / "inventory.yaml").read_text()
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(text.replace("/nonexistent/family.htpasswd", str(users)))
    out = tmp_path / "gateway.yaml"
    result = run("export", "gateway-api", str(inventory), "-o", str(out))
    assert result.exit_code == EXIT_DIFFERS  # the rest of the access case still differs
    assert "DIFFERENCE (access): auth.family" not in result.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    found = objects(out.read_text())
    secret = found["Secret/xdsgen-users-family"]
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"][".htpasswd"]).decode() == USERS
    policy = found["SecurityPolicy/xdsgen-https-vhost2-photos.example.com-route-0"]
    assert policy["spec"]["basicAuth"] == {"users": {"name": "xdsgen-users-family"}}
    users.unlink()
    missing = run("export", "gateway-api", str(inventory))
    assert (
        "DIFFERENCE (access): auth.family.basic: "
        f"{users}: No such file or directory: Secret xdsgen-users-family is not in the output, "
        "and Envoy Gateway refuses the routes that use it until it exists (kubectl create "
        "secret generic xdsgen-users-family --from-file=.htpasswd=family.htpasswd)"
    ) in missing.stderr.splitlines()
    assert "Secret/xdsgen-users-family" not in objects(missing.stdout)


def test_each_passthrough_entry_keeps_its_own_upstream() -> None:
    """Two tls_passthrough entries are two TLSRoutes, each to its own Backend (they were
    once merged into one that sent both names to the first upstream)."""
    source = load(str(CASES / "passthrough-tcp-udp" / "inventory.yaml"))
    found = objects(export_gateway_api(source, GatewayOptions()).text)
    routes = {
        tuple(d["spec"]["hostnames"]): d["spec"]["rules"][0]["backendRefs"][0]["name"]
        for d in found.values()
        if d["kind"] == "TLSRoute"
    }
    assert routes == {
        ("nas.example.com",): "xdsgen-nas",
        ("vpn.example.com", "*.vpn.example.com"): "xdsgen-vpn",
    }


def test_an_access_key_no_part_carries_is_named() -> None:
    """The safety net: an access setting that reaches no exported object (here a port map
    the model does not have) is listed, never dropped silently."""
    from xdsgen import inventory as inventory_mod

    path = str(CASES / "minimal" / "inventory.yaml")
    source = load(path)
    data = inventory_mod.load(path).data
    data["tcp"] = [{"port": 2222, "upstream": "app", "allow": ["192.168.1.0/24"]}]
    lines = export_gateway_api(_build(path, source.model, data), GatewayOptions()).report.lines()
    assert (
        "DIFFERENCE (access): tcp[0].allow: not exported: Gateway API and Envoy Gateway's "
        "policies have no place for it here"
    ) in lines


def test_http3_on_some_https_ports_only(tmp_path: Path) -> None:
    """HTTP/3 on ipv4's port only: a second ClientTrafficPolicy on those listeners, which
    repeats the Gateway's settings (a listener's policy replaces the Gateway's)."""
    data = {
        "version": 1,
        "listen": {
            "ipv4": {"address": "0.0.0.0", "https": 443, "http3": True},
            "ipv6": {"address": "::", "https": 8443},
        },
        "certificates": {"site": {"cert": "/nonexistent/c.pem", "key": "/nonexistent/k.pem"}},
        "upstreams": {"app": "192.168.1.10:80"},
        "http": [
            {
                "domains": ["app.example.com"],
                "tls": "site",
                "routes": [{"prefix": "/", "upstream": "app"}],
            }
        ],
    }
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(data))
    found = objects(export_gateway_api(load(str(inventory)), GatewayOptions()).text)
    base = found["ClientTrafficPolicy/xdsgen-clients"]["spec"]
    http3 = found["ClientTrafficPolicy/xdsgen-clients-http3"]["spec"]
    assert "http3" not in base
    assert http3["targetRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "xdsgen",
            "sectionName": "https-443-app.example.com",
        }
    ]
    assert {k: v for k, v in http3.items() if k not in ("targetRefs", "http3")} == {
        k: v for k, v in base.items() if k != "targetRefs"
    }
    assert http3["http3"] == {}
    missing = {"Secret/xdsgen-tls-site"}
    for channel in CHANNELS:
        assert problems(list(found.values()), channel, missing) == []


def test_a_difference_of_both_routes_of_a_vhost_is_one_line() -> None:
    """The http and https HTTPRoutes of a vhost carry the same rules: what differs in them
    is said once."""
    source = load(str(REPO / "tests" / "cases" / "security-headers" / "inventory.yaml"))
    report = export_gateway_api(source, GatewayOptions()).report
    lines = report.lines()
    assert len(lines) == len(set(lines))
    assert len(report.items) > len(lines)  # one record per route object, as before
    assert (
        "difference: http[0].routes[0]: prefix /embed/: Gateway API prefixes match whole path "
        "segments: /embed itself (without the slash) now comes here too (add an exact route "
        "for /embed above it if that matters)"
    ) in lines
