"""Envoy's conventions as xdsgen uses them: the one place for file names, the version line,
stat names and the connection manager's fixed settings.

Every module that names an xDS file, reads or writes `version_info`, or looks up an
Envoy stat goes through here, so that a convention cannot drift between the renderer,
the planner, the confirmer and `status`.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from typing import Any, Optional

# --------------------------------------------------------------------------- files

CDS_FILE = "cds.yaml"
LDS_FILE = "lds.yaml"
# Envoy's file-based RDS and SDS take exactly one resource per file.
_RDS_PREFIX = "rds_"
_SDS_PREFIX = "sds_"
_SUFFIX = ".yaml"
_CONFIG_FILE_RE = re.compile(r"^(?:cds\.yaml|lds\.yaml|(?:rds|sds)_[^/]+\.yaml)$")
# The admin interface's Unix socket, by default in the config directory: Envoy and
# xdsgen share that directory (in Docker it is the mounted one) and no cluster can dial it.
ADMIN_SOCKET = "admin.sock"
# What Envoy is given for cds.yaml/lds.yaml when "no such file" is meant: it never
# notices a deleted file, and an empty list is the closest config it accepts.
EMPTY_BODY = "resources: []\n"

KINDS = ("cluster", "secret", "route", "listener")  # also the make-before-break order

# How the files reach Envoy (envoy.layout). rename: each file is renamed into place, one
# make-before-break step at a time. directory: the whole set is swapped at once, the way
# kubelet updates a ConfigMap volume (live/swap.py): every file is a symlink through
# `..data`, which points at a `..<timestamp>` directory and is replaced by one rename;
# Envoy sees it through path_config_source.watched_directory.
LAYOUT_RENAME = "rename"
LAYOUT_DIRECTORY = "directory"
LAYOUTS = (LAYOUT_RENAME, LAYOUT_DIRECTORY)
DATA_LINK = "..data"
DATA_LINK_TMP = "..data_tmp"

# Where an acme: certificate without cert/key lives: under the config directory, so that a
# Docker Envoy which mounts that directory sees it too.
ACME_CERTS_DIR = "certs"
ACME_CHAIN_FILE = "fullchain.pem"
ACME_KEY_FILE = "privkey.pem"


def acme_paths(config_dir: str, name: str) -> tuple[str, str]:
    """(chain, key) of certificate `name` obtained by xdsgen, under `config_dir`."""
    directory = posixpath.join(config_dir, ACME_CERTS_DIR, name)
    return posixpath.join(directory, ACME_CHAIN_FILE), posixpath.join(directory, ACME_KEY_FILE)


def rds_file(route_config: str) -> str:
    return f"{_RDS_PREFIX}{route_config}{_SUFFIX}"


def sds_file(secret: str) -> str:
    return f"{_SDS_PREFIX}{secret}{_SUFFIX}"


def is_config_file(name: str) -> bool:
    """A name of the shape xdsgen writes (ownership is the state's business, not this)."""
    return bool(_CONFIG_FILE_RE.match(name))


def kind_of(file_name: str) -> str:
    """cluster, listener, route or secret: what the resources of the file are."""
    if file_name == CDS_FILE:
        return "cluster"
    if file_name == LDS_FILE:
        return "listener"
    return "route" if file_name.startswith(_RDS_PREFIX) else "secret"


def short_kind(file_name: str) -> str:
    """cds, lds, rds or sds (status's column)."""
    return file_name[:3]


def resource_name(file_name: str) -> str:
    """The route configuration or secret an rds_/sds_ file holds ("" for cds/lds)."""
    if file_name.startswith((_RDS_PREFIX, _SDS_PREFIX)) and file_name.endswith(_SUFFIX):
        return file_name[len(_RDS_PREFIX) : -len(_SUFFIX)]
    return ""


def is_rds(file_name: str) -> bool:
    return file_name.startswith(_RDS_PREFIX)


def is_sds(file_name: str) -> bool:
    return file_name.startswith(_SDS_PREFIX)


def envoy_path(envoy_dir: str, file_name: str) -> str:
    return posixpath.join(envoy_dir, file_name)


# --------------------------------------------------------------------------- version_info

_VERSION_LINE_RE = re.compile(r'^version_info:\s*"?([^"\s]*)"?\s*$')


def content_version(body: str) -> str:
    """The version of a file is its content's: an unchanged inventory renders the same
    version, so a no-op apply writes nothing and Envoy counts no update."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def versioned(body: str) -> str:
    """`body` with its version line first (the only form xdsgen writes)."""
    return f'version_info: "{content_version(body)}"\n{body}'


def file_version(text: Optional[str]) -> Optional[str]:
    """The version_info a file claims (its first line, as xdsgen writes it), or None."""
    if not text:
        return None
    match = _VERSION_LINE_RE.match(text.split("\n", 1)[0])
    return match.group(1) if match else None


def version_is_true(text: str) -> bool:
    """Whether the version line still names the content below it: a hand edit that kept
    the line would otherwise look like the version it claims."""
    first, _, body = text.partition("\n")
    version = file_version(first)
    return version is not None and content_version(body) == version


# --------------------------------------------------------------------------- stats

CDS_STATS = "cluster_manager.cds"
LDS_STATS = "listener_manager.lds"
CLUSTERS_WARMING = "cluster_manager.warming_clusters"
LISTENERS_WARMING = "listener_manager.total_listeners_warming"
# Only the stats apply reads: keeps each poll to a few hundred lines on a big Envoy.
APPLY_STATS_FILTER = r"^(cluster_manager\.|listener_manager\.|http\.[^.]+\.rds\.|sds\.)"
UPDATE_OUTCOMES = ("update_success", "update_rejected", "update_failure")
REFUSALS = ("update_rejected", "update_failure")


def rds_stats(stat_prefix: str, route_config: str) -> str:
    """The stat prefix of one listener's RDS subscription: one per connection manager."""
    return f"http.{stat_prefix}.rds.{route_config}"


def sds_stats(secret: str) -> str:
    return f"sds.{secret}"


def key_rotation_failed(secret: str) -> str:
    return f"sds.{secret}.key_rotation_failed"


def file_of_version_stat(stat: str) -> Optional[str]:
    """The file whose version a `*.version_text` stat reports, None for other stats."""
    if not stat.endswith(".version_text"):
        return None
    prefix = stat[: -len(".version_text")]
    if prefix == CDS_STATS:
        return CDS_FILE
    if prefix == LDS_STATS:
        return LDS_FILE
    if prefix.startswith("sds."):
        return sds_file(prefix[len("sds.") :])
    if prefix.startswith("http.") and ".rds." in prefix:
        return rds_file(prefix.split(".rds.", 1)[1])
    return None


def cluster_stat(cluster: str, name: str) -> str:
    return f"cluster.{cluster}.{name}"


# --------------------------------------------------------------------------- connection manager

# The HTTP connection manager's fixed settings for an edge proxy, printed by the template
# and shown by `explain`. An edge proxy trusts no hop in front of it: the client's
# address is the connection's, and X-Forwarded-For is overwritten with it.
HCM_SETTINGS = (
    ("codec_type", "AUTO"),
    ("use_remote_address", True),
    # A Host header with a port (name:8443) must still match the vhost's name: the route
    # configuration ignores the port when matching (ignore_port_in_host_matching), so the
    # backend still gets the Host the client sent (strip_any_host_port would cut it).
    ("normalize_path", True),
    ("merge_slashes", True),
)
HTTP3_CODEC = "HTTP3"


def http3_settings(settings: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    """The manager of a QUIC listener (HTTP/3): its TCP twin's settings, the HTTP3 codec."""
    return tuple(
        ("codec_type", HTTP3_CODEC) if key == "codec_type" else (key, value)
        for key, value in settings
    )


XFF_HEADER = "x-forwarded-for"
XFF_VALUE = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"

# What every HTTP backend is told about the client (issue 14), set by the route
# configuration of each listener, replacing whatever the client sent.
REAL_IP_HEADER = "x-real-ip"
PROTO_HEADER = "x-forwarded-proto"
PORT_HEADER = "x-forwarded-port"
PORT_VALUE = "%DOWNSTREAM_LOCAL_PORT%"  # the port the client connected to
CLIENT_HEADERS = (XFF_HEADER, REAL_IP_HEADER, PROTO_HEADER, PORT_HEADER)
# How a header is set: replacing a value, or only where the response has none.
OVERWRITE = "OVERWRITE_IF_EXISTS_OR_ADD"
ADD_IF_ABSENT = "ADD_IF_ABSENT"
# Who an RBAC policy asks about: the connection's peer, or the client behind trusted proxies.
PRINCIPALS = ("direct_remote_ip", "remote_ip")

# Words the templates may print unquoted (keys and enum values xdsgen itself chose, never
# inventory text): render's `key` and `word` filters refuse anything else.
BARE_KEYS = frozenset(
    {"prefix", "path", XFF_HEADER, *CLIENT_HEADERS, *PRINCIPALS, *(key for key, _ in HCM_SETTINGS)}
)
BARE_WORDS = frozenset(
    {
        OVERWRITE,
        ADD_IF_ABSENT,
        "V1",
        "V2",
        HTTP3_CODEC,
        *(value for _, value in HCM_SETTINGS if isinstance(value, str)),
    }
)
