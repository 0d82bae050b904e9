"""The ACME engine against a real CA: Pebble (Let's Encrypt's test server) on loopback.

Pebble really validates: it fetches HTTP-01 tokens from the test's responder on its
httpPort, and looks up DNS-01 TXT records in pebble-challtestsrv, where the dns_hook the
test writes puts them. Nothing is mocked; PEBBLE_VA_ALWAYS_VALID is never set.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import stat
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from acme_harness import AcmeLab, ChallengeResponder, acme_lab
from cryptography import x509
from harness import free_ports, write_inventory
from test_acme_parts import make_pair
from test_apply_helpers import run_xdsgen

from xdsgen.acme import records, storage
from xdsgen.acme.account import ACCOUNT_FILE, ACCOUNT_KEY, account_dir
from xdsgen.acme.challenges import Http01Challenge
from xdsgen.acme.engine import renew_certificates
from xdsgen.certs import COLUMNS, statuses, table_rows
from xdsgen.errors import EXIT_ACME, AcmeError
from xdsgen.model import Model
from xdsgen.pipeline import load_model
from xdsgen.report.console import plain_table


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    with acme_lab(tmp_path_factory.mktemp("acme-lab")) as started:
        yield started


class Responder:
    """An Http01Publisher serving the tokens from the test's loopback responder (apply will
    serve them through Envoy). `wrong` serves a key authorization the CA must refuse."""

    def __init__(self, responder: Optional[ChallengeResponder], wrong: bool = False):
        assert responder is not None
        self.responder = responder
        self.wrong = wrong
        self.published: list[Http01Challenge] = []
        self.withdrawn: list[Http01Challenge] = []

    def publish(self, challenges: list[Http01Challenge]) -> None:
        for challenge in challenges:
            body = "not-the-key-authorization" if self.wrong else challenge.key_authorization
            self.responder.serve(challenge.path, body)
        # The contract: return only once every token is served.
        for challenge in challenges:
            url = f"http://127.0.0.1:{self.responder.port}{challenge.path}"
            with urllib.request.urlopen(url, timeout=5) as answer:
                assert answer.status == 200
        self.published += challenges

    def withdraw(self, challenges: list[Http01Challenge]) -> None:
        for challenge in challenges:
            self.responder.forget(challenge.path)
        self.withdrawn += challenges


def acme_settings(lab: AcmeLab, **extra: Any) -> dict[str, Any]:
    return {
        "email": "admin@example.com",
        "directory": lab.pebble.directory,
        "ca_bundle": str(lab.pebble.ca_bundle),
        **extra,
    }


def write_lab_inventory(
    tmp_path: Path,
    certificates: dict[str, Any],
    vhosts: list[dict[str, Any]],
    name: str = "inventory.yaml",
    **envoy: Any,
) -> Path:
    return write_inventory(
        tmp_path / name,
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "config"), "access_log": "off", **envoy},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 18080, "https": 18443}},
            "upstreams": {"app": "127.0.0.1:3000"},
            "certificates": certificates,
            "http": vhosts,
        },
    )


def tls_vhost(domains: list[str], cert: str, **extra: Any) -> dict[str, Any]:
    return {
        "domains": domains,
        "tls": cert,
        "routes": [{"prefix": "/", "upstream": "app"}],
        **extra,
    }


def dns_hook(
    tmp_path: Path, lab: AcmeLab, wrong: bool = False, before_remove: str = ""
) -> tuple[Path, Path]:
    """A real dns_hook: curl to pebble-challtestsrv's API, every call logged."""
    if not shutil.which("curl"):
        pytest.fail("curl is not installed (the test's dns_hook calls challtestsrv with it)")
    hook, log = tmp_path / "dns-hook", tmp_path / "dns-hook.log"
    value = "not-the-value" if wrong else "$3"
    api = lab.dns.management_url
    hook.write_text(
        "#!/bin/sh\n"
        "set -eu\n"
        f'echo "$1 $2" >> {log}\n'
        'case "$1" in\n'
        f'  add) curl -sSf -X POST -d "$(printf \'{{"host":"%s.","value":"%s"}}\' '
        f'"$2" "{value}")" {api}/set-txt ;;\n'
        f"  remove) {before_remove}curl -sSf -X POST "
        f'-d "$(printf \'{{"host":"%s."}}\' "$2")" {api}/clear-txt ;;\n'
        '  *) echo "unknown action $1" >&2; exit 2 ;;\n'
        "esac\n"
    )
    hook.chmod(0o755)
    return hook, log


