"""HTTP-01 answered by Envoy itself: the Http01Publisher of `apply` and `certs renew`.

`publish` renders the inventory's model with an exact-path route per token in the vhost
of its domain on every http listener (model/challenges.py), ahead of the https redirect,
and moves the config directory there through the live transition (make-before-break,
confirmed by Envoy, restored on refusal: only rds_ files change when the vhosts are
already served). It then asks each http listener itself for every token (a GET on the
listener's address, loopback for 0.0.0.0 and ::, with the domain as Host) and returns only
once Envoy answers the key authorization: what the CA will fetch. `withdraw` moves the
directory back to the files it held before the first challenge (the base), the same way.

The state's history is left alone: a config with tokens is never one to roll back to,
and the base is what Envoy ran already. An apply killed while a token is served leaves
files that differ from the last confirmed config; the next apply says so and replaces
them (restores always go to the last confirmed config, never to the files on disk).
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from xdsgen import conventions as xds
from xdsgen.acme.challenges import Http01Challenge
from xdsgen.admin import Admin, AdminUnreachable
from xdsgen.errors import AcmeError, IOProblem
from xdsgen.live.confirm import Confirmer
from xdsgen.live.state import State
from xdsgen.live.transition import read_files, transition
from xdsgen.model import Model
from xdsgen.model.challenges import (
    challenge_listeners,
    missing_certificates,
    with_challenges,
    without_certificates,
)
from xdsgen.parsed import resources_of

Say = Callable[[str], None]
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}
GET_TIMEOUT = 2.0
UNREACHABLE_HINT = (
    "Envoy answered every token on its http listeners here, so the CA did not reach them: "
    "each domain's DNS must point at this box, and port 80 from the internet must reach "
    "Envoy's http listener on every family the name has an address for (port forward, "
    "firewall, uhttpd moved). Where the ISP blocks port 80, use challenge: dns-01."
)
_BODY_SHOWN = 80


@dataclass
class LiveDirectory:
    """The config directory of a running Envoy, moved between configs by confirmed steps.
    The caller holds the directory's lock."""

    model: Model  # the inventory's whole model (certificates not obtained yet included)
    state: State
    admin: Optional[Admin]  # None: --no-confirm (the GET on each listener still checks)
    timeout: float
    settle: float
    progress: Say
    require_envoy: bool = False  # certs renew: say so when Envoy's admin does not answer
    base: Optional[dict[str, str]] = field(default=None, init=False)
    # The certificates missing when the base was read: left out of every challenge config
    # (one obtained meanwhile comes up with the apply's own plan, not between two orders).
    pending: tuple[str, ...] = field(default=(), init=False)

    @property
    def config_dir(self) -> str:
        return self.model.envoy.config_dir

    def managed(self, files: dict[str, str]) -> set[str]:
        model = self.model
        names = {xds.CDS_FILE, xds.LDS_FILE, *files}
        names.update(rc.file_name for rc in model.route_configs)
        names.update(s.file_name for s in model.secrets)
        return names | self.state.owned() | set(self.base or {})

    def remember_base(self) -> None:
        """The files Envoy runs before the first challenge: what every withdraw returns to."""
        if self.base is not None:
            return
        if self.require_envoy and self.admin is not None:
            try:
                self.admin.stats(timeout=self.timeout)
            except AdminUnreachable as exc:
                raise IOProblem(
                    f"http-01 is answered by the running Envoy, and {exc}. Start Envoy "
                    "(`xdsgen render`, then Envoy with `xdsgen bootstrap`'s config) or use "
                    "challenge: dns-01"
                ) from None
        self.base = read_files(self.config_dir, self.managed({}))
        self.pending = missing_certificates(self.model)

    def move_to(self, files: dict[str, str]) -> None:
        """Make the directory hold `files`, confirmed by Envoy (EnvoyRefused/IOProblem, the
        last confirmed config restored, when it refuses)."""
        names = self.managed(files)
        now = read_files(self.config_dir, names)
        if now == files:
            return
        confirmed = self.state.last_confirmed()
        transition(
            self.state,
            now,
            files,
            Confirmer(self.admin, self.timeout, self.settle),
            self.progress,
            restore_to=confirmed["files"] if confirmed else dict(self.base or now),
            managed=names,
            previous_clusters=resources_of(confirmed["files"].get(xds.CDS_FILE))
            if confirmed
            else None,
            layout=self.model.envoy.layout,
        )

    def back_to_base(self) -> None:
        if self.base is not None:
            self.move_to(self.base)


