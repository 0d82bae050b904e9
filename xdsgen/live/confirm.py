"""Confirmation: has Envoy taken a step? Read from its admin interface only.

A step is confirmed when every file it wrote is reported at its own `version_text` with a
new update attempt, nothing the step added or changed is still warming, no
update_rejected/update_failure counter of its subscriptions went up, and every certificate
it asked Envoy to re-read is served (same serial and expiry as the file).
"""

from __future__ import annotations

import posixpath
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from xdsgen import conventions as xds
from xdsgen.admin import Admin, AdminUnreachable, counter, error_details, warming_names
from xdsgen.live.certs import certificate_identity
from xdsgen.live.plan import Step
from xdsgen.live.progress import STATUS_AFTER, quiet
from xdsgen.parsed import resources_of

POLL_MIN = 0.002  # seconds between two reads when Envoy answers at once
POLL_FACTOR = 4.0  # ... else this many times the last read's duration
POLL_MAX = 0.1
REFUSAL_CHECK = 0.25  # a whole check (counters: refusals) at least this often


class StepFailed(Exception):
    """Envoy refused a step (refused=True) or did not confirm it in time."""

    def __init__(self, message: str, refused: bool):
        super().__init__(message)
        self.refused = refused


def subscriptions(lds_text: Optional[str]) -> dict[str, str]:
    """rds_/sds_ file name -> the stat prefix of Envoy's subscription to it, per this LDS."""
    found: dict[str, str] = {}
    for listener in resources_of(lds_text) or []:
        for chain in _dicts(listener.get("filter_chains")):
            for network_filter in _dicts(chain.get("filters")):
                config = _dict(network_filter.get("typed_config"))
                rds = config.get("rds")
                if isinstance(rds, dict):
                    path = _dict(_dict(rds.get("config_source")).get("path_config_source")).get(
                        "path"
                    )
                    if isinstance(path, str):
                        found[posixpath.basename(path)] = xds.rds_stats(
                            str(config.get("stat_prefix", "")), str(rds.get("route_config_name"))
                        )
            tls = _dict(_dict(chain.get("transport_socket")).get("typed_config"))
            context = _dict(tls.get("common_tls_context"))
            for sds in _dicts(context.get("tls_certificate_sds_secret_configs")):
                path = _dict(_dict(sds.get("sds_config")).get("path_config_source")).get("path")
                if isinstance(path, str):
                    found[posixpath.basename(path)] = xds.sds_stats(str(sds.get("name")))
    return found


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass
class Expect:
    prefix: str  # a subscription's stat prefix: cluster_manager.cds, http.X.rds.X, sds.X
    version: str
    fresh: bool  # this step wrote the file: Envoy must count a new attempt
    warming: Optional[str] = None  # a gauge that must not count what the step caused
    file: str = ""  # the file this is about (for people: "waiting for Envoy to confirm ...")


class Poll:
    """How often to ask: as soon as Envoy could have answered (a home router's Envoy loads a
    route file in ~3 ms), yet never so often that the asking slows the load down. Envoy
    answers its admin on the thread that loads the config, so each interval is a few times
    what a read costs Envoy: at 10 000 vhosts (~5 ms) that leaves it ~80 % of its thread.
    The cost is the quickest answer seen (a read that waited for a load to end took the
    load's time, not its own)."""

    def __init__(self) -> None:
        self.interval = POLL_MIN
        self.cost = POLL_MAX

    def timed(self, started: float) -> None:
        self.cost = min(self.cost, time.monotonic() - started)
        self.interval = min(max(POLL_MIN, POLL_FACTOR * self.cost), POLL_MAX)

    def sleep(self) -> None:
        time.sleep(self.interval)


