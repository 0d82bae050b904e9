"""`acme:` in the inventory: the schema keys, the meaning checks, where the files live.

No CA here (that is test_acme_pebble.py): these are the decisions made from the inventory.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import write_inventory

from xdsgen.errors import InventoryError
from xdsgen.model.certificates import LETSENCRYPT, LETSENCRYPT_STAGING, parse_period
from xdsgen.pipeline import load_model, render


def inventory(tmp_path: Path, certificates: dict[str, Any], vhosts: list[dict[str, Any]]) -> Path:
    return write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "config")},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 18080, "https": 18443}},
            "upstreams": {"app": "127.0.0.1:3000"},
            "certificates": certificates,
            "http": vhosts,
        },
    )


def vhost(domains: list[str], tls: str, **extra: Any) -> dict[str, Any]:
    return {"domains": domains, "tls": tls, "routes": [{"prefix": "/", "upstream": "app"}], **extra}


def errors_of(path: Path) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_model(str(path))
    return [p.format() for p in caught.value.problems]


def test_acme_without_cert_and_key_lives_under_the_config_dir(tmp_path: Path) -> None:
    path = inventory(
        tmp_path,
        {"site": {"acme": {"email": "admin@example.com"}}},
        [
            vhost(["site.example.com", "WWW.site.example.com"], "site", redirect_to_https=True),
            vhost(["extra.example.com"], "site"),
        ],
    )
    model = load_model(str(path))
    (cert,) = model.certificates
    config = tmp_path / "config"
    assert cert.cert == f"{config}/certs/site/fullchain.pem"
    assert cert.key == f"{config}/certs/site/privkey.pem"
    # Every domain of every vhost with tls: site, lower case, sorted.
    assert cert.domains == ("extra.example.com", "site.example.com", "www.site.example.com")
    assert cert.acme is not None and cert.source == "acme"
    assert cert.acme.directory == LETSENCRYPT
    assert (cert.acme.challenge, cert.acme.renew_before) == ("http-01", 30 * 86400)
    # Envoy is told the same files (no missing-file warning: they come with the first order).
    (secret,) = model.secrets
    assert (secret.cert, secret.key) == (cert.cert, cert.key)
    assert not model.warnings
    sds = render(model).files["sds_site.yaml"]
    assert f'filename: "{config}/certs/site/fullchain.pem"' in sds


def test_default_location_follows_config_dir_and_container_path(tmp_path: Path) -> None:
    path = inventory(
        tmp_path, {"site": {"acme": {"email": "a@example.com"}}}, [vhost(["a.example.com"], "site")]
    )
    moved = load_model(str(path), config_dir=str(tmp_path / "out"))
    assert moved.certificates[0].cert == f"{tmp_path}/out/certs/site/fullchain.pem"
    assert moved.secrets[0].cert == f"{tmp_path}/out/certs/site/fullchain.pem"
    # Docker: xdsgen writes on the host, Envoy reads the container's path.
    text = path.read_text().replace(
        f"config_dir: {tmp_path}/config",
        f"config_dir: {tmp_path}/config\n  container_config_dir: /etc/envoy",
    )
    path.write_text(text)
    model = load_model(str(path))
    assert model.certificates[0].key == f"{tmp_path}/config/certs/site/privkey.pem"
    assert model.secrets[0].key == "/etc/envoy/certs/site/privkey.pem"
    moved = load_model(str(path), config_dir=str(tmp_path / "out"))
    assert moved.certificates[0].key == f"{tmp_path}/out/certs/site/privkey.pem"
    assert moved.secrets[0].key == "/etc/envoy/certs/site/privkey.pem"


def test_acme_with_given_paths_and_settings(tmp_path: Path) -> None:
    path = inventory(
        tmp_path,
        {
            "wild": {
                "cert": "/etc/ssl/wild/fullchain.pem",
                "key": "/etc/ssl/wild/privkey.pem",
                "acme": {
                    "email": "a@example.com",
                    "directory": "staging",
                    "ca_bundle": "/etc/xdsgen/acme-ca.pem",
                    "challenge": "dns-01",
                    "dns_hook": "/etc/xdsgen/dns-hook",
                    "dns_propagation": "2m",
                    "renew_before": "20d",
                },
            }
        },
        [vhost(["*.example.com", "example.com"], "wild")],
    )
    model = load_model(str(path))
    (cert,) = model.certificates
    assert (cert.cert, cert.key, cert.default_paths) == (
        "/etc/ssl/wild/fullchain.pem",
        "/etc/ssl/wild/privkey.pem",
        False,
    )
    assert cert.domains == ("*.example.com", "example.com")
    settings = cert.acme
    assert settings is not None
    assert settings.directory == LETSENCRYPT_STAGING
    assert (settings.challenge, settings.dns_hook) == ("dns-01", "/etc/xdsgen/dns-hook")
    assert (settings.dns_propagation, settings.renew_before) == (120, 20 * 86400)
    assert settings.ca_bundle == "/etc/xdsgen/acme-ca.pem"
    # Files not obtained yet are no warning for acme certificates...
    assert not model.warnings
    # ... nor an error for apply (it obtains them first) ...
    assert load_model(str(path), check_files=True).secrets == model.secrets
    # ... and what Envoy can run now (render, status) leaves the certificate out until then.
    servable = load_model(str(path), servable=True)
    assert servable.secrets == () and "https_ipv4" not in {x.name for x in servable.listeners}
    (warning,) = servable.warnings
    assert warning.path == "certificates.wild.acme" and warning.severity == "warning"
    assert warning.message.startswith("certificate 'wild' has not been obtained yet: ")
    assert warning.hint == "`xdsgen apply` obtains it"


def test_meaning_errors(tmp_path: Path) -> None:
    path = inventory(
        tmp_path,
        {
            "site": {"acme": {"email": "a@example.com"}},
            "dns": {"acme": {"email": "a@example.com", "challenge": "dns-01"}},
            "lonely": {"acme": {"email": "a@example.com", "renew_before": "0d"}},
            "half": {"cert": "/etc/ssl/half/fullchain.pem"},
            "relative": {"acme": {"email": "a@example.com", "dns_hook": "hook", "ca_bundle": "ca"}},
        },
        [
            vhost(["site.example.com"], "site"),
            vhost(["*.site.example.com"], "site"),
            vhost(["dns.example.com"], "dns"),
            vhost(["relative.example.com"], "relative"),
        ],
    )
    found = errors_of(path)
    where = f"{path}:"
    expected = [
        "http[1].domains[0]: wildcard '*.site.example.com' in certificate 'site': a CA "
        "validates a wildcard only through DNS (dns-01), never http-01 (set "
        "certificates.site.acme.challenge: dns-01 with a dns_hook, or list the host names)",
        "certificates.dns.acme.challenge: dns-01 needs dns_hook: the program that adds and "
        "removes the TXT records (add dns_hook: /path/to/hook (README shows a 5-line one))",
        "certificates.lonely.acme: no vhost uses certificate 'lonely': there is no domain to put "
        "in it (add tls: lonely to a vhost in http, or remove the certificate)",
        "certificates.lonely.acme.renew_before: must be more than 0 (e.g. 30d)",
        "certificates.half: missing key: a certificate needs both cert and key (add key: "
        "/path/to/privkey.pem, or acme: to obtain the certificate from Let's Encrypt)",
        "certificates.relative.acme.dns_hook: 'hook' is not an absolute path",
        "certificates.relative.acme.ca_bundle: 'ca' is not an absolute path",
    ]
    for text in expected:
        assert any(f.startswith(where) and text in f for f in found), (text, found)
    assert len(found) == len(expected), found


def test_dns_hook_with_http01_is_a_warning(tmp_path: Path) -> None:
    path = inventory(
        tmp_path,
        {"site": {"acme": {"email": "a@example.com", "dns_hook": "/etc/xdsgen/hook"}}},
        [vhost(["site.example.com"], "site")],
    )
    (warning,) = load_model(str(path)).warnings
    assert warning.path == "certificates.site.acme.dns_hook"
    assert warning.message == "dns_hook is used only with challenge: dns-01"


@pytest.mark.parametrize(
    ("settings", "path", "message"),
    [
        ({}, "certificates.site.acme", "missing required key 'email'"),
        ({"email": "not-an-address"}, "certificates.site.acme.email", "invalid value"),
        (
            {"email": "a@example.com", "directory": "http://ca.lan/dir"},
            "certificates.site.acme.directory",
            "invalid value",
        ),
        (
            {"email": "a@example.com", "challenge": "tls-alpn-01"},
            "certificates.site.acme.challenge",
            "invalid value",
        ),
        (
            {"email": "a@example.com", "renew_before": "30"},
            "certificates.site.acme.renew_before",
            "invalid value",
        ),
        ({"email": "a@example.com", "bogus": 1}, "certificates.site.acme.bogus", "unknown key"),
    ],
)
def test_schema_rejects(tmp_path: Path, settings: dict[str, Any], path: str, message: str) -> None:
    inv = inventory(tmp_path, {"site": {"acme": settings}}, [vhost(["a.example.com"], "site")])
    with pytest.raises(InventoryError) as caught:
        load_model(str(inv))
    assert any(p.path == path and message in p.message for p in caught.value.problems), [
        p.format() for p in caught.value.problems
    ]


def test_parse_period() -> None:
    assert parse_period("30d") == 30 * 86400
    assert parse_period("12h") == 12 * 3600
    assert parse_period("90m") == 5400
    assert parse_period("1.5s") == 1.5
    for bad in ("30", "d", "1w", "-1d", ""):
        with pytest.raises(ValueError):
            parse_period(bad)


def test_validate_with_acme_imports_no_acme_library(tmp_path: Path) -> None:
    """The cron path: an inventory with acme: is checked without certbot's library,
    cryptography or the ACME engine (only `certs renew` and, later, apply need them)."""
    path = inventory(
        tmp_path, {"site": {"acme": {"email": "a@example.com"}}}, [vhost(["a.example.com"], "site")]
    )
    code = (
        "import sys\n"
        f"sys.argv = ['xdsgen', 'validate', {str(path)!r}]\n"
        "from xdsgen.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('acme', 'josepy', 'cryptography', 'requests', 'OpenSSL')"
        " or m.startswith('xdsgen.acme'))\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "valid:" in out
    assert out.strip().endswith("HEAVY []")


def run_without(module: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a Python where `module` cannot be imported (a router without the extra)."""
    code = (
        f"import sys\nsys.modules[{module!r}] = None\nsys.argv = ['xdsgen', *{args!r}]\n"
        "from xdsgen.cli import main\nmain()\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_missing_libraries_are_named_with_the_extra(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    path = inventory(
        tmp_path,
        {
            "wild": {
                "acme": {"email": "a@example.com", "challenge": "dns-01", "dns_hook": str(hook)}
            }
        },
        [vhost(["*.example.com"], "wild")],
    )
    no_acme = run_without("acme", ["certs", "renew", str(path)])
    assert (no_acme.returncode, no_acme.stderr) == (
        6,
        "error: certificates with acme: need the acme library: pip install 'xdsgen[acme]'\n",
    )
    # Listing needs cryptography only for files that exist (a missing one is just missing).
    assert run_without("cryptography", ["certs", str(path)]).returncode == 0
    chain = tmp_path / "config" / "certs" / "wild" / "fullchain.pem"
    chain.parent.mkdir(parents=True)
    chain.write_text("-----BEGIN CERTIFICATE-----\n")
    no_crypto = run_without("cryptography", ["certs", str(path)])
    assert (no_crypto.returncode, no_crypto.stderr) == (
        6,
        "error: reading certificates needs the cryptography package: pip install 'xdsgen[acme]'\n",
    )