class EnvoyHttp01:
    """Serves http-01 tokens through Envoy's http listeners (see the module doc)."""

    def __init__(self, live: LiveDirectory):
        self.live = live
        self.answered: set[str] = set()  # certificates whose tokens Envoy answered here

    def explain(self, error: AcmeError) -> AcmeError:
        """A CA that could not validate tokens Envoy answered here could not reach Envoy."""
        if error.certificate in self.answered and "could not validate the challenge" in str(error):
            error.args = (f"{error}\n{UNREACHABLE_HINT}",)
        return error

    def certificate_of(self, challenges: list[Http01Challenge]) -> str:
        domains = {c.domain.lower() for c in challenges}
        for cert in self.live.model.certificates:
            if domains & set(cert.domains):
                return str(cert.name)
        return "?"

    def publish(self, challenges: list[Http01Challenge]) -> None:
        from xdsgen.render import render

        live = self.live
        live.remember_base()
        serving = with_challenges(without_certificates(live.model, live.pending), challenges)
        name = self.certificate_of(challenges)
        count = len(challenges)
        live.progress(
            f"certificate {name}: serving {count} http-01 challenge{'s' if count != 1 else ''} "
            "through Envoy"
        )
        live.move_to(render(serving).files)
        try:
            self.check_served(serving, challenges, name)
        except AcmeError:
            live.back_to_base()
            raise
        self.answered.add(name)

    def withdraw(self, challenges: list[Http01Challenge]) -> None:
        name = self.certificate_of(challenges)
        self.live.progress(f"certificate {name}: withdrawing the http-01 challenges")
        self.live.back_to_base()

    def check_served(self, model: Model, challenges: list[Http01Challenge], name: str) -> None:
        """Ask every http listener for every token, as the CA will (Host: the domain)."""
        deadline = time.monotonic() + self.live.timeout
        for challenge in challenges:
            listeners = challenge_listeners(model, challenge.path)
            if not listeners:
                raise AcmeError(
                    name, challenge.domain, "no http listener serves the http-01 challenge"
                )
            for listener in listeners:
                host = LOOPBACK.get(listener.address, listener.address)
                while True:
                    answer = get(host, listener.port, challenge.domain, challenge.path)
                    if answer == (200, challenge.key_authorization):
                        break
                    if time.monotonic() >= deadline:
                        where = f"[{host}]" if ":" in host else host
                        raise AcmeError(
                            name,
                            challenge.domain,
                            f"Envoy does not answer the http-01 challenge on its "
                            f"{listener.name} listener: GET http://{challenge.domain}"
                            f"{challenge.path} at {where}:{listener.port} gave "
                            f"{describe(answer)}",
                        )
                    time.sleep(0.05)


def get(host: str, port: int, domain: str, path: str) -> tuple[Any, str]:
    """(status, body) of a plain GET, or (None, why) when there was no answer."""
    connection = http.client.HTTPConnection(host, port, timeout=GET_TIMEOUT)
    try:
        connection.request("GET", path, headers={"Host": domain, "User-Agent": "xdsgen"})
        response = connection.getresponse()
        return response.status, response.read(4096).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return None, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    finally:
        connection.close()


def describe(answer: tuple[Any, str]) -> str:
    status, body = answer
    if status is None:
        return f"no answer ({body})"
    shown = " ".join(body.split())[:_BODY_SHOWN]
    return f"HTTP {status}" + (f" {shown!r}" if shown else "")