class Confirmer:
    """Waits until Envoy reports each step; without an admin (--no-confirm) only settles.
    `status` gets a line whenever a step has been waited for longer than STATUS_AFTER
    (what is still waited for: a person at a terminal must not face silence)."""

    def __init__(
        self,
        admin: Optional[Admin],
        timeout: float,
        settle: float,
        status: Callable[[str], None] = quiet,
    ):
        self.admin = admin
        self.timeout = timeout
        self.settle = settle
        self.status = status

    @property
    def confirming(self) -> bool:
        return self.admin is not None

    def snapshot(self) -> dict[str, str]:
        if self.admin is None:
            return {}
        try:
            return self.admin.apply_stats(timeout=self.timeout)
        except AdminUnreachable as exc:
            raise StepFailed(str(exc), refused=False) from None

    def expectations(self, step: Step, files: dict[str, str]) -> list[Expect]:
        expects = []
        subscribed = subscriptions(step.lds_before)
        for name, text in step.writes:
            version = xds.file_version(text) or ""
            if name == xds.CDS_FILE:
                expects.append(Expect(xds.CDS_STATS, version, True, xds.CLUSTERS_WARMING, name))
            elif name == xds.LDS_FILE:
                expects.append(Expect(xds.LDS_STATS, version, True, xds.LISTENERS_WARMING, name))
            elif name in subscribed:
                expects.append(Expect(subscribed[name], version, True, file=name))
        if step.final:
            written = {name for name, _ in step.writes}
            for name, prefix in subscriptions(files.get(xds.LDS_FILE)).items():
                if name not in written and name in files:
                    version = xds.file_version(files[name]) or ""
                    expects.append(Expect(prefix, version, False, file=name))
        return expects

    def confirm(self, step: Step, base: dict[str, str], files: dict[str, str]) -> None:
        """Return once Envoy runs the step; StepFailed when it refuses it (an
        update_rejected/update_failure counter went up) or the timeout passes first.

        Most polls read only the version_text readouts (cheap at any size). The whole check
        (counters, warming, certificates) runs when every version matches, and at least every
        REFUSAL_CHECK seconds meanwhile: a refused file never shows its version, so a refusal
        is still seen within that time."""
        if self.admin is None:
            time.sleep(self.settle)
            return
        expects = self.expectations(step, files)
        identities = {r.secret: certificate_identity(r.cert) for r in step.reloads}
        deadline = time.monotonic() + self.timeout
        everything = [e.file or e.prefix for e in expects]
        everything += [f"certificate {r.secret}" for r in step.reloads]
        told = Told(self.status, everything or [step.what])
        try:
            self._wait(step, base, expects, identities, deadline, told)
        finally:
            told.stop()

    def _wait(
        self,
        step: Step,
        base: dict[str, str],
        expects: list[Expect],
        identities: dict[str, Any],
        deadline: float,
        told: Told,
    ) -> None:
        assert self.admin is not None
        next_full = time.monotonic()  # the first poll is a whole check (nothing to wait for: done)
        poll = Poll()
        while True:
            asked = time.monotonic()
            remaining = max(deadline - asked, 0.05)
            try:
                if asked < next_full and expects and not step.reloads:
                    versions = self.admin.versions(timeout=remaining)
                    poll.timed(asked)
                    unseen = self._versions_waiting(expects, versions)
                    if unseen:
                        told.waiting(unseen)
                        if time.monotonic() >= deadline:
                            next_full = 0.0  # one whole check says what is missing
                            continue
                        poll.sleep()
                        continue
                stats = self.admin.apply_stats(timeout=remaining)
                served = self.admin.served_certificates(remaining) if step.reloads else set()
            except AdminUnreachable as exc:
                raise StepFailed(f"{step.what}: {exc}", refused=False) from None
            poll.timed(asked)
            next_full = time.monotonic() + max(REFUSAL_CHECK, poll.interval)
            refused = self._refusals(expects, step, base, stats)
            if refused:
                raise StepFailed(
                    f"{step.what}: Envoy refused the update ({refused})" + self._reasons(step),
                    refused=True,
                )
            waiting = self._waiting(expects, base, stats, step)
            waiting += [
                f"certificate {secret!r} ({identity})"
                for secret, identity in identities.items()
                if identity is not None and (identity.serial, identity.not_after) not in served
            ]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"{step.what}: Envoy did not confirm within {self.timeout:g}s; still waiting "
                    f"for {', '.join(waiting)}{self._unread_hint(expects, base, stats)}",
                    refused=False,
                )
            told.waiting(self._files_waiting(expects, waiting, step))
            poll.sleep()

    @staticmethod
    def _versions_waiting(expects: list[Expect], versions: dict[str, str]) -> list[str]:
        return [
            e.file or e.prefix
            for e in expects
            if versions.get(f"{e.prefix}.version_text") != e.version
        ]

    @staticmethod
    def _files_waiting(expects: list[Expect], waiting: list[str], step: Step) -> list[str]:
        """The files (or certificates) behind the `waiting` descriptions, for people."""
        named = [e.file or e.prefix for e in expects if any(e.prefix in w for w in waiting)]
        named += [
            f"certificate {r.secret}" for r in step.reloads if any(r.secret in w for w in waiting)
        ]
        return named or [step.what]

    @staticmethod
    def _unread_hint(expects: list[Expect], base: dict[str, str], stats: dict[str, str]) -> str:
        unread = [
            e.prefix
            for e in expects
            if e.fresh
            and counter(stats, f"{e.prefix}.update_attempt")
            <= counter(base, f"{e.prefix}.update_attempt")
        ]
        if not unread:
            return ""
        return (
            f" (Envoy never read the new file for {', '.join(unread)}: does its "
            "bootstrap read this config directory?)"
        )

    @staticmethod
    def _refusals(
        expects: list[Expect], step: Step, base: dict[str, str], stats: dict[str, str]
    ) -> str:
        found = []
        for expect in expects:
            for kind in xds.REFUSALS:
                name = f"{expect.prefix}.{kind}"
                if counter(stats, name) > counter(base, name):
                    found.append(f"{name} went up")
        for reload in step.reloads:
            name = xds.key_rotation_failed(reload.secret)
            if counter(stats, name) > counter(base, name):
                found.append(
                    f"{name} went up: {reload.cert} and {reload.key} are not a usable pair"
                )
        return "; ".join(found)

    def _waiting(
        self, expects: list[Expect], base: dict[str, str], stats: dict[str, str], step: Step
    ) -> list[str]:
        waiting = []
        for expect in expects:
            version = stats.get(f"{expect.prefix}.version_text")
            attempts = f"{expect.prefix}.update_attempt"
            if version != expect.version or (
                expect.fresh and counter(stats, attempts) <= counter(base, attempts)
            ):
                waiting.append(
                    f"{expect.prefix} version {expect.version} (Envoy has {version or 'none'})"
                )
            elif expect.warming and counter(stats, expect.warming) > 0:
                warm = self._warming_caused(expect.warming, step)
                if warm:
                    waiting.append(f"{', '.join(sorted(warm))} to finish warming")
        return waiting

    def _warming_caused(self, gauge: str, step: Step) -> set[str]:
        """What this step added or changed that is still warming; warming it did not cause
        (a cluster whose DNS never answers, added by the apply a restore undoes) is not
        waited for."""
        assert self.admin is not None
        resource = (
            "dynamic_warming_clusters" if gauge == xds.CLUSTERS_WARMING else "dynamic_listeners"
        )
        try:
            names = warming_names(self.admin.config_dump(resource, timeout=self.timeout))
        except AdminUnreachable:
            return set(step.causes) or {gauge}
        return names & set(step.causes)

    def _reasons(self, step: Step) -> str:
        assert self.admin is not None
        names: set[str] = set()
        for _, text in step.writes:
            names.update(str(r.get("name")) for r in resources_of(text) or [])
        names.update(r.secret for r in step.reloads)
        try:
            details = error_details(self.admin.config_dump(timeout=self.timeout), names)
        except AdminUnreachable:
            details = []
        if not details:
            return " (Envoy's log has its reason)"
        return "".join(f"\n  Envoy: {d}" for d in details)


class Told:
    """The status lines of one step's wait, from a timer thread (the wait itself may be one
    admin read that Envoy answers only when its load is over): after STATUS_AFTER, what is
    still waited for; again each STATUS_AFTER when that changed (a file confirmed)."""

    def __init__(self, status: Callable[[str], None], names: list[str]):
        self.status = status
        self.names = names
        self.said: list[str] = []
        self.done = threading.Event()
        self.thread: Optional[threading.Thread] = None
        if status is not quiet and names:
            self.thread = threading.Thread(target=self._run, name="confirm-status", daemon=True)
            self.thread.start()

    def waiting(self, names: list[str]) -> None:
        self.names = names

    def _run(self) -> None:
        while not self.done.wait(STATUS_AFTER):
            names = list(self.names)
            if names and names != self.said:
                self.said = names
                shown = [n[: -len(".yaml")] if n.endswith(".yaml") else n for n in names]
                self.status(f"waiting for Envoy to confirm {', '.join(shown)}…")

    def stop(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
