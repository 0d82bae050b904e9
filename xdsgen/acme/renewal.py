"""Is a certificate due? Missing, not matching its key, its domains changed, still from
another CA, or expiring within `renew_before`.

A certificate that lives shorter than `renew_before` (a CA's short-lived profile, a test
CA) is renewed once a third of its life is left instead: otherwise every run would renew it.
"""

from __future__ import annotations

import datetime
from typing import Optional

from xdsgen.acme.records import Record
from xdsgen.acme.storage import CertInfo, PairState
from xdsgen.model.certificates import Certificate


def renew_at(info: CertInfo, renew_before: float) -> datetime.datetime:
    lifetime = (info.not_after - info.not_before).total_seconds()
    before = renew_before if renew_before < lifetime else lifetime / 3
    return info.not_after - datetime.timedelta(seconds=before)


def span(seconds: float) -> str:
    """A short human duration: 12 days, 5 hours, 3 minutes."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size or unit == "minute":
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    raise AssertionError("unreachable")


def due_reason(
    cert: Certificate, pair: PairState, record: Record, now: datetime.datetime
) -> Optional[str]:
    """Why `cert` must be obtained or renewed now, or None when it is fresh."""
    assert cert.acme is not None
    if pair.info is None:
        return "no certificate yet" if pair.problem == "missing" else pair.problem
    if not pair.key_matches:
        return f"{cert.key} is missing or does not belong to {cert.cert}"
    wanted, have = set(cert.domains), set(pair.info.domains)
    if wanted != have:
        changes = [f"+{d}" for d in sorted(wanted - have)] + [
            f"-{d}" for d in sorted(have - wanted)
        ]
        return f"domains changed ({', '.join(changes)})"
    if (
        record.issued_by
        and record.issued_serial == pair.info.serial
        and record.issued_by != cert.acme.directory
    ):
        return f"issued by another CA ({record.issued_by})"
    if now >= renew_at(pair.info, cert.acme.renew_before):
        left = (pair.info.not_after - now).total_seconds()
        return "expired" if left <= 0 else f"expires in {span(left)}"
    return None