def verify_chain(chain_pem: bytes, root_pem: str, name: str) -> x509.Certificate:
    """The chain verifies up to Pebble's root for `name` (cryptography's RFC 5280 verifier)."""
    from cryptography.x509.verification import PolicyBuilder, Store

    leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem)
    store = Store(x509.load_pem_x509_certificates(root_pem.encode()))
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf, intermediates)
    return leaf


def snapshot(*paths: str) -> list[tuple[bytes, int, int]]:
    return [
        (Path(p).read_bytes(), os.stat(p).st_ino, os.stat(p).st_mtime_ns)
        for p in paths
        if os.path.exists(p)
    ]


# --------------------------------------------------------------------------- HTTP-01


def test_http01_first_issuance(lab: AcmeLab, tmp_path: Path) -> None:
    domains = ["h1.example.com", "www.h1.example.com"]
    path = write_lab_inventory(
        tmp_path,
        {"site": {"acme": acme_settings(lab)}},
        [tls_vhost(domains, "site", redirect_to_https=True)],
    )
    model = load_model(str(path))
    (cert,) = model.certificates
    publisher = Responder(lab.responder)
    outcomes = renew_certificates(model.certificates, model.envoy.config_dir, http01=publisher)
    assert [(o.name, o.action, o.detail) for o in outcomes] == [
        ("site", "obtained", "no certificate yet")
    ]
    # One token per domain, each fetched by Pebble from the responder, then withdrawn.
    assert sorted(c.domain for c in publisher.published) == domains
    assert publisher.withdrawn == publisher.published
    assert lab.responder is not None and not lab.responder.answers
    for challenge in publisher.published:
        assert lab.responder.fetched.get(challenge.path, 0) >= 1, challenge
    # The chain verifies to Pebble's root for every domain, and belongs to the key.
    chain = Path(cert.cert).read_bytes()
    for domain in domains:
        leaf = verify_chain(chain, lab.pebble.root_pem(), domain)
    intermediate = x509.load_pem_x509_certificate(lab.pebble.intermediate_pem().encode())
    assert leaf.issuer == intermediate.subject
    info = storage.read_certificate(cert.cert)
    assert info.domains == tuple(domains)
    assert storage.inspect(cert.cert, cert.key).key_matches
    assert outcomes[0].not_after == info.not_after
    # Files: key 0600, chain 0644, under <config_dir>/certs/site/.
    assert stat.S_IMODE(os.stat(cert.key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cert.cert).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path / "config" / "certs" / "site")) == [
        "fullchain.pem",
        "privkey.pem",
    ]
    record = records.load(model.envoy.config_dir, "site")
    assert (record.issued_by, record.issued_serial) == (lab.pebble.directory, info.serial)
    # Fresh now: nothing is asked of the CA, the files stay as they are.
    before = snapshot(cert.cert, cert.key)
    again = renew_certificates(model.certificates, model.envoy.config_dir, http01=publisher)
    assert again[0].action == "fresh"
    assert len(publisher.published) == len(domains)
    assert snapshot(cert.cert, cert.key) == before


