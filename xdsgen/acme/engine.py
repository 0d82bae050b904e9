"""Obtain and renew the `acme:` certificates of a model: the one entry point for callers.

`renew_certificates` goes through the certificates in name order. For each: finish an
installation a killed run left half done, decide whether it is due (renewal.due_reason),
respect the back-off of earlier failures (unless forced), run one order through the CA
with the right publisher, check what came back, install it, remember it. A failure is
recorded as back-off and the others still run; then every failure is raised together as
one AcmeError (exit 8). The running Envoy and the existing files are never touched by a
failure. The caller holds the config directory's lock and hands the new files to Envoy
(apply's certificate-renewal path).

For HTTP-01 the caller passes the publisher (apply: routes through Envoy's RDS); without
one an http-01 certificate that is due fails with a clear message.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable, Optional, Union

from xdsgen.acme import order as order_mod
from xdsgen.acme import records, renewal, storage
from xdsgen.acme.challenges import Dns01Publisher, Http01Publisher
from xdsgen.errors import AcmeError, IOProblem, UsageProblem
from xdsgen.model.certificates import HTTP01, Certificate

Report = Callable[[str], None]
HTTP01_NEEDS_APPLY = (
    "http-01 is answered by Envoy itself: `xdsgen apply` or `xdsgen certs renew` obtain "
    "this certificate while Envoy runs"
)


@dataclass(frozen=True)
class Outcome:
    name: str
    action: str  # obtained, renewed, fresh, waiting (back-off)
    detail: str  # why it was (not) renewed
    not_after: Optional[datetime.datetime] = None


def acme_certificates(
    certificates: Iterable[Certificate], names: Optional[Iterable[str]] = None
) -> list[Certificate]:
    """The acme: certificates, all or the ones named (UsageProblem for an unknown name)."""
    everything = {c.name: c for c in certificates}
    if not names:
        return [c for c in everything.values() if c.acme]
    chosen = []
    for name in names:
        if name not in everything:
            known = ", ".join(sorted(everything)) or "none"
            raise UsageProblem(f"no certificate named {name!r} in the inventory (known: {known})")
        if everything[name].acme is None:
            raise UsageProblem(
                f"certificate {name!r} has no acme: its files are renewed outside xdsgen"
            )
        chosen.append(everything[name])
    return chosen


def _require_library() -> None:
    try:
        import acme  # noqa: F401
        import josepy  # noqa: F401
    except ImportError:
        raise IOProblem(
            "certificates with acme: need the acme library: pip install 'xdsgen[acme]'"
        ) from None


def renew_certificates(
    certificates: Iterable[Certificate],
    config_dir: str,
    names: Optional[Iterable[str]] = None,
    force: bool = False,
    http01: Optional[Http01Publisher] = None,
    now: Optional[float] = None,
    progress: Report = lambda _: None,
    warn: Report = lambda _: None,
) -> list[Outcome]:
    outcomes = []
    failures: list[AcmeError] = []
    for cert in acme_certificates(certificates, names):
        moment = time.time() if now is None else now
        try:
            outcomes.append(renew_one(cert, config_dir, force, http01, moment, progress, warn))
        except AcmeError as exc:
            failures.append(exc)
    if failures:
        raise combined(failures)
    return outcomes


def combined(failures: list[AcmeError]) -> AcmeError:
    first = failures[0]
    if len(failures) == 1:
        return first
    error = AcmeError(first.certificate, first.domain, first.reason, first.ca, first.rate_limited)
    error.args = ("\n".join(str(f) for f in failures),)
    return error


def renew_one(
    cert: Certificate,
    config_dir: str,
    force: bool,
    http01: Optional[Http01Publisher],
    now: float,
    progress: Report,
    warn: Report,
) -> Outcome:
    settings = cert.acme
    assert settings is not None
    finished = storage.recover(cert.cert, cert.key)
    if finished:
        progress(f"certificate {cert.name}: {finished}")
    pair = storage.inspect(cert.cert, cert.key)
    record = records.load(config_dir, cert.name)
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    reason = renewal.due_reason(cert, pair, record, moment)
    if force:
        reason = "forced" + (f" ({reason})" if reason else "")
    if reason is None:
        assert pair.info is not None
        left = renewal.span((pair.info.not_after - moment).total_seconds())
        return Outcome(cert.name, "fresh", f"valid for {left} more", pair.info.not_after)
    until = None if force else records.waiting_until(record, now)
    if until is not None:
        when = datetime.datetime.fromtimestamp(until, datetime.timezone.utc)
        return Outcome(
            cert.name,
            "waiting",
            f"{reason}; not retried before {when:%Y-%m-%d %H:%M} UTC after {record.failures} "
            f"failure{'s' if record.failures != 1 else ''} (last: {record.reason}); "
            "--force tries now",
        )
    publisher: Union[Http01Publisher, Dns01Publisher]
    if settings.challenge == HTTP01:
        if http01 is None:
            raise AcmeError(cert.name, ", ".join(cert.domains), HTTP01_NEEDS_APPLY)
        publisher = http01
    else:
        from xdsgen.acme.hook import DnsHook

        assert settings.dns_hook is not None
        publisher = DnsHook(cert.name, settings.dns_hook, settings.dns_propagation, warn=warn)
    _require_library()
    progress(f"certificate {cert.name}: {reason}: asking {settings.directory}")
    try:
        issued = _order(cert, config_dir, publisher, progress)
        info = _check(cert, issued)
    except AcmeError as exc:
        records.save(
            config_dir, cert.name, records.failed(record, exc.reason, now, exc.rate_limited)
        )
        raise
    storage.install(cert.cert, cert.key, issued.key_pem, issued.chain_pem)
    records.save(config_dir, cert.name, records.succeeded(record, settings.directory, info.serial))
    action = "obtained" if pair.info is None else "renewed"
    progress(f"certificate {cert.name}: {action}, serial {info.serial}, until {info.not_after}")
    return Outcome(cert.name, action, reason, info.not_after)


def _order(
    cert: Certificate,
    config_dir: str,
    publisher: Union[Http01Publisher, Dns01Publisher],
    progress: Report,
) -> order_mod.Issued:
    from acme import messages

    from xdsgen.acme import account as account_mod
    from xdsgen.acme.failures import translated

    settings = cert.acme
    assert settings is not None
    with translated(cert.name, cert.domains, settings.directory):
        account = account_mod.connect(settings, config_dir)
        if account.created:
            progress(f"certificate {cert.name}: registered ACME account {account.uri}")
        try:
            return order_mod.issue(account, cert.name, cert.domains, settings.challenge, publisher)
        except messages.Error as exc:
            if exc.code != "accountDoesNotExist" or account.created:
                raise
        # The CA forgot the account (a test CA restarted, an account deactivated): again.
        account = account_mod.register(account.client, account.key, settings, config_dir)
        progress(f"certificate {cert.name}: registered ACME account {account.uri} again")
        return order_mod.issue(account, cert.name, cert.domains, settings.challenge, publisher)


def _check(cert: Certificate, issued: order_mod.Issued) -> storage.CertInfo:
    """What the CA sent must be a chain for the new key covering exactly the domains."""
    problem = None
    try:
        info = storage.parse_chain(issued.chain_pem)
    except (ValueError, IndexError):
        problem = "the CA sent no PEM certificate"
    else:
        if info.public_key != storage.public_key_of(issued.key_pem):
            problem = "the CA's certificate is not for the key xdsgen sent"
        elif set(info.domains) != set(cert.domains):
            problem = f"the CA's certificate names {', '.join(info.domains)}, not the domains asked"
    if problem:
        assert cert.acme is not None
        raise AcmeError(cert.name, ", ".join(cert.domains), problem, ca=cert.acme.directory)
    return info
