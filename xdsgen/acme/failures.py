"""The CA's answers and the network's failures as AcmeError: the domain, the CA's own reason.

The CA explains a refusal in an RFC 7807 problem document (`detail`, an error type such as
urn:ietf:params:acme:error:unauthorized or :rateLimited, sometimes the identifier); a failed
challenge carries one per authorization.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from xdsgen.errors import AcmeError

_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_REASON_MAX = 500


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 3] + "..."


def problem_text(problem: Any) -> str:
    """`detail [type]` of an acme.messages.Error (a problem document)."""
    detail = problem.detail or problem.title or problem.description or "no reason given"
    code = problem.code or str(problem.typ)
    return _short(f"{detail} [{code}]")


def network_reason(exc: BaseException) -> str:
    """The useful end of a requests error ("Connection refused", not three lines of pools)."""
    text = str(exc)
    match = _ERRNO_RE.search(text)
    if match:
        return match.group(1).strip()
    for hint in ("Name or service not known", "timed out", "CERTIFICATE_VERIFY_FAILED"):
        if hint in text:
            return hint
    return _short(text)


@contextlib.contextmanager
def translated(certificate: str, domains: tuple[str, ...], ca: str) -> Iterator[None]:
    """Turn what the acme library and requests raise inside into AcmeError."""
    import josepy
    import requests
    from acme import errors, messages

    everything = ", ".join(domains) or "(no domains)"

    def fail(reason: str, domain: str = everything, rate_limited: bool = False) -> AcmeError:
        return AcmeError(certificate, domain, reason, ca=ca, rate_limited=rate_limited)

    try:
        yield
    except AcmeError:
        raise
    except messages.Error as exc:
        domain = exc.identifier.value if exc.identifier is not None else everything
        if exc.code == "rateLimited":
            raise fail(f"rate limited by the CA: {problem_text(exc)}", domain, True) from None
        raise fail(f"the CA refused: {problem_text(exc)}", domain) from None
    except errors.ValidationError as exc:
        # Every failed authorization: one domain's challenge, the CA's reason.
        parts = []
        first = everything
        for authzr in exc.failed_authzrs:
            name = authzr.body.identifier.value
            for challenge in authzr.body.challenges:
                if challenge.error is not None:
                    parts.append(f"{name}: {problem_text(challenge.error)}")
                    first = name if first == everything else first
        raise fail(
            "the CA could not validate the challenge: " + "; ".join(parts or ["no reason given"]),
            first,
        ) from None
    except errors.IssuanceError as exc:
        raise fail(f"the CA did not issue: {problem_text(exc.error)}") from None
    except errors.TimeoutError:
        raise fail("the CA did not finish the order in time (validation still pending)") from None
    except requests.exceptions.SSLError as exc:
        raise fail(
            f"cannot verify the ACME server's HTTPS certificate ({network_reason(exc)}); for a "
            "private CA set acme.ca_bundle to the CA file that signed it"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise fail(f"cannot reach the CA: {network_reason(exc)}") from None
    except (errors.Error, josepy.errors.Error, ValueError) as exc:
        raise fail(f"unexpected answer from the CA: {_short(str(exc))}") from None
