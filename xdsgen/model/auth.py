"""Authenticators (issue 14): `auth.NAME.basic` (an htpasswd file Envoy reads) and
`auth.NAME.forward` (an ext_authz HTTP service), checked as far as xdsgen can before Envoy
sees them. model/access.py puts them on the routes that name them.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from xdsgen import conventions as xds
from xdsgen.errors import PathKey
from xdsgen.model.ir import Cluster, ForwardAuth, UpstreamTls
from xdsgen.model.problems import Problems
from xdsgen.model.values import is_ip, parse_endpoint
from xdsgen.spec import DEFAULTS, AuthSpec, Spec

BASIC_FILTER = "envoy.filters.http.basic_auth"
FORWARD_FILTER_PREFIX = "envoy.filters.http.ext_authz."
NO_AUTH = "none"
AUTH_TIMEOUT = "1s"  # an auth service answering slower is down: fail closed (403)
_HTPASSWD_SHA = re.compile(r"^\{SHA\}[A-Za-z0-9+/]{27}=$")


@dataclass(frozen=True)
class Authenticator:
    name: str
    kind: str  # basic or forward
    users: str = ""  # basic: the htpasswd file
    users_version: str = ""  # basic: sha256 of its content ("" when unreadable here)
    forward: Optional[ForwardAuth] = None
    cluster: Optional[Cluster] = None  # forward: the auth service

    @property
    def filter(self) -> str:
        return BASIC_FILTER if self.kind == "basic" else FORWARD_FILTER_PREFIX + self.name

    @property
    def label(self) -> str:
        if self.kind == "basic":
            return f"{self.name} (basic, {self.users})"
        return f"{self.name} (forward to {self.forward.uri if self.forward else '?'})"


class AuthBuilder:
    """Checks each authenticator and makes what Envoy needs of it."""

    def __init__(self, spec: Spec, problems: Problems, check_files: bool):
        self.spec = spec
        self.problems = problems
        self.check_files = check_files
        self.user_files: set[str] = set()  # htpasswd files: apply --watch watches them

    def build(self, auth: AuthSpec) -> Optional[Authenticator]:
        if auth.basic is not None:
            if not self.problems.require_absolute((*auth.path, "basic"), auth.basic):
                return None
            self.user_files.add(auth.basic)
            version = self._htpasswd(auth.basic, (*auth.path, "basic"))
            return Authenticator(auth.name, "basic", users=auth.basic, users_version=version)
        if auth.forward is None:
            return None
        return self._forward(auth)

    def _htpasswd(self, file_path: str, path: PathKey) -> str:
        """The file's content hash, after the checks Envoy makes when it loads it."""
        problem = None
        try:
            info = os.stat(file_path)
            with open(file_path, "rb") as handle:
                data = handle.read(1 << 20)
        except FileNotFoundError:
            problem = f"{file_path} does not exist"
        except OSError as exc:
            problem = f"{file_path}: {exc.strerror}"
        except ValueError:
            return ""
        if problem:
            if self.check_files:
                self.problems.error(
                    path, problem, "Envoy would refuse the routes; xdsgen passwd FILE USER makes it"
                )
            else:
                self.problems.warn(path, problem, "fine if you render for another machine")
            return ""
        for line_no, message in htpasswd_problems(data):
            self.problems.error(
                path,
                f"{file_path} line {line_no}: {message}",
                "xdsgen passwd FILE USER writes a {SHA} entry",
            )
        if info.st_mode & stat.S_IROTH:
            self.problems.warn(
                path,
                f"{file_path} is readable by every user: its unsalted SHA-1 hashes are easy to "
                "crack",
                "chmod o-r it (Envoy's user or group must still read it)",
            )
        return hashlib.sha256(data).hexdigest()[:16]

    def _forward(self, auth: AuthSpec) -> Optional[Authenticator]:
        assert auth.forward is not None
        path = (*auth.forward.path, "url")
        url = auth.forward.url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.problems.error(
                path,
                f"{url!r} is not an http:// or https:// URL",
                "write the auth service's check URL: http://127.0.0.1:9091/api/authz/ext-authz/",
            )
            return None
        if parts.query or parts.fragment or "@" in parts.netloc:
            self.problems.error(
                path, f"{url!r}: write scheme://host:port/path, without user, query or fragment"
            )
            return None
        netloc = parts.netloc
        if _has_no_port(netloc):
            netloc += ":443" if parts.scheme == "https" else ":80"
        endpoint = parse_endpoint(netloc)
        if isinstance(endpoint, str):
            self.problems.error(path, endpoint)
            return None
        name = auth_cluster_name(auth.name)
        if name in self.spec.upstream_names:
            self.problems.error(
                auth.path,
                f"the auth service of {auth.name!r} is a cluster named {name!r}, and an "
                "upstream has that name",
                f"rename upstream {name!r}",
            )
            return None
        static = is_ip(endpoint.host)
        tls = None
        if parts.scheme == "https":
            tls = UpstreamTls(
                sni=None if static else endpoint.host,
                verify=True,
                ca=DEFAULTS["upstreams.*.tls.ca"],
            )
            if static:
                self.problems.error(
                    path,
                    "https to an IP address: xdsgen cannot check the auth service's certificate "
                    "without its name",
                    "use its host name, or http:// on loopback",
                )
                return None
        cluster = Cluster(
            name=name,
            discovery="STATIC" if static else "STRICT_DNS",
            endpoints=(endpoint,),
            connect_timeout=AUTH_TIMEOUT,
            tls=tls,
            dns_lookup_family=None if static else "V4_PREFERRED",
            derived_from=f"auth.{auth.name}",
        )
        headers = []
        for index, header in enumerate(auth.forward.headers_to_upstream):
            lowered = header.lower()
            if lowered in xds.CLIENT_HEADERS:
                self.problems.error(
                    (*auth.forward.path, "headers_to_upstream", index),
                    f"{lowered} is set by xdsgen on every request",
                )
                continue
            headers.append(lowered)
        forward = ForwardAuth(
            name=auth.name,
            cluster=name,
            uri=url,
            path_prefix=parts.path.rstrip("/"),
            timeout=AUTH_TIMEOUT,
            headers_to_upstream=tuple(sorted(set(headers))),
        )
        return Authenticator(auth.name, "forward", forward=forward, cluster=cluster)


def _has_no_port(netloc: str) -> bool:
    return not re.search(r":[0-9]+$", netloc)


def auth_cluster_name(name: str) -> str:
    return f"{name}_auth"


def htpasswd_problems(data: bytes) -> list[tuple[int, str]]:
    """What Envoy's basic_auth filter would refuse in an htpasswd file (its readHtpasswd):
    (line, message) pairs."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [(1, "not UTF-8 text")]
    found: list[tuple[int, str]] = []
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        user, colon, hashed = line.partition(":")
        if not colon:
            found.append((number, "expected USER:{SHA}HASH"))
        elif not user or not hashed:
            found.append((number, "an empty user name or password hash"))
        elif user in seen:
            found.append((number, f"user {user!r} is listed twice"))
        elif not hashed.startswith("{SHA}"):
            found.append(
                (
                    number,
                    f"user {user!r}: Envoy reads only {{SHA}} hashes (not bcrypt, MD5 or crypt)",
                )
            )
        elif not _HTPASSWD_SHA.match(hashed):
            found.append((number, f"user {user!r}: a {{SHA}} hash is 28 base64 characters"))
        seen.add(user)
    return found
