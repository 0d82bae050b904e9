"""`xdsgen status`: what the running Envoy has applied, next to the files on disk and the
inventory, and what each upstream has been doing since Envoy started.

Everything comes from Envoy's admin interface (loopback): /stats?format=json for the
update counters and per-cluster traffic, /clusters?format=json for endpoint health,
/config_dump for the versions Envoy accepted and (without an inventory) the paths its
bootstrap reads.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from xdsgen.errors import IOProblem

ADMIN_TIMEOUT = 5.0
_VERSION_LINE = re.compile(r'^version_info:\s*"?([^"\s]*)"?\s*$')


# --------------------------------------------------------------------------- admin reads


class Admin:
    """status's reads, over apply's admin client (xdsgen.admin); every failure is an
    IOProblem (exit 6) that says what to check."""

    def __init__(self, host: str, port: int, timeout: float = ADMIN_TIMEOUT):
        from xdsgen.admin import Admin as Client

        self.client = Client(host, port, timeout)

    @property
    def address(self) -> str:
        return str(self.client.address)

    def get(self, path: str) -> str:
        from xdsgen.admin import AdminUnreachable

        try:
            return str(self.client.get(path))
        except AdminUnreachable as exc:
            reason = str(exc).split("unreachable: ", 1)[-1]
            raise IOProblem(
                f"Envoy's admin interface at {self.address} is not reachable ({reason}). "
                "Is Envoy running with xdsgen's bootstrap? The address is envoy.admin in the "
                "inventory, or --admin HOST:PORT."
            ) from None

    def get_json(self, path: str) -> Any:
        text = self.get(path)
        try:
            return json.loads(text)
        except ValueError:
            raise IOProblem(f"Envoy's admin at {self.address}: {path} is not JSON") from None

    def stats(self) -> dict[str, Any]:
        """Counters, gauges and text readouts by name (histograms left out)."""
        doc = self.get_json("/stats?format=json")
        return {s["name"]: s.get("value", 0) for s in doc.get("stats", []) if "name" in s}


def parse_admin(text: str) -> tuple[str, int]:
    from xdsgen.model import parse_endpoint

    parsed = parse_endpoint(text)
    if isinstance(parsed, str):
        raise IOProblem(f"--admin {text}: {parsed}")
    return parsed.host, parsed.port


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
        if self.inventory is not None and self.inventory != self.on_disk:
            return "inventory not applied"
        return "in sync"


@dataclass
class Upstream:
    name: str
    endpoints: int
    healthy: int
    health: str  # "healthy", "2/3 healthy", "unhealthy", "no endpoints"
    active_connections: int
    connections: int
    requests: int
    errors_5xx: int
    connect_failures: int
    in_inventory: Optional[bool] = None  # None when no inventory was given


@dataclass
class Status:
    admin: str
    state: str
    envoy_version: str
    uptime: str
    config_dir: Optional[str]
    resources: list[Resource] = field(default_factory=list)
    upstreams: list[Upstream] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for resource, item in zip(self.resources, data["resources"]):
            item["state"] = resource.state
        return data

    @property
    def in_sync(self) -> bool:
        return all(r.state == "in sync" for r in self.resources)


# --------------------------------------------------------------------------- collect


def file_version(path: str) -> Optional[str]:
    """version_info of an xDS file (the first line xdsgen writes), None when missing."""
    try:
        with open(path, encoding="utf-8") as handle:
            for _ in range(50):
                line = handle.readline()
                if not line:
                    break
                match = _VERSION_LINE.match(line.rstrip("\n"))
                if match:
                    return match.group(1)
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _bootstrap_config_dir(dump: dict[str, Any]) -> Optional[str]:
    for config in dump.get("configs", []):
        if config.get("@type", "").endswith("BootstrapConfigDump"):
            dynamic = config.get("bootstrap", {}).get("dynamic_resources", {})
            path = dynamic.get("cds_config", {}).get("path_config_source", {}).get("path")
            if not path:
                path = dynamic.get("cds_config", {}).get("path")
            return os.path.dirname(path) if path else None
    return None


def _applied_versions(dump: dict[str, Any], stats: dict[str, Any]) -> dict[str, str]:
    """File name -> the version Envoy last accepted in full.

    The *_version_text stats are that; /config_dump is only the fallback, because after a
    refused CDS update its version_info already names the refused version (Envoy 1.40
    applies the clusters it can and reports the update rejected).
    """
    versions: dict[str, str] = {}
    for name, value in stats.items():
        if not name.endswith(".version_text"):
            continue
        value = str(value).strip('"')
        if name == "cluster_manager.cds.version_text":
            versions["cds.yaml"] = value
        elif name == "listener_manager.lds.version_text":
            versions["lds.yaml"] = value
        elif name.startswith("sds."):
            versions[f"sds_{name[4 : -len('.version_text')]}.yaml"] = value
        elif name.startswith("http.") and ".rds." in name:
            versions[f"rds_{name.split('.rds.', 1)[1][: -len('.version_text')]}.yaml"] = value
    fallback: dict[str, str] = {}
    for config in dump.get("configs", []):
        kind = config.get("@type", "").rsplit(".", 1)[-1]
        if kind == "ClustersConfigDump" and "version_info" in config:
            fallback["cds.yaml"] = config["version_info"]
        elif kind == "ListenersConfigDump" and "version_info" in config:
            fallback["lds.yaml"] = config["version_info"]
        elif kind == "RoutesConfigDump":
            for rc in config.get("dynamic_route_configs", []):
                name = rc.get("route_config", {}).get("name")
                if name and "version_info" in rc:
                    fallback[f"rds_{name}.yaml"] = rc["version_info"]
        elif kind == "SecretsConfigDump":
            for secret in config.get("dynamic_active_secrets", []):
                if secret.get("name") and "version_info" in secret:
                    fallback[f"sds_{secret['name']}.yaml"] = secret["version_info"]
    return {**fallback, **{k: v for k, v in versions.items() if v}}


def _update_counts(stats: dict[str, Any], kind: str, name: str) -> tuple[int, int, int]:
    if kind == "cds":
        prefixes = ["cluster_manager.cds."]
    elif kind == "lds":
        prefixes = ["listener_manager.lds."]
    elif kind == "sds":
        prefixes = [f"sds.{name}."]
    else:
        # One subscription per listener that uses the route configuration:
        # http.<stat_prefix>.rds.<route config name>.*
        suffix = f".rds.{name}.update_success"
        prefixes = [
            k[: -len("update_success")]
            for k in stats
            if k.startswith("http.") and k.endswith(suffix)
        ]
    counts = [0, 0, 0]
    for prefix in prefixes:
        for index, counter in enumerate(("update_success", "update_rejected", "update_failure")):
            counts[index] += _int(stats.get(prefix + counter))
    return counts[0], counts[1], counts[2]


def _release(version: str) -> str:
    # "<sha>/1.40.0/Clean/RELEASE/BoringSSL" -> "1.40.0"
    parts = version.split("/")
    return parts[1] if len(parts) > 1 else version


def _host_healthy(host: dict[str, Any]) -> bool:
    health = host.get("health_status", {})
    if any(
        value is True
        for key, value in health.items()
        if key.startswith("failed_") or key == "pending_dynamic_removal"
    ):
        return False
    return health.get("eds_health_status", "HEALTHY") in ("HEALTHY", "DEGRADED")


def collect(
    admin: Admin,
    config_dir: Optional[str] = None,
    rendered: Optional[dict[str, str]] = None,
    inventory_clusters: Optional[set[str]] = None,
) -> Status:
    """Ask Envoy, read the files, and put them side by side.

    `rendered`: file name -> version the inventory renders (None without an inventory).
    """
    server = admin.get_json("/server_info")
    stats = admin.stats()
    clusters = admin.get_json("/clusters?format=json")
    dump = admin.get_json("/config_dump")
    config_dir = config_dir or _bootstrap_config_dir(dump)
    applied = _applied_versions(dump, stats)

    names = set(applied) | set(rendered or {})
    if config_dir and os.path.isdir(config_dir):
        names |= {
            n
            for n in os.listdir(config_dir)
            if n in ("cds.yaml", "lds.yaml") or re.fullmatch(r"(rds|sds)_.+\.yaml", n)
        }
    resources = []
    order = {"cds": 0, "lds": 1, "rds": 2, "sds": 3}
    for file_name in names:
        kind = file_name[:3]
        name = file_name[4:-5] if kind in ("rds", "sds") else ""
        success, rejected, failed = _update_counts(stats, kind, name)
        resources.append(
            Resource(
                file=file_name,
                kind=kind,
                name=name,
                inventory=(rendered or {}).get(file_name) if rendered is not None else None,
                on_disk=file_version(os.path.join(config_dir, file_name)) if config_dir else None,
                applied=applied.get(file_name),
                updates=success,
                rejected=rejected,
                failed=failed,
            )
        )
    resources.sort(key=lambda r: (order.get(r.kind, 9), r.name))

    upstreams = []
    for cluster in clusters.get("cluster_statuses", []):
        name = cluster.get("name", "")
        hosts = cluster.get("host_statuses", [])
        healthy = sum(1 for h in hosts if _host_healthy(h))
        if not hosts:
            health = "no endpoints"
        elif healthy == len(hosts):
            health = "healthy"
        elif healthy == 0:
            health = "unhealthy"
        else:
            health = f"{healthy}/{len(hosts)} healthy"
        prefix = f"cluster.{name}."
        upstreams.append(
            Upstream(
                name=name,
                endpoints=len(hosts),
                healthy=healthy,
                health=health,
                active_connections=_int(stats.get(prefix + "upstream_cx_active")),
                connections=_int(stats.get(prefix + "upstream_cx_total")),
                requests=_int(stats.get(prefix + "upstream_rq_total")),
                errors_5xx=_int(stats.get(prefix + "upstream_rq_5xx")),
                connect_failures=_int(stats.get(prefix + "upstream_cx_connect_fail")),
                in_inventory=(name in inventory_clusters)
                if inventory_clusters is not None
                else None,
            )
        )
    if inventory_clusters is not None:
        present = {u.name for u in upstreams}
        for name in sorted(inventory_clusters - present):
            upstreams.append(Upstream(name, 0, 0, "not in Envoy", 0, 0, 0, 0, 0, in_inventory=True))
    upstreams.sort(key=lambda u: u.name)
    return Status(
        admin=admin.address,
        state=str(server.get("state", "?")),
        envoy_version=_release(str(server.get("version", "?"))),
        uptime=str(server.get("uptime_current_epoch", "?")),
        config_dir=config_dir,
        resources=resources,
        upstreams=upstreams,
    )


def status(
    inventory: Optional[str], admin_address: Optional[str], config_dir: Optional[str]
) -> Status:
    """status for the CLI: the inventory (if any) gives the admin address, the config
    directory and the versions it would render."""
    rendered = None
    clusters = None
    host, port = parse_admin(admin_address) if admin_address else ("127.0.0.1", 15001)
    if inventory:
        from xdsgen.pipeline import load_model, render

        model = load_model(inventory, config_dir=config_dir)
        files = render(model)
        rendered = {name: files.version(name) for name in files.files}
        clusters = model.cluster_names()
        config_dir = model.envoy.config_dir
        if not admin_address:
            host, port = model.envoy.admin_host, model.envoy.admin_port
    return collect(Admin(host, port), config_dir, rendered, clusters)


# --------------------------------------------------------------------------- output


def _short(version: Optional[str]) -> str:
    return "-" if version is None else version[:8]


def print_status(result: Status, console: Any) -> None:
    """The answer is printed even under --quiet: it is what the person asked for."""
    console.info(
        f"Envoy {result.envoy_version} at {result.admin}: {result.state}, up {result.uptime}"
        + (f"; config dir {result.config_dir}" if result.config_dir else ""),
        "bold",
    )
    has_inventory = any(r.inventory is not None for r in result.resources)
    columns = [
        "file",
        *(["inventory"] if has_inventory else []),
        "on disk",
        "applied",
        "updates",
        "refused",
        "state",
    ]
    rows, styles = [], []
    for r in result.resources:
        rows.append(
            [
                r.file,
                *([_short(r.inventory)] if has_inventory else []),
                _short(r.on_disk),
                _short(r.applied),
                r.updates,
                r.rejected + r.failed,  # both in --json; to a person, Envoy said no
                r.state,
            ]
        )
        styles.append(
            "green" if r.state == "in sync" and not (r.rejected or r.failed) else "yellow"
        )
    console.table(columns, rows, title="config", row_styles=styles, force=True)
    columns = [
        "upstream",
        "endpoints",
        "health",
        "active",
        "connections",
        "requests",
        "5xx",
        "failed cx",
    ]
    rows, styles = [], []
    for u in result.upstreams:
        rows.append(
            [
                u.name + ("" if u.in_inventory in (None, True) else " (not in inventory)"),
                u.endpoints,
                u.health,
                u.active_connections,
                u.connections,
                u.requests,
                u.errors_5xx,
                u.connect_failures,
            ]
        )
        styles.append("green" if u.health == "healthy" and not u.errors_5xx else "yellow")
    console.table(
        columns, rows, title="upstreams (since Envoy started)", row_styles=styles, force=True
    )
