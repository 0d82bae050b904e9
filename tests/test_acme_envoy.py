"""A wildcard from a real ACME CA (Pebble) through DNS-01, served by a real Envoy, renewed
under load.

On a fresh box `xdsgen apply` obtains the wildcard through the dns_hook and serves it on
both families; a forced `xdsgen certs renew` followed by `xdsgen apply` reaches Envoy while
requests flow: none fails, a connection opened before keeps working, new connections get
the new serial. (HTTP-01 through Envoy's own listeners: test_acme_apply.py.)
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from acme_harness import AcmeLab, acme_lab
from harness import (
    Envoy,
    HttpBackend,
    _SniHTTPSConnection,
    free_ports,
    http_get,
    write_inventory,
)
from test_acme_pebble import acme_settings, dns_hook
from test_apply_helpers import run_xdsgen, wait_until

from xdsgen.acme import storage

pytestmark = pytest.mark.envoy

SNI = "app.env.example.com"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    with acme_lab(tmp_path_factory.mktemp("acme-envoy-lab")) as started:
        yield started


def tls_context(root: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(root))
    context.check_hostname = True
    return context


def served_serial(host: str, port: int, root: Path) -> str:
    """The serial of the certificate Envoy presents for SNI, verified up to Pebble's root."""
    from cryptography import x509

    context = tls_context(root)
    with (
        socket.create_connection((host, port), 5) as raw,
        context.wrap_socket(raw, server_hostname=SNI) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return f"{x509.load_der_x509_certificate(der).serial_number:x}"


def test_pebble_certificate_served_on_both_families_and_renewed_under_load(
    lab: AcmeLab, tmp_path: Path
) -> None:
    app = HttpBackend("app")
    admin, http4, https4, http6, https6 = free_ports(5)
    hook, hook_log = dns_hook(tmp_path, lab)
    root = tmp_path / "pebble-root.pem"
    root.write_text(lab.pebble.root_pem())
    inventory = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {
                "config_dir": str(tmp_path / "config"),
                "admin": f"127.0.0.1:{admin}",
                "access_log": "off",
            },
            "listen": {
                "ipv4": {"address": "127.0.0.1", "http": http4, "https": https4},
                "ipv6": {"address": "::1", "http": http6, "https": https6},
            },
            "upstreams": {"app": app.endpoint},
            "certificates": {
                "wild": {"acme": acme_settings(lab, challenge="dns-01", dns_hook=str(hook))}
            },
            "http": [
                {
                    "domains": ["*.env.example.com", "env.example.com"],
                    "tls": "wild",
                    "redirect_to_https": True,
                    "routes": [{"prefix": "/", "upstream": "app"}],
                }
            ],
        },
    )
    # A fresh box: render leaves the https listeners out until the certificate exists,
    # Envoy starts on that, and apply obtains it (DNS-01, through the hook) and serves it.
    rendered = run_xdsgen("render", str(inventory))
    assert rendered.returncode == 0 and "has not been obtained yet" in rendered.stderr
    bootstrap = tmp_path / "bootstrap.yaml"
    assert run_xdsgen("bootstrap", str(inventory), "-o", str(bootstrap)).returncode == 0
    chain = tmp_path / "config" / "certs" / "wild" / "fullchain.pem"
    envoy = Envoy(bootstrap, admin, tmp_path / "envoy.log").start()
    try:
        assert "https_ipv4" not in (tmp_path / "config" / "lds.yaml").read_text()
        applied = run_xdsgen("apply", str(inventory))
        assert applied.returncode == 0, applied.stderr
        assert "note: certificate wild: obtained (no certificate yet)" in applied.stderr
        assert (
            hook_log.read_text().splitlines()
            == ["add _acme-challenge.env.example.com"] * 2
            + ["remove _acme-challenge.env.example.com"] * 2
        )
        assert lab.dns.txt("_acme-challenge.env.example.com") == []
        first = storage.read_certificate(str(chain)).serial
        for host, port in (("127.0.0.1", https4), ("::1", https6)):
            assert served_serial(host, port, root) == first
            status, _, body = http_get(host, port, "/x", {"Host": SNI}, tls_context(root), sni=SNI)
            assert status == 200 and json.loads(body)["backend"] == "app"
        status, headers, _ = http_get("127.0.0.1", http4, "/x", {"Host": SNI})
        assert status == 301 and headers["location"] == f"https://{SNI}:{https4}/x"

        # Renewal under load: new connections on both families, and one kept open.
        kept = _SniHTTPSConnection(
            "127.0.0.1", https4, context=tls_context(root), sni=SNI, timeout=5
        )
        kept.request("GET", "/before", headers={"Host": SNI})
        assert kept.getresponse().read()
        failures: list[str] = []
        served: set[str] = set()
        done = threading.Event()
        sent = [0]

        def traffic() -> None:
            while not done.is_set():
                host, port = (("127.0.0.1", https4), ("::1", https6))[sent[0] % 2]
                sent[0] += 1
                try:
                    status, _, _ = http_get(
                        host, port, "/", {"Host": SNI}, tls_context(root), sni=SNI
                    )
                    if status != 200:
                        failures.append(f"{host}: HTTP {status}")
                except (OSError, http.client.HTTPException) as exc:
                    failures.append(f"{host}: {exc!r}")

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        time.sleep(0.3)
        renewed = run_xdsgen("certs", "renew", str(inventory), "--force")
        assert renewed.returncode == 0, renewed.stderr
        second = storage.read_certificate(str(chain)).serial
        assert second != first
        applied = run_xdsgen("apply", str(inventory))
        assert applied.returncode == 0, applied.stderr
        for host, port in (("127.0.0.1", https4), ("::1", https6)):
            wait_until(
                lambda h=host, p=port: served_serial(h, p, root) == second,
                10,
                f"Envoy to serve the renewed certificate on {host}",
            )
            served.add(served_serial(host, port, root))
        time.sleep(0.3)
        done.set()
        worker.join(10)
        assert failures == []
        assert sent[0] >= 20, sent  # requests really flowed through the renewal
        assert served == {second}
        kept.request("GET", "/after", headers={"Host": SNI})
        response = kept.getresponse()
        assert response.status == 200 and json.loads(response.read())["path"] == "/after"
        kept.close()
        assert envoy.stat("listener_manager.lds.update_rejected") in ("0", "")
    finally:
        envoy.stop()
        app.close()
