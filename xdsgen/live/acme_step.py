"""ACME inside `xdsgen apply` and `xdsgen certs renew`: every acme: certificate that is due
(missing, expiring within renew_before, its domains or CA changed) is obtained before the
plan, so the cron line that runs apply keeps certificates fresh, and `apply --watch`
renews them on its recheck. The engine (xdsgen/acme) respects the back-off of earlier
failures; http-01 is answered through Envoy (live/http01.py), dns-01 by the hook.

What apply then plans is the inventory's model without the certificates that still do not
exist (model/challenges.py: on a fresh box, or while one backs off after a failure), so
Envoy is never given a certificate file it cannot load: the TLS vhost comes up with the
apply that obtained its certificate, or with the first one after.

A failure (CA unreachable, challenge refused, rate limited, the hook failed) is exit 8:
the directory is moved back to the files Envoy ran before (any challenge withdrawn), the
certificate files stay as they were, the back-off is recorded, nothing else is applied.
"""

from __future__ import annotations

from typing import Any, Callable

from xdsgen.errors import AcmeError
from xdsgen.live.http01 import EnvoyHttp01, LiveDirectory
from xdsgen.live.lock import locked
from xdsgen.live.state import State
from xdsgen.model import Model
from xdsgen.model.challenges import missing_certificates, pending_message, without_certificates

Say = Callable[[str], None]
DEFAULT_SETTLE = 1.0


def _retry_hint(detail: str) -> str:
    return detail.replace("--force tries now", "`xdsgen certs renew --force` tries now")


def certificates_step(
    model: Model,
    rendered: Any,
    state: State,
    admin: Any,
    options: Any,
    progress: Say,
    notes: list[str],
) -> tuple[Model, Any]:
    """Obtain and renew what is due; return the model and files apply then plans (the
    certificates still missing left out). Runs inside apply's lock, before the plan."""
    from xdsgen.acme.engine import renew_certificates

    live = LiveDirectory(model, state, admin, options.timeout, options.settle, progress)
    publisher = EnvoyHttp01(live)
    try:
        outcomes = renew_certificates(
            model.certificates,
            model.envoy.config_dir,
            http01=publisher,
            progress=progress,
            warn=lambda text: notes.append(text.replace("warning: ", "", 1)),
        )
    except AcmeError as exc:
        live.back_to_base()
        raise publisher.explain(exc) from None
    missing = missing_certificates(model)
    for outcome in outcomes:
        if outcome.action in ("obtained", "renewed"):
            until = f", valid until {outcome.not_after:%Y-%m-%d %H:%M} UTC"
            notes.append(
                f"certificate {outcome.name}: {outcome.action} ({outcome.detail})"
                + (until if outcome.not_after else "")
            )
        elif outcome.action == "waiting":
            text = f"certificate {outcome.name}: {_retry_hint(outcome.detail)}"
            if outcome.name in missing:
                notes.append(text)
            else:  # the current certificate still serves: said at the failure, not every run
                progress(text)
        else:
            progress(f"certificate {outcome.name}: {outcome.detail}")
    if not missing:
        return model, rendered
    notes.extend(pending_message(name) for name in missing)
    from xdsgen.render import render

    servable = without_certificates(model, missing)
    return servable, render(servable)


def renew_now(
    model: Model,
    names: list[str],
    force: bool,
    lock_timeout: float,
    timeout: float,
    progress: Say,
    warn: Say,
) -> list[Any]:
    """`xdsgen certs renew`: the due certificates (or those named) now; http-01 through the
    running Envoy (IOProblem when its admin does not answer). The next apply hands the new
    files to Envoy."""
    from xdsgen.acme.engine import renew_certificates
    from xdsgen.admin import Admin

    with locked(model.envoy.config_dir, lock_timeout):
        live = LiveDirectory(
            model,
            State.load(model.envoy.config_dir),
            Admin.for_model(model, timeout),
            timeout,
            DEFAULT_SETTLE,
            progress,
            require_envoy=True,
        )
        publisher = EnvoyHttp01(live)
        try:
            return renew_certificates(
                model.certificates,
                model.envoy.config_dir,
                names=names,
                force=force,
                http01=publisher,
                progress=progress,
                warn=warn,
            )
        except AcmeError as exc:
            live.back_to_base()
            raise publisher.explain(exc) from None
