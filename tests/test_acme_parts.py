"""The ACME engine's parts that need no CA: the renewal decision, the back-off record, how a
new pair is installed (and a killed install finished), the DNS hook runner, the CA's
problem documents as AcmeError. Real files, real processes; the CA itself is in
test_acme_pebble.py.
"""

from __future__ import annotations

import datetime
import os
import stat
import time
from pathlib import Path
from typing import Optional

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from xdsgen.acme import records, renewal, storage
from xdsgen.acme.challenges import Dns01Challenge
from xdsgen.acme.hook import DnsHook
from xdsgen.errors import EXIT_ACME, AcmeError
from xdsgen.model.certificates import LETSENCRYPT, LETSENCRYPT_STAGING, AcmeSettings, Certificate

UTC = datetime.timezone.utc
NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DAY = datetime.timedelta(days=1)


def make_pair(
    names: list[str],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    key: Optional[ec.EllipticCurvePrivateKey] = None,
) -> tuple[bytes, bytes]:
    """(key PEM, chain PEM) of a self-signed certificate for `names`."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, names[0])])
    issuer = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test Issuer R1")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(0x1234ABCD)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def acme_cert(tmp_path: Path, domains: tuple[str, ...], renew_before: str = "30d") -> Certificate:
    from xdsgen.model.certificates import parse_period

    settings = AcmeSettings(
        email="a@example.com",
        directory=LETSENCRYPT,
        ca_bundle=None,
        challenge="http-01",
        dns_hook=None,
        dns_propagation=0,
        renew_before=parse_period(renew_before),
    )
    return Certificate(
        "site", str(tmp_path / "fullchain.pem"), str(tmp_path / "privkey.pem"), domains, settings
    )


def write_pair(cert: Certificate, key_pem: bytes, chain_pem: bytes) -> None:
    Path(cert.key).write_bytes(key_pem)
    Path(cert.cert).write_bytes(chain_pem)


NO_RECORD = records.Record()


def due(cert: Certificate, record: records.Record = NO_RECORD) -> Optional[str]:
    return renewal.due_reason(cert, storage.inspect(cert.cert, cert.key), record, NOW)


# --------------------------------------------------------------------------- renewal decision


def test_missing_certificate_is_due(tmp_path: Path) -> None:
    assert due(acme_cert(tmp_path, ("a.example.com",))) == "no certificate yet"


def test_expiry_against_renew_before(tmp_path: Path) -> None:
    cert = acme_cert(tmp_path, ("a.example.com",))
    write_pair(cert, *make_pair(["a.example.com"], NOW - 60 * DAY, NOW + 31 * DAY))
    assert due(cert) is None
    write_pair(cert, *make_pair(["a.example.com"], NOW - 60 * DAY, NOW + 29 * DAY))
    assert due(cert) == "expires in 29 days"
    # renew_before is the user's: 20d keeps a certificate with 29 days left.
    assert due(acme_cert(tmp_path, ("a.example.com",), "20d")) is None
    write_pair(cert, *make_pair(["a.example.com"], NOW - 60 * DAY, NOW - DAY))
    assert due(cert) == "expired"


def test_short_lived_certificate_renews_at_a_third_of_its_life(tmp_path: Path) -> None:
    """A 6-day certificate with renew_before 30d must not be renewed on every run."""
    cert = acme_cert(tmp_path, ("a.example.com",))
    write_pair(cert, *make_pair(["a.example.com"], NOW - 3 * DAY, NOW + 3 * DAY))
    assert due(cert) is None
    write_pair(cert, *make_pair(["a.example.com"], NOW - 5 * DAY, NOW + DAY))
    assert due(cert) == "expires in 24 hours"
    info = storage.read_certificate(cert.cert)
    assert renewal.renew_at(info, 30 * 86400) == NOW + DAY - 2 * DAY


def test_domains_changed_or_key_mismatch_or_other_ca(tmp_path: Path) -> None:
    cert = acme_cert(tmp_path, ("a.example.com", "b.example.com"))
    key_pem, chain_pem = make_pair(["a.example.com", "c.example.com"], NOW - DAY, NOW + 80 * DAY)
    write_pair(cert, key_pem, chain_pem)
    assert due(cert) == "domains changed (+b.example.com, -c.example.com)"
    other_key, _ = make_pair(["x"], NOW - DAY, NOW + DAY)
    write_pair(cert, other_key, chain_pem)
    assert due(cert) == f"{cert.key} is missing or does not belong to {cert.cert}"
    cert = acme_cert(tmp_path, ("a.example.com", "c.example.com"))
    write_pair(cert, key_pem, chain_pem)
    assert due(cert) is None
    staging = records.Record(issued_by=LETSENCRYPT_STAGING, issued_serial="1234abcd")
    assert due(cert, staging) == f"issued by another CA ({LETSENCRYPT_STAGING})"
    # A serial that is not the recorded one: files put there by hand, their CA unknown.
    assert due(cert, records.Record(issued_by=LETSENCRYPT_STAGING, issued_serial="99")) is None


def test_unreadable_chain_is_due(tmp_path: Path) -> None:
    cert = acme_cert(tmp_path, ("a.example.com",))
    write_pair(cert, b"junk", b"not a certificate")
    assert due(cert) == f"{cert.cert} holds no PEM certificate"


# --------------------------------------------------------------------------- back-off


def test_backoff_doubles_is_capped_and_cleared(tmp_path: Path) -> None:
    record = records.Record(issued_by=LETSENCRYPT, issued_serial="ab")
    now = 1_000_000.0
    waits = []
    for _ in range(10):
        record = records.failed(record, "connection refused", now)
        waits.append(record.next_attempt - now)
    assert waits[:5] == [600, 1200, 2400, 4800, 9600]
    assert waits[-1] == records.BACKOFF_MAX == 86400
    assert (record.failures, record.last_failure, record.reason) == (10, now, "connection refused")
    assert records.waiting_until(record, now + 100) == now + 86400
    assert records.waiting_until(record, now + 86400) is None
    records.save(str(tmp_path), "site", record)
    assert records.load(str(tmp_path), "site") == record
    cleared = records.succeeded(record, LETSENCRYPT, "cd")
    assert cleared == records.Record(issued_by=LETSENCRYPT, issued_serial="cd")
    assert records.waiting_until(cleared, now) is None


def test_rate_limit_waits_at_least_an_hour_or_until_the_ca_says(tmp_path: Path) -> None:
    now = datetime.datetime(2030, 1, 1, 0, 0, tzinfo=UTC).timestamp()
    limited = records.failed(records.Record(), "too many new orders", now, rate_limited=True)
    assert limited.next_attempt == now + 3600
    reason = (
        "too many certificates (5) already issued for this exact set of identifiers in the last "
        "168h0m0s, retry after 2030-01-03 10:20:30 UTC: see https://letsencrypt.org/docs/"
    )
    limited = records.failed(records.Record(), reason, now, rate_limited=True)
    assert limited.next_attempt == datetime.datetime(2030, 1, 3, 10, 20, 30, tzinfo=UTC).timestamp()


def test_unreadable_record_is_empty(tmp_path: Path) -> None:
    path = Path(records.record_path(str(tmp_path), "site"))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert records.load(str(tmp_path), "site") == records.Record()
    path.write_text('{"failures": "many", "reason": 5, "next_attempt": 7}')
    assert records.load(str(tmp_path), "site") == records.Record(next_attempt=7.0)


# --------------------------------------------------------------------------- storage


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_install_writes_key_0600_chain_0644_and_nothing_else(tmp_path: Path) -> None:
    directory = tmp_path / "certs" / "site"
    cert, key = str(directory / "fullchain.pem"), str(directory / "privkey.pem")
    key_pem, chain_pem = make_pair(["a.example.com"], NOW - DAY, NOW + DAY)
    storage.install(cert, key, key_pem, chain_pem)
    assert Path(key).read_bytes() == key_pem and Path(cert).read_bytes() == chain_pem
    assert (mode(key), mode(cert)) == (0o600, 0o644)
    assert sorted(os.listdir(directory)) == ["fullchain.pem", "privkey.pem"]
    other_key, _ = make_pair(["x"], NOW - DAY, NOW + DAY)
    with pytest.raises(ValueError, match="does not belong"):
        storage.install(cert, key, other_key, chain_pem)
    assert Path(key).read_bytes() == key_pem


def test_renewal_keeps_owner_and_mode_but_never_others_read(tmp_path: Path) -> None:
    cert, key = str(tmp_path / "fullchain.pem"), str(tmp_path / "privkey.pem")
    storage.install(cert, key, *make_pair(["a.example.com"], NOW - DAY, NOW + DAY))
    os.chmod(key, 0o640)  # the user gave the key to Envoy's group once
    storage.install(cert, key, *make_pair(["a.example.com"], NOW - DAY, NOW + DAY))
    assert mode(key) == 0o640
    os.chmod(key, 0o644)
    storage.install(cert, key, *make_pair(["a.example.com"], NOW - DAY, NOW + DAY))
    assert mode(key) == 0o640


def test_new_files_and_directories_get_the_owner_of_their_directory(tmp_path: Path) -> None:
    """Docker: `chown 101 config/certs` once, and Envoy (uid 101) reads every key made."""
    certs = tmp_path / "certs"
    certs.mkdir()
    # As root give the directory away (a real chown); otherwise it stays ours, the same rule.
    owner = 101 if os.geteuid() == 0 else os.geteuid()
    os.chown(certs, owner, -1)
    cert, key = str(certs / "site" / "fullchain.pem"), str(certs / "site" / "privkey.pem")
    storage.install(cert, key, *make_pair(["a.example.com"], NOW - DAY, NOW + DAY))
    for path in (str(certs / "site"), cert, key):
        assert os.stat(path).st_uid == owner, path
    assert mode(key) == 0o600


def test_recover_finishes_an_install_killed_between_the_renames(tmp_path: Path) -> None:
    cert, key = str(tmp_path / "fullchain.pem"), str(tmp_path / "privkey.pem")
    old_key, old_chain = make_pair(["a.example.com"], NOW - DAY, NOW + DAY)
    storage.install(cert, key, old_key, old_chain)
    new_key, new_chain = make_pair(["a.example.com"], NOW, NOW + 90 * DAY)
    # Killed after the key's rename: the new key beside the old chain, the new chain staged.
    Path(storage.staged_path(cert)).write_bytes(new_chain)
    Path(key).write_bytes(new_key)
    assert not storage.inspect(cert, key).key_matches
    assert storage.recover(cert, key) is not None
    assert (Path(key).read_bytes(), Path(cert).read_bytes()) == (new_key, new_chain)
    assert storage.inspect(cert, key).key_matches
    assert sorted(os.listdir(tmp_path)) == ["fullchain.pem", "privkey.pem"]
    assert storage.recover(cert, key) is None


def test_recover_completes_both_staged_and_drops_a_lone_staged_key(tmp_path: Path) -> None:
    cert, key = str(tmp_path / "fullchain.pem"), str(tmp_path / "privkey.pem")
    old_key, old_chain = make_pair(["a.example.com"], NOW - DAY, NOW + DAY)
    storage.install(cert, key, old_key, old_chain)
    new_key, new_chain = make_pair(["a.example.com"], NOW, NOW + 90 * DAY)
    # Killed before the first rename: both new files complete and staged.
    Path(storage.staged_path(key)).write_bytes(new_key)
    Path(storage.staged_path(cert)).write_bytes(new_chain)
    storage.recover(cert, key)
    assert (Path(key).read_bytes(), Path(cert).read_bytes()) == (new_key, new_chain)
    # Killed while staging the chain: only the key staged, the old pair untouched.
    Path(storage.staged_path(key)).write_bytes(old_key)
    (tmp_path / ".xdsgen-tmp-half.pem").write_bytes(b"-----BEGIN CERT")
    storage.recover(cert, key)
    assert (Path(key).read_bytes(), Path(cert).read_bytes()) == (new_key, new_chain)
    assert sorted(os.listdir(tmp_path)) == ["fullchain.pem", "privkey.pem"]


# --------------------------------------------------------------------------- DNS hook


def hook_script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "hook"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


CHALLENGES = [
    Dns01Challenge("example.com", "_acme-challenge.example.com", "v1"),
    Dns01Challenge("www.example.com", "_acme-challenge.www.example.com", "v2"),
]


def test_hook_is_called_with_action_fqdn_value(tmp_path: Path) -> None:
    log = tmp_path / "log"
    hook = DnsHook("site", hook_script(tmp_path, f'echo "$@" >> {log}\n'), propagation=0.3)
    started = time.monotonic()
    hook.publish(CHALLENGES)
    assert time.monotonic() - started >= 0.3  # dns_propagation waits after the last add
    hook.withdraw(CHALLENGES)
    assert log.read_text().splitlines() == [
        "add _acme-challenge.example.com v1",
        "add _acme-challenge.www.example.com v2",
        "remove _acme-challenge.example.com v1",
        "remove _acme-challenge.www.example.com v2",
    ]


def test_failed_add_names_domain_and_stderr_and_removes_what_was_added(tmp_path: Path) -> None:
    log = tmp_path / "log"
    body = (
        f'echo "$@" >> {log}\n'
        'if [ "$1 $2" = "add _acme-challenge.www.example.com" ]; then\n'
        '  echo "provider said: 403 token lacks zone edit" >&2; exit 3\nfi\n'
    )
    hook = DnsHook("site", hook_script(tmp_path, body))
    with pytest.raises(AcmeError) as caught:
        hook.publish(CHALLENGES)
    error = caught.value
    assert error.exit_code == EXIT_ACME == 8
    assert error.domain == "www.example.com"
    assert str(error) == (
        f"certificate 'site', www.example.com: dns_hook `{tmp_path}/hook add "
        "_acme-challenge.www.example.com VALUE` failed (exit 3): provider said: 403 token lacks "
        "zone edit"
    )
    assert log.read_text().splitlines()[-1] == "remove _acme-challenge.example.com v1"


def test_hook_missing_not_executable_or_hanging(tmp_path: Path) -> None:
    with pytest.raises(AcmeError, match="does not exist"):
        DnsHook("site", str(tmp_path / "nope")).publish(CHALLENGES[:1])
    path = hook_script(tmp_path, "exit 0\n")
    os.chmod(path, 0o644)  # no x bit at all: even root may not execute it
    with pytest.raises(AcmeError, match=r"is not executable \(chmod \+x it\)"):
        DnsHook("site", path).publish(CHALLENGES[:1])
    slow = hook_script(tmp_path, "sleep 5\n")
    started = time.monotonic()
    with pytest.raises(AcmeError, match=r"did not finish within 0.5s"):
        DnsHook("site", slow, timeout=0.5).publish(CHALLENGES[:1])
    assert time.monotonic() - started < 4


def test_failed_remove_is_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    body = 'if [ "$1" = remove ]; then echo gone >&2; exit 1; fi\n'
    hook = DnsHook("site", hook_script(tmp_path, body), warn=warnings.append)
    hook.publish(CHALLENGES[:1])
    hook.withdraw(CHALLENGES[:1])
    assert warnings == [
        f"warning: certificate 'site', example.com: dns_hook `{tmp_path}/hook remove "
        "_acme-challenge.example.com VALUE` failed (exit 1): gone"
    ]


# --------------------------------------------------------------------------- the CA's problems


def test_problem_documents_become_acme_errors() -> None:
    from acme import messages

    from xdsgen.acme.failures import translated

    limited = messages.Error.with_code(
        "rateLimited",
        detail="too many new orders recently",
        identifier=messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="a.example.com"),
    )
    with pytest.raises(AcmeError) as caught, translated("site", ("a.example.com",), "https://ca"):
        raise limited
    assert caught.value.rate_limited
    assert caught.value.domain == "a.example.com"
    assert str(caught.value) == (
        "certificate 'site', a.example.com: rate limited by the CA: too many new orders "
        "recently [rateLimited] (ACME CA https://ca)"
    )
    refused = messages.Error.with_code("rejectedIdentifier", detail="blocked by policy")
    with pytest.raises(AcmeError) as caught, translated("site", ("a.b", "c.d"), "https://ca"):
        raise refused
    assert not caught.value.rate_limited
    assert str(caught.value) == (
        "certificate 'site', a.b, c.d: the CA refused: blocked by policy [rejectedIdentifier] "
        "(ACME CA https://ca)"
    )
