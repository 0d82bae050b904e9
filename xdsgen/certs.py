"""`xdsgen certs`: what each certificate of an inventory is (issuer, expiry, source, when it
renews) and `certs renew`, which obtains or renews the acme: ones now.

Reading a certificate needs the cryptography package; contacting a CA needs the `acme`
extra, imported only by `certs renew` when a certificate is due.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any, Optional

from xdsgen.acme import records, renewal, storage
from xdsgen.model import Model
from xdsgen.model.certificates import Certificate

TIME_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class CertificateStatus:
    certificate: Certificate
    pair: storage.PairState
    due: Optional[str]  # acme: why it is due now; None when fresh (or not acme)
    renew_at: Optional[datetime.datetime]  # acme: when it becomes due
    waiting_until: Optional[datetime.datetime]  # acme: back-off after failures
    last_failure: str
    now: datetime.datetime

    @property
    def days_left(self) -> Optional[int]:
        if self.pair.info is None:
            return None
        return int((self.pair.info.not_after - self.now).total_seconds() // 86400)

    @property
    def renewal_text(self) -> str:
        if self.certificate.acme is None:
            return "outside xdsgen"
        if self.waiting_until is not None:
            return (
                f"due ({self.due}); not retried before {self.waiting_until:{TIME_FORMAT}} "
                f"(last failure: {self.last_failure})"
            )
        if self.due is not None:
            return f"due: {self.due}"
        assert self.renew_at is not None
        return f"from {self.renew_at:{TIME_FORMAT}}"

    def as_dict(self) -> dict[str, Any]:
        cert, info = self.certificate, self.pair.info

        def iso(moment: Optional[datetime.datetime]) -> Optional[str]:
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None

        return {
            "name": cert.name,
            "source": cert.source,
            "domains": list(cert.domains),
            "cert": cert.cert,
            "key": cert.key,
            "problem": self.pair.problem,
            "key_matches": self.pair.key_matches,
            "subject": info.subject if info else None,
            "issuer": info.issuer if info else None,
            "serial": info.serial if info else None,
            "names": list(info.domains) if info else None,
            "not_before": iso(info.not_before) if info else None,
            "not_after": iso(info.not_after) if info else None,
            "days_left": self.days_left,
            "renewal": None
            if cert.acme is None
            else {
                "due": self.due,
                "renew_at": iso(self.renew_at),
                "waiting_until": iso(self.waiting_until),
                "last_failure": self.last_failure or None,
                "directory": cert.acme.directory,
                "challenge": cert.acme.challenge,
            },
        }


def statuses(model: Model, now: Optional[float] = None) -> list[CertificateStatus]:
    stamp = time.time() if now is None else now
    moment = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
    found = []
    for cert in model.certificates:
        pair = storage.inspect(cert.cert, cert.key)
        due = renew_at = waiting = None
        last_failure = ""
        if cert.acme is not None:
            record = records.load(model.envoy.config_dir, cert.name)
            due = renewal.due_reason(cert, pair, record, moment)
            if pair.info is not None:
                renew_at = renewal.renew_at(pair.info, cert.acme.renew_before)
            until = records.waiting_until(record, stamp)
            if due is not None and until is not None:
                waiting = datetime.datetime.fromtimestamp(until, datetime.timezone.utc)
                last_failure = record.reason
        found.append(CertificateStatus(cert, pair, due, renew_at, waiting, last_failure, moment))
    return found


COLUMNS = ["name", "domains", "issuer", "not after (UTC)", "days left", "source", "renewal"]


def table_rows(found: list[CertificateStatus]) -> list[list[str]]:
    rows = []
    for status in found:
        info = status.pair.info
        if info is None:
            issuer = "(no certificate)" if status.pair.problem == "missing" else "(unreadable)"
        else:
            issuer = info.issuer
        rows.append(
            [
                status.certificate.name,
                ", ".join(status.certificate.domains) or "-",
                issuer,
                f"{info.not_after:{TIME_FORMAT}}" if info else "-",
                str(status.days_left) if info else "-",
                status.certificate.source,
                status.renewal_text,
            ]
        )
    return rows
