"""DNS-01 through the user's hook: `HOOK add FQDN VALUE`, later `HOOK remove FQDN VALUE`.

The shape every DNS tool already has (acme.sh's dnsapi functions, certbot's manual hooks, a
few lines of curl against a provider's API). The hook exits 0 on success; what it printed
on stderr becomes part of the error otherwise. Propagation: the hook may wait itself until
the record is visible; `dns_propagation` adds a fixed wait after the last record was added.
"""

from __future__ import annotations

import subprocess
import time
from typing import Callable

from xdsgen.acme.challenges import Dns01Challenge
from xdsgen.errors import AcmeError

HOOK_TIMEOUT = 300.0  # seconds for one hook run, its own propagation wait included
_STDERR_TAIL = 600


class DnsHook:
    """A Dns01Publisher running the certificate's dns_hook."""

    def __init__(
        self,
        certificate: str,
        hook: str,
        propagation: float = 0.0,
        timeout: float = HOOK_TIMEOUT,
        warn: Callable[[str], None] = lambda _: None,
    ):
        self.certificate = certificate
        self.hook = hook
        self.propagation = propagation
        self.timeout = timeout
        self.warn = warn

    def publish(self, challenges: list[Dns01Challenge]) -> None:
        added: list[Dns01Challenge] = []
        try:
            for challenge in challenges:
                self.run("add", challenge)
                added.append(challenge)
        except AcmeError:
            self.withdraw(added)
            raise
        if challenges and self.propagation > 0:
            time.sleep(self.propagation)

    def withdraw(self, challenges: list[Dns01Challenge]) -> None:
        # A record left behind is harmless to the certificate: warn, and keep the new one.
        for challenge in challenges:
            try:
                self.run("remove", challenge)
            except AcmeError as exc:
                self.warn(f"warning: {exc}")

    def run(self, action: str, challenge: Dns01Challenge) -> None:
        command = [self.hook, action, challenge.fqdn, challenge.value]
        shown = f"{self.hook} {action} {challenge.fqdn}"
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise self.failure(challenge, f"dns_hook {self.hook} does not exist") from None
        except PermissionError:
            raise self.failure(
                challenge, f"dns_hook {self.hook} is not executable (chmod +x it)"
            ) from None
        except OSError as exc:
            raise self.failure(
                challenge, f"cannot run dns_hook {self.hook}: {exc.strerror}"
            ) from None
        except subprocess.TimeoutExpired:
            raise self.failure(
                challenge, f"dns_hook `{shown} VALUE` did not finish within {self.timeout:g}s"
            ) from None
        if result.returncode != 0:
            stderr = result.stderr.strip()
            if len(stderr) > _STDERR_TAIL:
                stderr = "..." + stderr[-_STDERR_TAIL:]
            raise self.failure(
                challenge,
                f"dns_hook `{shown} VALUE` failed (exit {result.returncode})"
                + (f": {stderr}" if stderr else ""),
            )

    def failure(self, challenge: Dns01Challenge, reason: str) -> AcmeError:
        return AcmeError(self.certificate, challenge.domain, reason)
