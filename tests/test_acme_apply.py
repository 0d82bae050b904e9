"""`xdsgen apply` obtains and renews certificates, HTTP-01 answered by Envoy itself.

Real parts only: Pebble (Let's Encrypt's test CA) validates http-01 on the port of Envoy's
http listeners, where nothing but Envoy answers, so every issuance here is Pebble fetching
each token from Envoy; pebble-challtestsrv is its DNS (which family the CA may use is set
there, and checked with real DNS queries). Envoy is started as on a fresh box: `xdsgen
render`, `xdsgen bootstrap`, Envoy, then `xdsgen apply`.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from acme_box import (
    CHALLENGE_PREFIX,
    FAMILIES,
    PEBBLE_AGENT,
    Box,
    fresh_box,
    tls_vhost,
)
from cryptography import x509
from test_apply_helpers import wait_until

from xdsgen.acme import records, storage
from xdsgen.live.state import State

pytestmark = pytest.mark.envoy

SITE = ["site.example.com", "www.site.example.com"]


def site_inventory(box: Box, **acme: str) -> Path:
    return box.write(
        {"site": {"acme": box.acme(**acme)}},
        [
            tls_vhost(SITE, "site", redirect_to_https=True),
            {"domains": ["plain.example.com"], "routes": [{"prefix": "/", "upstream": "app"}]},
        ],
    )


def pebble_issuer(box: Box) -> x509.Name:
    return x509.load_pem_x509_certificate(box.lab.pebble.intermediate_pem().encode()).subject


def test_first_issuance_http01_through_envoy_on_both_families(tmp_path: Path) -> None:
    with fresh_box(tmp_path) as box:
        site_inventory(box)
        envoy = box.start_envoy()
        chain = box.config / "certs" / "site" / "fullchain.pem"
        key = box.config / "certs" / "site" / "privkey.pem"
        # Fresh box: no certificate, so no https listener yet; the redirect vhost answers
        # 503 instead of sending browsers to a listener that cannot serve it.
        lds = (box.config / "lds.yaml").read_text()
        assert "https_ipv4" not in lds and not list(box.config.glob("sds_*"))
        for _, host in FAMILIES:
            status, headers, body = box.get_http(host, "site.example.com", "/x")
            assert (status, headers["content-type"]) == (503, "text/plain")
            assert b"certificate has not been obtained yet" in body
            assert box.get_http(host, "plain.example.com")[0] == 200

        # The CA may only come over IPv4 (no AAAA record).
        box.lab.dns.set_default("ipv6", "")
        assert box.lab.dns.addresses("site.example.com") == ["127.0.0.1"]
        before = {f: box.counter(f"http.http_{f}.downstream_rq_2xx") for f, _ in FAMILIES}
        applied = box.apply()
        assert applied.returncode == 0, applied.stderr
        assert re.search(
            r"^note: certificate site: obtained \(no certificate yet\), valid until "
            r"\d{4}-\d\d-\d\d \d\d:\d\d UTC$",
            applied.stderr,
            re.M,
        ), applied.stderr
        assert "Traceback" not in applied.stderr

        # Served on the https listener of both families, chained to Pebble's root.
        info = storage.read_certificate(str(chain))
        assert info.domains == tuple(SITE)
        for _, host in FAMILIES:
            for domain in SITE:
                served = box.served(host, domain)
                assert f"{served.serial_number:x}" == info.serial
                assert served.issuer == pebble_issuer(box)
            status, _, body = box.get_https(host, "site.example.com", "/y")
            assert status == 200 and json.loads(body)["backend"] == "app"
            status, headers, _ = box.get_http(host, "site.example.com", "/y")
            assert status == 301
            assert headers["location"] == f"https://site.example.com:{box.https_port}/y"

        # Pebble fetched every token from Envoy (3 perspectives each), over IPv4 only.
        wait_until(lambda: len(box.pebble_fetches()) >= 6, 5, "the access log")
        fetched = box.pebble_fetches()
        assert len(fetched) == 6 and all('" 200 ' in line for line in fetched), fetched
        assert sorted({line.split('"')[-4] for line in fetched}) == SITE  # the Host
        delta = {
            f: box.counter(f"http.http_{f}.downstream_rq_2xx") - before[f] for f, _ in FAMILIES
        }
        # xdsgen asked each listener for each token first (2 + 2); Pebble came on IPv4.
        assert delta["ipv4"] >= 2 + 6 and 2 <= delta["ipv6"] < 6, delta

        # The challenge routes are gone, the token paths are redirected like everything else.
        token_path = fetched[0].split('"')[1].split()[1]
        assert token_path.startswith(CHALLENGE_PREFIX)
        for name in ("rds_http_ipv4.yaml", "rds_http_ipv6.yaml"):
            assert "acme" not in (box.config / name).read_text()
        assert box.get_http("::1", "site.example.com", token_path)[0] == 301
        state = State.load(str(box.config))
        assert state.pending is None and state.last is not None and state.last["confirmed"]
        assert state.last["files"] == {p.name: p.read_text() for p in box.config.glob("*.yaml")}
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(chain).st_mode) == 0o644
        assert envoy.stat("listener_manager.lds.update_rejected") == "0"

        # The next apply (cron, 5 minutes later): fresh, nothing asked of the CA or written.
        files = box.config_files()
        again = box.apply()
        assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
        assert box.config_files() == files
        assert len(box.pebble_fetches()) == 6

        # `certs renew --force` with Envoy running: the CA may only come over IPv6 now.
        box.lab.dns.set_default("ipv6", "::1")
        box.lab.dns.set_default("ipv4", "")
        assert box.lab.dns.addresses("www.site.example.com") == ["::1"]
        before = {f: box.counter(f"http.http_{f}.downstream_rq_2xx") for f, _ in FAMILIES}
        renewed = box.run("certs", "renew", str(box.inventory_path), "--force")
        assert renewed.returncode == 0, renewed.stderr
        assert "certificate site: serving 2 http-01 challenges through Envoy" in renewed.stdout
        assert f"run `xdsgen apply {box.inventory_path}` to hand the new files" in renewed.stdout
        second = storage.read_certificate(str(chain)).serial
        assert second != info.serial
        delta = {
            f: box.counter(f"http.http_{f}.downstream_rq_2xx") - before[f] for f, _ in FAMILIES
        }
        assert delta["ipv6"] >= 2 + 6 and 2 <= delta["ipv4"] < 6, delta
        # The config is back as it was (the token routes withdrawn); apply hands it over.
        assert {n: v[2] for n, v in box.config_files().items()} == {
            n: v[2] for n, v in files.items()
        }
        assert box.apply().returncode == 0
        for _, host in FAMILIES:
            assert box.served_serial(host, "www.site.example.com") == second
        assert records.load(str(box.config), "site").issued_serial == second


def test_certs_lists_what_apply_obtained_and_renew_needs_envoy(tmp_path: Path) -> None:
    with fresh_box(tmp_path) as box:
        site_inventory(box)
        without = box.run("certs", "renew", str(box.inventory_path))
        assert without.returncode == 6, without.stderr
        assert "http-01 is answered by the running Envoy, and" in without.stderr
        assert "Start Envoy" in without.stderr
        assert records.load(str(box.config), "site") == records.Record()  # no back-off
        listed = box.run("certs", str(box.inventory_path), "--no-color")
        assert listed.returncode == 0
        (row,) = [line for line in listed.stdout.splitlines() if line.startswith("site ")]
        assert row.split() == [
            "site",
            "site.example.com,",
            "www.site.example.com",
            "(no",
            "certificate)",
            "-",
            "-",
            "acme",
            "due:",
            "no",
            "certificate",
            "yet",
        ]
        box.start_envoy()
        assert box.apply().returncode == 0
        listed = box.run("certs", str(box.inventory_path), "--no-color")
        (row,) = [line for line in listed.stdout.splitlines() if line.startswith("site ")]
        issuer = pebble_issuer(box).get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        info = storage.read_certificate(str(box.config / "certs" / "site" / "fullchain.pem"))
        assert re.fullmatch(
            rf"site +site\.example\.com, www\.site\.example\.com +{re.escape(issuer)} +"
            rf"{info.not_after:%Y-%m-%d %H:%M} +\d+ +acme +from \d{{4}}-\d\d-\d\d \d\d:\d\d",
            row,
        ), row
        assert PEBBLE_AGENT  # the module's tests count Pebble's own requests by this agent
