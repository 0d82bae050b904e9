"""How the comparer words what each side does: one phrase per outcome, action or setting,
and how loud a changed answer is."""

from __future__ import annotations

from typing import Any, Optional

from xdsgen.importer.semantics import Action, Certificate, Proxy, Respond, Vhost
from xdsgen.importer.shapes import nanos_text

Outcome = tuple[Any, ...]


def _kind(action: Optional[Action]) -> str:
    if action is None:
        return "denied"
    if isinstance(action, Proxy):
        return "served"
    if isinstance(action, Respond):
        return "served" if 200 <= action.status < 400 else "denied"
    return "https" if action.https and not action.other else "redirect"


def topic(ours: Optional[Action], theirs: Optional[Action]) -> str:
    """How loud a changed answer is: anything that serves what was refused (or refuses
    what was served), redirects differently or drops websockets changes who reaches what."""
    before, after = _kind(ours), _kind(theirs)
    if before == after:
        if isinstance(ours, Proxy) and isinstance(theirs, Proxy):
            if ours.websocket != theirs.websocket:
                return "websocket"
            if (ours.cluster, ours.rewrite) == (theirs.cluster, theirs.rewrite):
                return "timeouts"
            return "routing"
        return {"served": "routing", "denied": "responses"}.get(before, "redirect")
    if before == "denied" and after == "https":
        return "responses"
    neither_proxies = not isinstance(ours, Proxy) and not isinstance(theirs, Proxy)
    if neither_proxies and not {"https", "redirect"} & {before, after}:
        return "responses"  # Envoy's own answers (a 200 health check, a 404) differ
    if "https" in (before, after) or "redirect" in (before, after):
        return "redirect"
    return "access"


def action_text(action: Optional[Action], vhost: Optional[Vhost]) -> str:
    if action is None:
        return "answers 404 (no route)" if vhost is not None else "answers 404 (no vhost)"
    if isinstance(action, Proxy) and action.timeout != 15 * 10**9:
        return action.describe() + f" (timeout {nanos_text(action.timeout)})"
    return action.describe()


def serves_nothing(outcome: Outcome, hosts: Optional[list[str]]) -> bool:
    """A refused connection, or HTTP that answers 404 to every host the probe sends."""
    if outcome[0] == "closed":
        return True
    if outcome[0] != "http" or hosts is None:
        return False
    return all(outcome[1].vhost_for(host) is None for host in hosts)


def outcome_text(outcome: Outcome, hosts: Optional[list[str]] = None) -> str:
    if outcome[0] == "closed":
        return "refuses the connection"
    if outcome[0] == "tcp":
        tls = " after terminating TLS" if outcome[2] else ""
        return f"passes the connection to {outcome[1]!r}{tls}"
    if outcome[0] == "http":
        served = "answers 404 (no vhost)" if serves_nothing(outcome, hosts) else "serves HTTP"
        return f"terminates TLS and {served}" if outcome[2] else f"{served} in plain text"
    return "does something xdsgen cannot read"


def certificate_text(certificate: Optional[Certificate]) -> str:
    return f"the certificate {certificate.cert}" if certificate else "no certificate"


def tls_text(tls: Any) -> str:
    if tls is None:
        return "none"
    parts = [f"sni {tls.sni}" if tls.sni else "no sni"]
    parts.append(f"verified against {tls.ca}" if tls.ca else "not verified")
    if tls.names:
        parts.append("names " + ", ".join(tls.names))
    return ", ".join(parts)
