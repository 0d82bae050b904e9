"""`xdsgen status`: what the running Envoy has applied, next to the files on disk and the
inventory, and what each upstream has been doing since Envoy started.

Everything comes from Envoy's admin interface (loopback): /stats?format=json for the
update counters and per-cluster traffic, /clusters?format=json for endpoint health,
/config_dump for the versions Envoy accepted and (without an inventory) the paths its
bootstrap reads.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from xdsgen import conventions as xds
from xdsgen.admin import Admin, AdminUnreachable
from xdsgen.errors import IOProblem, UsageProblem
from xdsgen.upstream_status import Upstream, checked_clusters, missing, upstream_status

ADMIN_TIMEOUT = 5.0


class Reader:
    """status's reads through the admin client; every failure is an IOProblem (exit 6)
    that says what to check."""

    def __init__(self, admin: Admin):
        self.admin = admin

    @property
    def address(self) -> str:
        return self.admin.address

    def get_json(self, path: str) -> dict[str, Any]:
        try:
            return self.admin.get_json(path)
        except AdminUnreachable as exc:
            raise IOProblem(
                f"Envoy's admin interface at {self.address} is not reachable ({exc.reason}). "
                "Is Envoy running with xdsgen's bootstrap? The address is "
                "envoy.admin in the inventory (default: admin.sock in the config "
                "directory), or --admin unix:PATH / HOST:PORT."
            ) from None

    def stats(self) -> dict[str, Any]:
        try:
            return self.admin.stats_json()
        except AdminUnreachable as exc:
            raise IOProblem(str(exc)) from None


# --------------------------------------------------------------------------- data


@dataclass
class Resource:
    """One xDS file: the version the inventory renders, the one on disk, the one Envoy applied."""

    file: str
    kind: str  # cds, lds, rds, sds
    name: str  # the route configuration's or secret's name ("" for cds/lds)
    inventory: Optional[str]
    on_disk: Optional[str]
    applied: Optional[str]
    updates: int = 0
    edited: bool = False  # the file's content no longer matches its version line
    rejected: int = 0
    failed: int = 0

    @property
    def state(self) -> str:
        if self.on_disk is None and self.applied is None:
            return "missing"
        if self.on_disk is None:
            return "applied, file gone"
        if self.applied is None:
            return "not applied"
        if self.on_disk != self.applied:
            return "file not applied"
        if self.edited:
            return "edited by hand"
        if self.inventory is not None and self.inventory != self.on_disk:
            return "inventory not applied"
        return "in sync"


@dataclass
class Status:
    admin: str
    state: str
    envoy_version: str
    uptime: str
    config_dir: Optional[str]
    resources: list[Resource] = field(default_factory=list)
    upstreams: list[Upstream] = field(default_factory=list)
    access: list[Any] = field(default_factory=list)  # status_access.AccessRow (issue 14)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for resource, item in zip(self.resources, data["resources"]):
            item["state"] = resource.state
        return data


# --------------------------------------------------------------------------- collect


def read_version(path: str) -> tuple[Optional[str], bool]:
    """The version_info an xDS file claims (None when missing), and whether its content was
    edited since (a hand edit that keeps the version line must not look applied)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return None, False
    version = xds.file_version(text)
    return version, version is not None and not xds.version_is_true(text)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _at(node: Any, *keys: str) -> Any:
    """node[k1][k2]..., or {} as soon as a level is not a mapping (a garbled answer)."""
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if node is not None else {}


def _bootstrap_config_dir(dump: dict[str, Any]) -> Optional[str]:
    for config in _dicts(dump.get("configs")):
        if str(config.get("@type", "")).endswith("BootstrapConfigDump"):
            cds = _at(config, "bootstrap", "dynamic_resources", "cds_config")
            path = _at(cds, "path_config_source", "path") or _at(cds, "path")
            return os.path.dirname(path) if isinstance(path, str) and path else None
    return None


def _applied_versions(dump: dict[str, Any], stats: dict[str, Any]) -> dict[str, str]:
    """File name -> the version Envoy last accepted in full.

    The *_version_text stats are that; /config_dump is only the fallback, because after a
    refused CDS update its version_info already names the refused version (Envoy 1.40
    applies the clusters it can and reports the update rejected).
    """
    versions: dict[str, str] = {}
    for name, value in stats.items():
        file_name = xds.file_of_version_stat(name)
        if file_name is not None:
            versions[file_name] = str(value).strip('"')
    fallback: dict[str, str] = {}
    for config in _dicts(dump.get("configs")):
        kind = str(config.get("@type", "")).rsplit(".", 1)[-1]
        version = config.get("version_info")
        if kind == "ClustersConfigDump" and isinstance(version, str):
            fallback[xds.CDS_FILE] = version
        elif kind == "ListenersConfigDump" and isinstance(version, str):
            fallback[xds.LDS_FILE] = version
        elif kind == "RoutesConfigDump":
            for rc in _dicts(config.get("dynamic_route_configs")):
                name = _at(rc, "route_config", "name")
                if isinstance(name, str) and name and isinstance(rc.get("version_info"), str):
                    fallback[xds.rds_file(name)] = rc["version_info"]
        elif kind == "SecretsConfigDump":
            for secret in _dicts(config.get("dynamic_active_secrets")):
                secret_name, version = secret.get("name"), secret.get("version_info")
                if secret_name and isinstance(secret_name, str) and isinstance(version, str):
                    fallback[xds.sds_file(secret_name)] = version
    return {**fallback, **{k: v for k, v in versions.items() if v}}