def test_account_is_created_once_and_reused(lab: AcmeLab, tmp_path: Path) -> None:
    path = write_lab_inventory(
        tmp_path,
        {"a": {"acme": acme_settings(lab)}, "b": {"acme": acme_settings(lab)}},
        [tls_vhost(["acct-a.example.com"], "a"), tls_vhost(["acct-b.example.com"], "b")],
    )
    model = load_model(str(path))
    messages: list[str] = []
    renew_certificates(
        model.certificates,
        model.envoy.config_dir,
        names=["a"],
        http01=Responder(lab.responder),
        progress=messages.append,
    )
    directory = Path(account_dir(model.envoy.config_dir, lab.pebble.directory))
    key, stored = directory / ACCOUNT_KEY, directory / ACCOUNT_FILE
    account_uri = json.loads(stored.read_text())["uri"]
    assert [m for m in messages if "registered ACME account" in m] == [
        f"certificate a: registered ACME account {account_uri}"
    ]
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    before = snapshot(str(key), str(stored))
    messages.clear()
    renew_certificates(
        model.certificates,
        model.envoy.config_dir,
        names=["b"],
        http01=Responder(lab.responder),
        progress=messages.append,
    )
    assert any(m.startswith("certificate b: obtained") for m in messages), messages
    assert not [m for m in messages if "registered" in m]
    assert snapshot(str(key), str(stored)) == before
    # Pebble knows the stored key as that same account.
    from xdsgen.acme.account import connect, register

    settings = model.certificates[0].acme
    assert settings is not None
    account = connect(settings, model.envoy.config_dir)
    assert (account.uri, account.created) == (account_uri, False)
    assert register(account.client, account.key, settings, model.envoy.config_dir).uri == (
        account_uri
    )


def test_a_ca_that_forgot_the_account_gets_it_registered_again(
    lab: AcmeLab, tmp_path: Path
) -> None:
    path = write_lab_inventory(
        tmp_path,
        {"site": {"acme": acme_settings(lab)}},
        [tls_vhost(["forgot.example.com"], "site")],
    )
    model = load_model(str(path))
    directory = Path(account_dir(model.envoy.config_dir, lab.pebble.directory))
    directory.mkdir(parents=True)
    gone = f"{lab.pebble.directory.rsplit('/', 1)[0]}/my-account/0000000000000000"
    (directory / ACCOUNT_FILE).write_text(json.dumps({"uri": gone, "email": "admin@example.com"}))
    messages: list[str] = []
    outcomes = renew_certificates(
        model.certificates,
        model.envoy.config_dir,
        http01=Responder(lab.responder),
        progress=messages.append,
    )
    assert outcomes[0].action == "obtained"
    again = [m for m in messages if m.endswith(" again")]
    assert len(again) == 1 and gone not in again[0], messages
    assert json.loads((directory / ACCOUNT_FILE).read_text())["uri"] != gone


def test_authorizations_the_ca_reuses_need_no_challenge(tmp_path: Path) -> None:
    with acme_lab(tmp_path / "lab", authz_reuse=100) as reusing:
        path = write_lab_inventory(
            tmp_path,
            {"site": {"acme": acme_settings(reusing)}},
            [tls_vhost(["reuse.example.com"], "site")],
        )
        model = load_model(str(path))
        publisher = Responder(reusing.responder)
        first = renew_certificates(model.certificates, model.envoy.config_dir, http01=publisher)
        assert first[0].action == "obtained" and len(publisher.published) == 1
        second = renew_certificates(
            model.certificates, model.envoy.config_dir, force=True, http01=publisher
        )
        assert [(o.action, o.detail) for o in second] == [("renewed", "forced")]
        assert len(publisher.published) == 1  # the valid authorization was reused


# --------------------------------------------------------------------------- DNS-01


def test_dns01_wildcard_through_a_real_hook(lab: AcmeLab, tmp_path: Path) -> None:
    hook, log = dns_hook(tmp_path, lab)
    path = write_lab_inventory(
        tmp_path,
        {"wild": {"acme": acme_settings(lab, challenge="dns-01", dns_hook=str(hook))}},
        [tls_vhost(["*.w1.example.com", "w1.example.com"], "wild")],
    )
    model = load_model(str(path))
    outcomes = renew_certificates(model.certificates, model.envoy.config_dir)
    assert [(o.name, o.action) for o in outcomes] == [("wild", "obtained")]
    (cert,) = model.certificates
    chain = Path(cert.cert).read_bytes()
    verify_chain(chain, lab.pebble.root_pem(), "anything.w1.example.com")
    verify_chain(chain, lab.pebble.root_pem(), "w1.example.com")
    assert storage.read_certificate(cert.cert).domains == ("*.w1.example.com", "w1.example.com")
    # Both authorizations (the wildcard's and the name's) use the same TXT name.
    fqdn = "_acme-challenge.w1.example.com"
    assert log.read_text().splitlines() == [f"add {fqdn}"] * 2 + [f"remove {fqdn}"] * 2
    assert lab.dns.txt(fqdn) == []  # removed afterwards (a real DNS query)


