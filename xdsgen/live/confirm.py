"""Confirmation: has Envoy taken a step? Read from its admin interface only.

A step is confirmed when every file it wrote is reported at its own `version_text` with a
new update attempt, nothing the step added or changed is still warming, no
update_rejected/update_failure counter of its subscriptions went up, and every certificate
it asked Envoy to re-read is served (same serial and expiry as the file).
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from typing import Any, Optional

from xdsgen import conventions as xds
from xdsgen.admin import Admin, AdminUnreachable, counter, error_details, warming_names
from xdsgen.live.certs import certificate_identity
from xdsgen.live.plan import Step
from xdsgen.parsed import resources_of

POLL_INTERVAL = 0.02


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


class Confirmer:
    """Waits until Envoy reports each step; without an admin (--no-confirm) only settles."""

    def __init__(self, admin: Optional[Admin], timeout: float, settle: float):
        self.admin = admin
        self.timeout = timeout
        self.settle = settle

    @property
    def confirming(self) -> bool:
        return self.admin is not None

    def snapshot(self) -> dict[str, str]:
        if self.admin is None:
            return {}
        try:
            return self.admin.stats(timeout=self.timeout)
        except AdminUnreachable as exc:
            raise StepFailed(str(exc), refused=False) from None

    def expectations(self, step: Step, files: dict[str, str]) -> list[Expect]:
        expects = []
        subscribed = subscriptions(step.lds_before)
        for name, text in step.writes:
            version = xds.file_version(text) or ""
            if name == xds.CDS_FILE:
                expects.append(Expect(xds.CDS_STATS, version, True, xds.CLUSTERS_WARMING))
            elif name == xds.LDS_FILE:
                expects.append(Expect(xds.LDS_STATS, version, True, xds.LISTENERS_WARMING))
            elif name in subscribed:
                expects.append(Expect(subscribed[name], version, True))
        if step.final:
            written = {name for name, _ in step.writes}
            for name, prefix in subscriptions(files.get(xds.LDS_FILE)).items():
                if name not in written and name in files:
                    expects.append(Expect(prefix, xds.file_version(files[name]) or "", False))
        return expects

    def confirm(self, step: Step, base: dict[str, str], files: dict[str, str]) -> None:
        if self.admin is None:
            time.sleep(self.settle)
            return
        expects = self.expectations(step, files)
        identities = {r.secret: certificate_identity(r.cert) for r in step.reloads}
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = max(deadline - time.monotonic(), 0.05)
            try:
                stats = self.admin.stats(timeout=remaining)
                served = self.admin.served_certificates(remaining) if step.reloads else set()
            except AdminUnreachable as exc:
                raise StepFailed(f"{step.what}: {exc}", refused=False) from None
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
            time.sleep(POLL_INTERVAL)

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
