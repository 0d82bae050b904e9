"""Envoy's own settings: where the files go, where its admin listens, the access log."""

from __future__ import annotations

import ipaddress
import os
import posixpath
from pathlib import Path

from xdsgen.conventions import ADMIN_SOCKET, LAYOUT_DIRECTORY
from xdsgen.errors import PathKey
from xdsgen.hints import endpoint_hint
from xdsgen.model.ir import AdminAddress, Envoy
from xdsgen.model.problems import Problems
from xdsgen.model.values import parse_admin
from xdsgen.spec import EnvoySpec

# sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


def build(spec: EnvoySpec, base_dir: Path, problems: Problems) -> Envoy:
    access_log = spec.access_log
    if access_log is False or access_log == "off":
        log_path = None
    else:
        log_path = str(access_log)
        problems.require_absolute(("envoy", "access_log"), log_path)
    if spec.container_config_dir is not None:
        problems.require_absolute(("envoy", "container_config_dir"), spec.container_config_dir)
    config_dir = spec.config_dir
    if not os.path.isabs(config_dir):
        config_dir = os.path.normpath(os.path.join(base_dir, config_dir))
    envoy_dir = spec.container_config_dir or config_dir
    admin, envoy_path = _admin(spec, config_dir, envoy_dir, problems)
    return Envoy(
        config_dir=config_dir,
        envoy_dir=envoy_dir,
        envoy_dir_fixed=spec.container_config_dir is not None,
        admin=admin,
        admin_envoy_path=envoy_path,
        admin_in_config_dir=spec.admin is None,
        access_log=log_path,
        node_id=spec.node_id,
        max_connections=spec.max_connections,
        access_log_format=spec.access_log_format,
        layout=spec.layout,
        # Directory-swap mode: kubelet-style `..data` swaps move no file Envoy reads, so
        # every subscription watches the directory instead (live/swap.py).
        watched_directory=envoy_dir if spec.layout == LAYOUT_DIRECTORY else None,
    )


def _admin(
    spec: EnvoySpec, config_dir: str, envoy_dir: str, problems: Problems
) -> tuple[AdminAddress, str]:
    """The admin address as xdsgen reaches it, and the socket path as Envoy sees it."""
    path: PathKey = ("envoy", "admin")
    if spec.admin is None:
        own = posixpath.join(config_dir, ADMIN_SOCKET)
        seen = posixpath.join(envoy_dir, ADMIN_SOCKET)
        for socket_path in dict.fromkeys((own, seen)):
            _check_socket_path(("envoy", "config_dir"), socket_path, problems)
        return AdminAddress(path=own), seen
    try:
        admin = parse_admin(spec.admin)
    except ValueError as exc:
        problems.error(
            path,
            str(exc),
            endpoint_hint(
                spec.admin,
                "e.g. 127.0.0.1:15001, or leave envoy.admin out for the default Unix socket",
            ),
        )
        return AdminAddress(host="127.0.0.1", port=15001), ""
    if admin.is_unix:
        _check_socket_path(path, admin.path, problems)
        seen = admin.path
        if envoy_dir != config_dir and _within_dir(admin.path, config_dir):
            seen = posixpath.join(envoy_dir, posixpath.relpath(admin.path, config_dir))
            _check_socket_path(path, seen, problems)
        return admin, seen
    if not ipaddress.ip_address(admin.host).is_loopback:
        if spec.admin_allow_remote:
            problems.warn(
                path,
                f"Envoy's admin interface listens on {admin.host}, beyond loopback: anyone who "
                "reaches it can read the whole config and stop Envoy (/quitquitquit)",
            )
        else:
            problems.error(
                path,
                f"admin address {admin.host} is not loopback: it would expose /quitquitquit "
                "and /config_dump",
                "use 127.0.0.1 or ::1, or set envoy.admin_allow_remote: true",
            )
    else:
        problems.warn(
            path,
            f"the admin listens on TCP {admin}: every local program, and an upstream that "
            "resolves to it, can reach /quitquitquit and /config_dump",
            "leave envoy.admin out for the default Unix socket in the config directory, "
            "which no cluster can dial",
        )
    return admin, ""


def _check_socket_path(path: PathKey, socket_path: str, problems: Problems) -> None:
    if len(socket_path.encode("utf-8")) > MAX_SOCKET_PATH_BYTES:
        problems.error(
            path,
            f"the admin socket path {socket_path} is longer than "
            f"{MAX_SOCKET_PATH_BYTES} bytes, which Unix sockets cannot hold",
            "use a shorter config_dir, or set envoy.admin to a short socket path",
        )


def _within_dir(path: str, directory: str) -> bool:
    return posixpath.commonpath([posixpath.normpath(path), directory]) == directory