def test_dns01_hook_records_are_visible_while_the_ca_looks(lab: AcmeLab, tmp_path: Path) -> None:
    """The TXT record the hook added is in the DNS while the order runs: the hook queries the
    DNS server itself just before it removes the record."""
    seen = tmp_path / "seen.json"
    query = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from acme_harness import dns_txt_query; "
        f"print(json.dumps(dns_txt_query('127.0.0.1', {lab.dns.dns_port}, sys.argv[1])))"
    )
    hook, _ = dns_hook(
        tmp_path, lab, before_remove=f'{sys.executable} -c "{query}" "$2" >> {seen}; '
    )
    path = write_lab_inventory(
        tmp_path,
        {"site": {"acme": acme_settings(lab, challenge="dns-01", dns_hook=str(hook))}},
        [tls_vhost(["visible.example.com"], "site")],
    )
    model = load_model(str(path))
    renew_certificates(model.certificates, model.envoy.config_dir)
    (line,) = seen.read_text().splitlines()
    (value,) = json.loads(line)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value)  # base64url of a SHA-256: the real value
    assert lab.dns.txt("_acme-challenge.visible.example.com") == []


# --------------------------------------------------------------------------- failures


def test_refused_challenge_changes_nothing_and_backs_off(lab: AcmeLab, tmp_path: Path) -> None:
    path = write_lab_inventory(
        tmp_path, {"site": {"acme": acme_settings(lab)}}, [tls_vhost(["r1.example.com"], "site")]
    )
    model = load_model(str(path))
    config = model.envoy.config_dir
    renew_certificates(model.certificates, config, http01=Responder(lab.responder))
    (cert,) = model.certificates
    before = snapshot(cert.cert, cert.key)
    # Another domain for the certificate: due, and the responder serves the wrong answer.
    path = write_lab_inventory(
        tmp_path,
        {"site": {"acme": acme_settings(lab)}},
        [tls_vhost(["r1.example.com", "r2.example.com"], "site")],
    )
    model = load_model(str(path))
    wrong = Responder(lab.responder, wrong=True)
    started = time.time()
    with pytest.raises(AcmeError) as caught:
        renew_certificates(model.certificates, config, http01=wrong)
    error = caught.value
    assert error.exit_code == EXIT_ACME == 8
    assert error.domain in ("r1.example.com", "r2.example.com")
    assert str(error).startswith(f"certificate 'site', {error.domain}: the CA could not validate")
    # Pebble's own words: the key authorization it fetched was not the expected one.
    assert "key authorization" in error.reason.lower() and "[unauthorized]" in error.reason
    assert str(error).endswith(f"(ACME CA {lab.pebble.directory})")
    assert wrong.withdrawn == wrong.published  # tokens withdrawn after the failure too
    assert snapshot(cert.cert, cert.key) == before
    assert sorted(os.listdir(Path(cert.cert).parent)) == ["fullchain.pem", "privkey.pem"]
    record = records.load(config, "site")
    assert record.failures == 1 and record.reason == error.reason
    assert started + 600 <= record.next_attempt <= time.time() + 600
    # The next run (cron, 5 minutes later) does not ask the CA: it waits.
    retry = Responder(lab.responder)
    outcomes = renew_certificates(model.certificates, config, http01=retry, now=started + 300)
    (waiting,) = outcomes
    assert waiting.action == "waiting" and not retry.published
    assert waiting.detail.startswith("domains changed (+r2.example.com); not retried before ")
    assert "after 1 failure (last: the CA could not validate" in waiting.detail
    assert snapshot(cert.cert, cert.key) == before
    # --force ignores the back-off; success clears it.
    forced = renew_certificates(model.certificates, config, http01=retry, force=True)
    assert [(o.action, o.detail) for o in forced] == [
        ("renewed", "forced (domains changed (+r2.example.com))")
    ]
    assert storage.read_certificate(cert.cert).domains == ("r1.example.com", "r2.example.com")
    assert records.load(config, "site").failures == 0