def _update_counts(stats: dict[str, Any], kind: str, name: str) -> tuple[int, int, int]:
    if kind == "cds":
        prefixes = [xds.CDS_STATS]
    elif kind == "lds":
        prefixes = [xds.LDS_STATS]
    elif kind == "sds":
        prefixes = [xds.sds_stats(name)]
    else:
        # One subscription per listener that uses the route configuration.
        suffix = f".rds.{name}.update_success"
        prefixes = [
            k[: -len(".update_success")]
            for k in stats
            if k.startswith("http.") and k.endswith(suffix)
        ]
    counts = [0, 0, 0]
    for prefix in prefixes:
        for index, outcome in enumerate(xds.UPDATE_OUTCOMES):
            counts[index] += _int(stats.get(f"{prefix}.{outcome}"))
    return counts[0], counts[1], counts[2]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _release(version: str) -> str:
    # "<sha>/1.40.0/Clean/RELEASE/BoringSSL" -> "1.40.0"
    parts = version.split("/")
    return parts[1] if len(parts) > 1 else version


def collect(
    admin: Reader,
    config_dir: Optional[str] = None,
    rendered: Optional[dict[str, str]] = None,
    inventory_clusters: Optional[set[str]] = None,
    model: Any = None,
) -> Status:
    """Ask Envoy, read the files, and put them side by side.

    `rendered`: file name -> version the inventory renders (None without an inventory).
    """
    server = admin.get_json("/server_info")
    stats = admin.stats()
    clusters = admin.get_json("/clusters?format=json")
    dump = admin.get_json("/config_dump")
    config_dir = config_dir or _bootstrap_config_dir(dump)
    return Status(
        admin=admin.address,
        state=str(server.get("state", "?")),
        envoy_version=_release(str(server.get("version", "?"))),
        uptime=str(server.get("uptime_current_epoch", "?")),
        config_dir=config_dir,
        resources=_resources(stats, dump, config_dir, rendered),
        upstreams=_upstreams(stats, clusters, dump, inventory_clusters),
        access=_access_rows(model, stats),
    )


def _resources(
    stats: dict[str, Any],
    dump: dict[str, Any],
    config_dir: Optional[str],
    rendered: Optional[dict[str, str]],
) -> list[Resource]:
    """Each xDS file: the inventory's version, the file's, Envoy's, and its update counts."""
    applied = _applied_versions(dump, stats)
    names = set(applied) | set(rendered or {})
    if config_dir and os.path.isdir(config_dir):
        names |= {n for n in os.listdir(config_dir) if xds.is_config_file(n)}
    resources = []
    order = {"cds": 0, "lds": 1, "rds": 2, "sds": 3}
    for file_name in names:
        kind = xds.short_kind(file_name)
        name = xds.resource_name(file_name)
        success, rejected, failed = _update_counts(stats, kind, name)
        on_disk, edited = (
            read_version(os.path.join(config_dir, file_name)) if config_dir else (None, False)
        )
        resources.append(
            Resource(
                file=file_name,
                kind=kind,
                name=name,
                inventory=(rendered or {}).get(file_name) if rendered is not None else None,
                on_disk=on_disk,
                edited=edited,
                applied=applied.get(file_name),
                updates=success,
                rejected=rejected,
                failed=failed,
            )
        )
    resources.sort(key=lambda r: (order.get(r.kind, 9), r.name))
    return resources


def _upstreams(
    stats: dict[str, Any],
    clusters: dict[str, Any],
    dump: dict[str, Any],
    inventory_clusters: Optional[set[str]],
) -> list[Upstream]:
    """Each cluster Envoy has (and each the inventory names that Envoy lacks)."""
    checked = checked_clusters(dump)
    upstreams = [
        upstream_status(cluster, stats, checked, inventory_clusters)
        for cluster in _dicts(clusters.get("cluster_statuses"))
    ]
    if inventory_clusters is not None:
        present = {u.name for u in upstreams}
        for name in sorted(inventory_clusters - present):
            upstreams.append(missing(name))
    upstreams.sort(key=lambda u: u.name)
    return upstreams


def _access_rows(model: Any, stats: dict[str, Any]) -> list[Any]:
    if model is None:
        return []
    from xdsgen.status_access import rows

    return rows(model, stats)


def status(
    inventory: Optional[str], admin_address: Optional[str], config_dir: Optional[str]
) -> Status:
    """status for the CLI: the inventory (if any) gives the admin address, the config
    directory and the versions it would render."""
    from xdsgen.model import DEFAULT_CONFIG_DIR, AdminAddress, parse_admin

    rendered = None
    clusters = None
    model = None
    address = AdminAddress(path=xds.envoy_path(config_dir or DEFAULT_CONFIG_DIR, xds.ADMIN_SOCKET))
    if admin_address:
        try:
            address = parse_admin(admin_address)
        except ValueError as exc:
            raise UsageProblem(f"--admin {admin_address}: {exc}") from None
    if inventory:
        from xdsgen.pipeline import load_model, render

        model = load_model(inventory, config_dir=config_dir, servable=True)
        files = render(model)
        rendered = {name: files.version(name) for name in files.files}
        clusters = model.cluster_names()
        config_dir = model.envoy.config_dir
        if not admin_address:
            address = model.envoy.admin
    return collect(Reader(Admin(address, ADMIN_TIMEOUT)), config_dir, rendered, clusters, model)
