"""`xdsgen apply` obtains and renews certificates, HTTP-01 answered by Envoy itself.

Real parts only: Pebble (Let's Encrypt's test CA) validates http-01 on the port of Envoy's
http listeners, where nothing but Envoy answers, so every issuance here is Pebble fetching
each token from Envoy; pebble-challtestsrv is its DNS (which family the CA may use is set
there, and checked with real DNS queries). Envoy is started as on a fresh box: `xdsgen
render`, `xdsgen bootstrap`, Envoy, then `xdsgen apply`.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from acme_box import (
    CHALLENGE_PREFIX,
    FAMILIES,
    PEBBLE_AGENT,
    Box,
    Traffic,
    fresh_box,
    tls_vhost,
    wait_served,
    wait_until_due,
)
from cryptography import x509
from test_apply_helpers import XDSGEN, wait_until

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
        # The Host, as the CA sent it (with the port: the http listener is not on 80).
        hosts = {line.split('"')[-4].rsplit(":", 1)[0] for line in fetched}
        assert sorted(hosts) == SITE
        delta = {
            f: box.counter(f"http.http_{f}.downstream_rq_2xx") - before[f] for f, _ in FAMILIES
        }
        # xdsgen asked each listener for each token first (2 + 2); Pebble came on IPv4.
        assert delta["ipv4"] >= 2 + 6 and 2 <= delta["ipv6"] < 3, delta

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
        # Pebble may reuse a valid authorization (its 0% reuse is 1% per name): count.
        served = re.search(
            r"^certificate site: serving (\d) http-01 challenges? through Envoy$",
            renewed.stdout,
            re.M,
        )
        assert served, renewed.stdout
        tokens = int(served.group(1))
        assert f"run `xdsgen apply {box.inventory_path}` to hand the new files" in renewed.stdout
        second = storage.read_certificate(str(chain)).serial
        assert second != info.serial
        delta = {
            f: box.counter(f"http.http_{f}.downstream_rq_2xx") - before[f] for f, _ in FAMILIES
        }
        assert delta["ipv6"] >= 4 * tokens and tokens <= delta["ipv4"] < 3, delta
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


def test_renewal_under_load_by_apply_then_by_apply_watch(tmp_path: Path) -> None:
    """Due 10 s after issuance (renew_before: the certificate's life minus 10 s): the cron
    apply renews it, then `apply --watch` renews it again on its recheck, while requests
    flow on both families (https, and http's redirect) and a connection stays open."""
    with fresh_box(tmp_path, validity=3600) as box:
        site_inventory(box, renew_before="3590s")
        envoy = box.start_envoy()
        assert box.apply().returncode == 0
        chain = box.config / "certs" / "site" / "fullchain.pem"
        first = storage.read_certificate(str(chain))
        listeners = {
            name: box.counter(f"listener_manager.{name}")
            for name in ("listener_added", "listener_modified", "listener_removed")
        }
        with Traffic(box, "site.example.com") as traffic:
            wait_until_due(chain, 10)
            renewed = box.apply()
            assert renewed.returncode == 0, renewed.stderr
            assert re.search(
                r"^note: certificate site: renewed \(expires in \d+ minutes\), valid until ",
                renewed.stderr,
                re.M,
            ), renewed.stderr
            second = storage.read_certificate(str(chain))
            assert second.serial != first.serial
            wait_served(box, second.serial, "site.example.com")

            watch = subprocess.Popen(
                [*XDSGEN, "apply", "--watch", "--recheck", "0.5", str(box.inventory_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                wait_until(
                    lambda: storage.read_certificate(str(chain)).serial != second.serial,
                    40,
                    "apply --watch to renew the certificate",
                )
                third = storage.read_certificate(str(chain))
                wait_served(box, third.serial, "site.example.com")
            finally:
                watch.send_signal(signal.SIGTERM)
                _, err = watch.communicate(timeout=20)
            # Renewed when due (10 s after the last one), not before, and once.
            assert third.not_before >= second.not_before + datetime.timedelta(seconds=9)
            assert len(re.findall(r"note: certificate site: renewed", err)) == 1, err
            assert watch.returncode == 0, err
        assert traffic.failures == []
        assert traffic.sent >= 100, traffic.sent
        traffic.kept_still_works()
        # RDS and SDS only: no listener was added, changed (drained) or removed.
        assert listeners == {name: box.counter(f"listener_manager.{name}") for name in listeners}
        assert envoy.stat("listener_manager.lds.update_rejected") == "0"


def envoy_versions(box: Box) -> dict[str, str]:
    assert box.envoy is not None
    return {k: v for k, v in box.envoy.stats().items() if k.endswith(".version_text")}


def test_refused_challenge_leaves_everything_as_it_was_and_backs_off(tmp_path: Path) -> None:
    with fresh_box(tmp_path) as box:
        site_inventory(box)
        box.start_envoy()
        assert box.apply().returncode == 0
        chain = box.config / "certs" / "site" / "fullchain.pem"
        key = chain.parent / "privkey.pem"
        # A new name for the site: due (its domains changed). DNS sends the CA to
        # 127.0.0.2 for it, where nothing listens: its challenge fails.
        box.write(
            {"site": {"acme": box.acme()}},
            [tls_vhost([*SITE, "new.site.example.com"], "site", redirect_to_https=True)],
        )
        box.lab.dns.set_default("ipv6", "")
        box.lab.dns.add_a("new.site.example.com", ["127.0.0.2"])
        assert box.lab.dns.addresses("new.site.example.com") == ["127.0.0.2"]
        files, versions = box.config_files(), envoy_versions(box)
        pair = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in (chain, key)}
        state = (box.config / ".xdsgen" / "state.json").read_text()
        started = time.time()
        failed = box.apply()
        assert failed.returncode == 8, failed.stderr
        match = re.search(
            r"^error: certificate 'site', (\S+): the CA could not validate the challenge: "
            r"\1: (.*) \(ACME CA (\S+)\)$",
            failed.stderr,
            re.M,
        )
        assert match, failed.stderr
        assert match.group(1) == "new.site.example.com"
        assert match.group(3) == box.lab.pebble.directory
        assert "127.0.0.2" in match.group(2) and "[" in match.group(2)  # Pebble's words, type
        assert (
            "\nEnvoy answered every token on its http listeners here, so the CA did not reach"
            in (failed.stderr)
        )
        assert "Traceback" not in failed.stderr
        # The token routes were served and withdrawn: the same files, the same versions.
        assert {n: v[2] for n, v in box.config_files().items()} == {
            n: v[2] for n, v in files.items()
        }
        assert envoy_versions(box) == versions
        assert {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in pair} == pair
        assert State.load(str(box.config)).pending is None
        assert json.loads(state)["accepted"] == State.load(str(box.config)).accepted
        assert (
            box.served_serial("::1", "site.example.com")
            == storage.read_certificate(str(chain)).serial
        )
        record = records.load(str(box.config), "site")
        assert record.failures == 1 and started + 600 <= record.next_attempt <= time.time() + 600

        # Cron 5 minutes later: the CA is left alone (Pebble hears nothing), apply succeeds.
        heard = box.lab.pebble.log.read_text()
        again = box.apply()
        assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
        assert box.lab.pebble.log.read_text() == heard
        listed = box.run("certs", str(box.inventory_path), "--no-color")
        assert re.search(
            r"acme +due \(domains changed \(\+new\.site\.example\.com\)\); not retried before "
            r"\d{4}-\d\d-\d\d "
            r"\d\d:\d\d \(last failure: the CA could not validate",
            listed.stdout,
        ), listed.stdout
        # apply --watch rechecks often, and still never asks the CA again.
        watch = subprocess.Popen(
            [*XDSGEN, "apply", "--watch", "--recheck", "0.2", str(box.inventory_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        watch.send_signal(signal.SIGTERM)
        _, err = watch.communicate(timeout=20)
        assert watch.returncode == 0 and "error" not in err, err
        assert box.lab.pebble.log.read_text() == heard
        assert records.load(str(box.config), "site").failures == 1


def test_first_issuance_refused_leaves_the_fresh_box_as_it_was(tmp_path: Path) -> None:
    with fresh_box(tmp_path) as box:
        site_inventory(box)
        box.start_envoy()
        box.lab.dns.set_default("ipv6", "")
        box.lab.dns.set_default("ipv4", "127.0.0.2")
        files, versions = box.config_files(), envoy_versions(box)
        failed = box.apply()
        assert failed.returncode == 8, failed.stderr
        assert "the CA could not validate the challenge" in failed.stderr
        assert {n: v[2] for n, v in box.config_files().items()} == {
            n: v[2] for n, v in files.items()
        }
        assert envoy_versions(box) == versions
        assert not (box.config / "certs" / "site").exists()
        assert State.load(str(box.config)).pending is None
        # The next run backs off; it applies the rest, still without the certificate.
        again = box.apply()
        assert again.returncode == 0, again.stderr
        assert re.search(
            r"^note: certificate site: no certificate yet; not retried before .*; "
            r"`xdsgen certs renew --force` tries now$",
            again.stderr,
            re.M,
        ), again.stderr
        assert "note: certificate 'site' has not been obtained yet" in again.stderr
        assert box.get_http("127.0.0.1", "site.example.com")[0] == 503
        assert box.get_http("::1", "plain.example.com")[0] == 200


def test_two_certificates_and_an_apply_killed_while_a_token_was_served(tmp_path: Path) -> None:
    with fresh_box(tmp_path) as box:
        box.write(
            {"site": {"acme": box.acme()}, "other": {"acme": box.acme()}},
            [
                tls_vhost(SITE, "site", redirect_to_https=True),
                tls_vhost(["other.example.com"], "other"),
            ],
        )
        box.start_envoy()
        applied = box.apply("--verbose")
        assert applied.returncode == 0, applied.stderr
        # One order after the other, each with its own challenge routes.
        assert applied.stdout.count(": serving ") == 2, applied.stdout
        # Each order changes the http routes only, also after the first certificate exists.
        steps = re.findall(r"^  (\w[\w ]*): confirmed$", applied.stdout, re.M)
        assert steps[:4] == ["routes"] * 4, applied.stdout
        for name in ("site", "other"):
            assert f"note: certificate {name}: obtained" in applied.stderr
        assert box.served("::1", "other.example.com").issuer == pebble_issuer(box)
        assert box.served("127.0.0.1", "www.site.example.com").issuer == pebble_issuer(box)

        # An apply killed while a token was served leaves the route and the journal; the
        # next apply takes the route away again.
        from xdsgen.acme.challenges import Http01Challenge
        from xdsgen.admin import Admin
        from xdsgen.live.http01 import EnvoyHttp01, LiveDirectory
        from xdsgen.pipeline import load_model

        before = box.config_files()
        model = load_model(str(box.inventory_path))
        state = State.load(str(box.config))
        live = LiveDirectory(model, state, Admin.for_model(model), 10, 1, print)
        token = Http01Challenge("other.example.com", "killed-token", "killed-token.key")
        EnvoyHttp01(live).publish([token])  # and never withdrawn
        for _, host in FAMILIES:
            status, _, body = box.get_http(host, "other.example.com", token.path)
            assert (status, body) == (200, b"killed-token.key")
        assert State.load(str(box.config)) == state  # no config with a token in the history
        again = box.apply()
        assert again.returncode == 0, again.stderr
        assert again.stderr == (
            "note: the files on disk are not the last config Envoy confirmed "
            "(rds_http_ipv4.yaml, rds_http_ipv6.yaml); the plan replaces them\n"
        )
        assert {n: v[2] for n, v in box.config_files().items()} == {
            n: v[2] for n, v in before.items()
        }
        assert box.get_http("::1", "other.example.com", token.path)[0] == 200  # the app's
        assert b"killed-token.key" not in box.get_http("::1", "other.example.com", token.path)[2]
        assert State.load(str(box.config)).pending is None