def test_unreachable_ca_and_unverifiable_https(lab: AcmeLab, tmp_path: Path) -> None:
    (closed,) = free_ports(1)
    path = write_lab_inventory(
        tmp_path,
        {
            "down": {"acme": acme_settings(lab, directory=f"https://127.0.0.1:{closed}/dir")},
            "untrusted": {"acme": {"email": "a@example.com", "directory": lab.pebble.directory}},
        },
        [
            tls_vhost(["down.example.com"], "down"),
            tls_vhost(["untrusted.example.com"], "untrusted"),
        ],
    )
    model = load_model(str(path))
    publisher = Responder(lab.responder)
    with pytest.raises(AcmeError) as caught:
        renew_certificates(model.certificates, model.envoy.config_dir, http01=publisher)
    lines = str(caught.value).splitlines()
    assert lines == [
        "certificate 'down', down.example.com: cannot reach the CA: Connection refused "
        f"(ACME CA https://127.0.0.1:{closed}/dir)",
        "certificate 'untrusted', untrusted.example.com: cannot verify the ACME server's HTTPS "
        "certificate (CERTIFICATE_VERIFY_FAILED); for a private CA set acme.ca_bundle to the CA "
        f"file that signed it (ACME CA {lab.pebble.directory})",
    ]
    assert caught.value.exit_code == 8
    assert not publisher.published
    assert not (tmp_path / "config" / "certs").exists()
    for name in ("down", "untrusted"):
        assert records.load(model.envoy.config_dir, name).failures == 1


# --------------------------------------------------------------------------- the CLI


def test_certs_renew_cli_dns01_backoff_and_force(lab: AcmeLab, tmp_path: Path) -> None:
    hook, log = dns_hook(tmp_path, lab, wrong=True)
    path = write_lab_inventory(
        tmp_path,
        {"wild": {"acme": acme_settings(lab, challenge="dns-01", dns_hook=str(hook))}},
        [tls_vhost(["*.cli.example.com"], "wild")],
    )
    failed = run_xdsgen("certs", "renew", str(path))
    assert failed.returncode == 8, failed.stderr
    assert failed.stderr.startswith(
        "error: certificate 'wild', cli.example.com: the CA could not validate the challenge: "
        "cli.example.com: "
    ), failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (tmp_path / "config" / "certs" / "wild" / "fullchain.pem").exists()
    calls = log.read_text()
    again = run_xdsgen("certs", "renew", str(path))
    assert again.returncode == 8
    assert re.search(
        r"^error: certificate wild: no certificate yet; not retried before \d{4}-\d\d-\d\d "
        r"\d\d:\d\d UTC after 1 failure \(last: the CA could not validate .*\); --force tries now$",
        again.stderr,
        re.M,
    ), again.stderr
    assert log.read_text() == calls  # the CA (and the DNS provider) were left alone
    dns_hook(tmp_path, lab)  # the hook fixed
    forced = run_xdsgen("certs", "renew", str(path), "wild", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "certificate wild: obtained" in forced.stdout
    assert f"run `xdsgen apply {path}` to hand the new files to Envoy" in forced.stdout
    fresh = run_xdsgen("certs", "renew", str(path))
    assert fresh.returncode == 0
    assert re.fullmatch(r"certificate wild: not due \(valid for \d+ days more\)\n", fresh.stdout)


def test_certs_renew_cli_http01_needs_envoy_and_names_are_checked(
    lab: AcmeLab, tmp_path: Path
) -> None:
    path = write_lab_inventory(
        tmp_path,
        {"site": {"acme": acme_settings(lab)}, "plain": {"cert": "/x/c.pem", "key": "/x/k.pem"}},
        [tls_vhost(["needs-envoy.example.com"], "site"), tls_vhost(["p.example.com"], "plain")],
    )
    result = run_xdsgen("certs", "renew", str(path))
    assert result.returncode == 6
    socket = tmp_path / "config" / "admin.sock"
    assert result.stderr.endswith(
        f"error: http-01 is answered by the running Envoy, and Envoy's admin at unix:{socket} "
        "is unreachable: No such file or directory. Start Envoy (`xdsgen render`, then Envoy "
        "with `xdsgen bootstrap`'s config) or use challenge: dns-01\n"
    ), result.stderr
    assert records.load(str(tmp_path / "config"), "site") == records.Record()  # no back-off
    unknown = run_xdsgen("certs", "renew", str(path), "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.endswith(
        "error: no certificate named 'nope' in the inventory (known: plain, site)\n"
    )
    plain = run_xdsgen("certs", "renew", str(path), "plain")
    assert plain.returncode == 2
    assert "certificate 'plain' has no acme: its files are renewed outside xdsgen" in plain.stderr


def certs_lines(model: Model, now: float) -> list[str]:
    return plain_table(COLUMNS, table_rows(statuses(model, now)))


def test_certs_list_exact_lines(lab: AcmeLab, tmp_path: Path) -> None:
    hook, _ = dns_hook(tmp_path, lab)
    utc = datetime.timezone.utc
    key_pem, chain_pem = make_pair(
        ["files.example.com"],
        datetime.datetime(2030, 1, 1, tzinfo=utc),
        datetime.datetime(2030, 4, 1, 6, 30, tzinfo=utc),
    )
    (tmp_path / "files.key").write_bytes(key_pem)
    (tmp_path / "files.pem").write_bytes(chain_pem)
    path = write_lab_inventory(
        tmp_path,
        {
            "files": {"cert": str(tmp_path / "files.pem"), "key": str(tmp_path / "files.key")},
            "site": {"acme": acme_settings(lab, challenge="dns-01", dns_hook=str(hook))},
            "wild": {
                "acme": acme_settings(
                    lab, challenge="dns-01", dns_hook=str(hook), renew_before="20d"
                )
            },
        },
        [
            tls_vhost(["files.example.com"], "files"),
            tls_vhost(["list.example.com", "www.list.example.com"], "site"),
            tls_vhost(["*.list2.example.com"], "wild"),
        ],
    )
    model = load_model(str(path))
    renew_certificates(model.certificates, model.envoy.config_dir, names=["site"])
    site = storage.read_certificate(model.certificates[1].cert)
    issuer = x509.load_pem_x509_certificate(lab.pebble.intermediate_pem().encode())
    issuer_cn = issuer.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert issuer_cn.startswith("Pebble Intermediate CA ")
    when = datetime.datetime(2030, 3, 2, 6, 30, tzinfo=utc)
    days = (site.not_after - when).days
    renew_at = site.not_after - datetime.timedelta(days=30)
    assert len(issuer_cn) == 29  # "Pebble Intermediate CA " and 6 hex digits: fixed width
    expected = [
        "name   domains                                 issuer                         "
        "not after (UTC)   days left  source  renewal",
        "files  files.example.com                       Test Issuer R1                 "
        "2030-04-01 06:30  30         file    outside xdsgen",
        f"site   list.example.com, www.list.example.com  {issuer_cn}  "
        f"{site.not_after:%Y-%m-%d %H:%M}  {days:<9}  acme    from {renew_at:%Y-%m-%d %H:%M}",
        "wild   *.list2.example.com                     (no certificate)               "
        "-                 -          acme    due: no certificate yet",
    ]
    assert certs_lines(model, when.timestamp()) == expected
    # The command prints the same table (for the moment it ran).
    before = time.time()
    result = run_xdsgen("certs", str(path), "--no-color")
    after = time.time()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() in (certs_lines(model, before), certs_lines(model, after))
    as_json = json.loads(run_xdsgen("certs", "list", "--format", "json", str(path)).stdout)
    by_name = {c["name"]: c for c in as_json["certificates"]}
    assert by_name["files"]["source"] == "file" and by_name["files"]["renewal"] is None
    assert by_name["files"]["not_after"] == "2030-04-01T06:30:00Z"
    assert by_name["site"]["serial"] == site.serial and by_name["site"]["key_matches"]
    assert by_name["site"]["renewal"]["due"] is None
    assert by_name["wild"]["problem"] == "missing"
    assert by_name["wild"]["renewal"]["due"] == "no certificate yet"
    assert by_name["wild"]["domains"] == ["*.list2.example.com"]
