"""Import equivalence with real Envoy: the original and the render of its draft answer alike.

Each case in tests/import_cases/*/case.yaml is one Envoy feature. The harness rewrites the
original to loopback (listener ports to free ports, listener addresses to 127.0.0.1 / ::1,
every cluster's endpoints to a backend that answers with its own name, CERTS/ to
certificates made here, /etc/envoy/ to the case's own files), imports it, starts Envoy
with the original and then with the render of the draft on the same ports, and sends both
the same requests (hosts, paths, SNI, websocket upgrades, TCP, UDP; request headers sent,
response headers shown, request headers the backend saw, requests sent while others are
in flight). A request may answer differently only when the case marks it (`differs:
TOPIC`) and the import reported a difference of that topic; a case that exits 0 may have
no such request. A case lists the patches the import writes (`patched:`); when there are
some, the draft without them (--no-patches) runs too and must answer some request
otherwise: the requests see what the patches carry.

Cases in `mode: expect` cannot run their original here (Envoy 1.40 does not read v2; a
dual-stack "::" listener binds more than loopback): the draft's render alone runs, and
must give the answers the case's table says the original gives.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import yaml
from harness import (
    Certs,
    Envoy,
    HttpBackend,
    TcpEcho,
    UdpEcho,
    free_ports,
    http_get,
    peer_certificate_names,
    running_envoy,
    tcp_roundtrip,
    udp_roundtrip,
    write_inventory,
)

from xdsgen.importer import ImportResult, import_files

CASES = Path(__file__).resolve().parent / "import_cases"
FEATURES = sorted(p.name for p in CASES.iterdir() if (p / "case.yaml").is_file())
LOOPBACK = {"ipv4": "127.0.0.1", "ipv6": "::1"}


def _key(mapping: dict[str, Any], *names: str) -> Optional[str]:
    """The key a mapping uses for a field (proto name or its lowerCamelCase)."""
    for name in names:
        for spelling in (name, _camel(name)):
            if spelling in mapping:
                return spelling
    return None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _walk(value: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(value, dict):
        visit(value)
        for item in value.values():
            _walk(item, visit)
    elif isinstance(value, list):
        for item in value:
            _walk(item, visit)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value is not None else []


class Lab:
    """Backends, certificates and free ports for one case."""

    def __init__(self, case: Path, spec: dict[str, Any], work: Path):
        self.case, self.spec, self.work = case, spec, work
        self.certs = Certs(work / "certs")
        self.issued = {
            name: self.certs.issue(name, *hosts)
            for name, hosts in (spec.get("certificates") or {}).items()
        }
        self.backends: dict[str, Any] = {}
        for name, kind in (spec.get("backends") or {}).items():
            if kind == "http":
                self.backends[name] = HttpBackend(name)
            elif kind == "tcp":
                self.backends[name] = TcpEcho(name)
            elif kind == "udp":
                self.backends[name] = UdpEcho(name)
            else:  # {tls: CERT} or {http-tls: CERT}: HTTPS with that certificate
                self.backends[name] = HttpBackend(name, tls=self.issued[next(iter(kind.values()))])
        self.ports: dict[int, int] = {}

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()

    def port(self, number: int) -> int:
        if number not in self.ports:
            taken = set(self.ports.values())
            self.ports[number] = next(p for p in free_ports(len(taken) + 1) if p not in taken)
        return self.ports[number]

    def backend_address(self, cluster: str) -> dict[str, Any]:
        backend = self.backends[cluster]
        return {"address": backend.host, "port_value": backend.port}

    # ------------------------------------------------------------------ the original

    def rewrite_text(self, value: Any) -> Any:
        if isinstance(value, str):
            value = value.replace("CERTS/", f"{self.certs.dir}/")
            return value.replace("/etc/envoy/", f"{self.work}/original/")
        return value

    def rewrite_listener(self, listener: dict[str, Any]) -> None:
        address = listener[_key(listener, "address") or "address"]
        sock = address[_key(address, "socket_address") or "socket_address"]
        port_key = _key(sock, "port_value") or "port_value"
        sock[port_key] = self.port(int(sock[port_key]))
        sock["address"] = "::1" if ":" in sock["address"] else "127.0.0.1"

        def redirect(node: dict[str, Any]) -> None:
            key = _key(node, "port_redirect")
            if key:
                node[key] = self.port(int(node[key]))

        _walk(listener, redirect)

    def rewrite_endpoints(self, node: Any, cluster: str) -> None:
        """Every endpoint to the cluster's backend, or to the backend its address names
        (a cluster balancing over several backends)."""

        def visit(item: dict[str, Any]) -> None:
            key = _key(item, "socket_address")
            if key:
                named = item[key].get("address") if isinstance(item[key], dict) else None
                item[key] = self.backend_address(named if named in self.backends else cluster)

        _walk(node, visit)

    def original(self) -> tuple[list[Path], Path, int]:
        """Rewrite the case's files into work/original: (files to import, bootstrap, admin)."""
        target = self.work / "original"
        target.mkdir()
        docs = {}
        for path in sorted(self.case.iterdir()):
            if path.suffix == ".json":
                docs[path.name] = json.loads(path.read_text())
            elif path.name != "case.yaml":
                docs[path.name] = yaml.safe_load(path.read_text())
        services: dict[str, str] = {}  # EDS service name -> cluster
        for doc in docs.values():
            for cluster in self.clusters(doc):
                name = cluster["name"]
                config = cluster.get(_key(cluster, "eds_cluster_config") or "", {})
                services[config.get("service_name", name)] = name
                self.rewrite_endpoints(cluster, name)
        for doc in docs.values():
            for item in self.resources(doc):
                if _key(item, "filter_chains", "listener_filters"):
                    self.rewrite_listener(item)
                elif "cluster_name" in item and "name" not in item:  # a load assignment
                    self.rewrite_endpoints(item, services[item["cluster_name"]])
        admin = self.port(-1)
        for name, doc in docs.items():
            self.rewrite_all(doc)
            if name == self.spec.get("bootstrap"):
                doc["admin"] = {"address": {"socket_address": self.address(admin)}}
            text = json.dumps(doc, indent="\t") if name.endswith(".json") else yaml.safe_dump(doc)
            (target / name).write_text(text)
        files = [target / name for name in self.spec["files"]]
        if self.spec.get("bootstrap"):
            return files, target / self.spec["bootstrap"], admin
        bootstrap = target / "bootstrap.yaml"
        sources = {}
        for path in files:
            kinds = {r.get("@type", "").rsplit(".", 1)[-1] for r in self.resources(docs[path.name])}
            sources["lds_config" if "Listener" in kinds else "cds_config"] = {
                "resource_api_version": "V3",
                "path_config_source": {"path": str(path)},
            }
        bootstrap.write_text(
            yaml.safe_dump(
                {
                    "node": {"id": "original", "cluster": "original"},
                    "admin": {"address": {"socket_address": self.address(admin)}},
                    "dynamic_resources": sources,
                }
            )
        )
        return files, bootstrap, admin

    def rewrite_all(self, doc: Any) -> None:
        def visit(node: dict[str, Any]) -> None:
            for key, value in node.items():
                node[key] = self.rewrite_text(value)

        _walk(doc, visit)

    @staticmethod
    def address(port: int) -> dict[str, Any]:
        return {"address": "127.0.0.1", "port_value": port}

    @staticmethod
    def resources(doc: Any) -> list[dict[str, Any]]:
        if isinstance(doc, dict) and "resources" in doc:
            return [r for r in _items(doc["resources"]) if isinstance(r, dict)]
        static = doc.get(_key(doc, "static_resources") or "", {}) if isinstance(doc, dict) else {}
        return [
            r
            for section in ("listeners", "clusters")
            for r in _items(static.get(section))
            if isinstance(r, dict)
        ]

    def clusters(self, doc: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in self.resources(doc)
            if r.get("@type", "").endswith("Cluster")
            or _key(r, "connect_timeout", "load_assignment", "eds_cluster_config")
        ]

    # ------------------------------------------------------------------ the draft

    def draft_inventory(self, inventory: dict[str, Any], admin: int, remap: bool) -> Path:
        """The draft, run here: admin and config dir of its own; with `remap` (expect
        mode) also loopback addresses, free ports, backends and test certificates."""
        envoy = inventory.setdefault("envoy", {})
        envoy.pop("container_config_dir", None)
        envoy.update({"admin": f"127.0.0.1:{admin}", "config_dir": str(self.work / "draft-config")})
        envoy["access_log"] = "off"
        if remap:
            for family, spec in inventory["listen"].items():
                spec["address"] = LOOPBACK[family]
                for kind in ("http", "https"):
                    if kind in spec:
                        spec[kind] = self.port(spec[kind])
            for section in ("tcp", "udp"):
                for item in inventory.get(section, []):
                    item["port"] = self.port(item["port"])
            for name, spec in inventory["upstreams"].items():
                backend = self.backends[name]
                endpoint = backend.endpoint
                if isinstance(spec, dict):
                    spec["endpoints"] = [endpoint]
                    if "tls" in spec:
                        spec["tls"] = {"verify": False}
                else:
                    inventory["upstreams"][name] = endpoint
            for name, spec in (inventory.get("certificates") or {}).items():
                cert, key = self.issued[name]
                spec.update({"cert": str(cert), "key": str(key)})
        return write_inventory(self.work / "draft.yaml", inventory)

    # ------------------------------------------------------------------ requests

    def send(self, request: dict[str, Any]) -> dict[str, Any]:
        host = LOOPBACK[request.get("family", "ipv4")]
        try:
            return self._send(request, host)
        except (OSError, http.client.HTTPException, ssl.SSLError, AssertionError):
            return {"refused": True}

    def _send(self, request: dict[str, Any], host: str) -> dict[str, Any]:
        if "http" in request or "https" in request:
            tls = "https" in request
            port = self.port(request["https" if tls else "http"])
            context = None
            if tls:
                context = ssl.create_default_context(cafile=str(self.certs.ca_path))
                context.check_hostname = False
            sent = {"Host": request.get("host", "example"), **request.get("headers", {})}
            busy = self.busy(host, port, request, sent) if "while_busy" in request else None
            status, headers, body = http_get(
                host,
                port,
                request.get("path", "/"),
                headers=sent,
                tls_context=context,
                sni=request.get("sni"),
                timeout=3,
            )
            if busy is not None:
                busy.join()
            result: dict[str, Any] = {"status": status}
            with contextlib.suppress(ValueError):
                seen = json.loads(body)
                result.update(backend=seen["backend"], path=seen["path"])
                upstream = {k.lower(): v for k, v in seen["headers"].items()}
                for name in request.get("seen", []):  # request headers the backend saw
                    result[f"seen {name}"] = upstream.get(name)
            if "location" in headers:
                result["location"] = headers["location"]
            for name in request.get("show", []):  # response headers
                result[f"header {name}"] = headers.get(name)
            if tls:
                names = peer_certificate_names(host, port, request.get("sni"), self.certs.ca_path)
                result["certificate"] = names[0]
            return result
        if "websocket" in request:
            return {"status": self.websocket(host, self.port(request["websocket"]), request)}
        if "tls" in request:
            port = self.port(request["tls"])
            names = peer_certificate_names(host, port, request.get("sni"), self.certs.ca_path)
            return {"certificate": names[0]}
        if "tcp" in request:
            reply = tcp_roundtrip(host, self.port(request["tcp"]), b"ping", timeout=3)
            return {"backend": reply.decode().split(":", 1)[0]} if reply else {"refused": True}
        reply = udp_roundtrip(host, self.port(request["udp"]), b"ping", timeout=3)
        return {"backend": reply.decode().split(":", 1)[0]}

    @staticmethod
    def busy(host: str, port: int, request: dict[str, Any], sent: dict[str, str]) -> Any:
        """`while_busy: [SECONDS, COUNT]`: COUNT slow requests in flight (the backend
        answers SECONDS later) before the request itself: what a circuit breaker lets
        through. The object returned waits for them."""
        delay, count = request["while_busy"]

        def slow() -> None:
            with contextlib.suppress(OSError, http.client.HTTPException):
                http_get(host, port, "/", headers={**sent, "X-Delay": str(delay)}, timeout=10)

        threads = [threading.Thread(target=slow, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
            time.sleep(0.3)

        class Waiter:
            @staticmethod
            def join() -> None:
                for thread in threads:
                    thread.join()

        return Waiter

    @staticmethod
    def websocket(host: str, port: int, request: dict[str, Any]) -> int:
        key = base64.b64encode(os.urandom(16)).decode()
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.sendall(
                (
                    f"GET {request.get('path', '/')} HTTP/1.1\r\nHost: {request['host']}\r\n"
                    "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            line = sock.makefile("rb").readline().decode()
        return int(line.split()[1])


def _expected(lab: Lab, expect: dict[str, Any]) -> dict[str, Any]:
    out = dict(expect)
    if "location" in out:
        location = out["location"]
        for number in list(lab.ports):
            location = location.replace(f"{{{number}}}", str(lab.ports[number]))
        out["location"] = location
    return out


def _check_report(result: ImportResult, spec: dict[str, Any]) -> None:
    lines = [d.line() for d in result.differences]
    assert result.problems == []
    assert (0 if result.equivalent else 7) == spec["exit"], "\n".join(lines)
    for text in spec.get("differences", []):
        assert any(text in line for line in lines), (text, lines)


@pytest.mark.envoy
@pytest.mark.parametrize("case", FEATURES)
def test_original_and_draft_answer_alike(tmp_path: Path, case: str) -> None:
    spec = yaml.safe_load((CASES / case / "case.yaml").read_text())
    lab = Lab(CASES / case, spec, tmp_path)
    try:
        if spec.get("mode") == "expect":
            _run_expected(lab, spec)
        else:
            _run_compared(lab, spec)
    finally:
        lab.close()


def _run_compared(lab: Lab, spec: dict[str, Any]) -> None:
    files, bootstrap, admin = lab.original()
    result = import_files([str(p) for p in files])
    _check_report(result, spec)
    assert [p.line() for p in result.patches] == spec.get("patched", [])
    topics = {d.topic for d in result.differences}
    original = Envoy(bootstrap, admin, lab.work / "original.log").start()
    try:
        before = [lab.send(r) for r in spec["requests"]]
    finally:
        original.stop()
    draft = lab.draft_inventory(result.inventory, lab.port(-2), remap=False)
    with running_envoy(draft, lab.work / "draft-run"):
        after = [lab.send(r) for r in spec["requests"]]
    if result.patches:
        # The requests see what the patches carry: without them the draft answers otherwise.
        bare = import_files([str(p) for p in files], patches=False)
        assert not bare.equivalent and "patches" not in bare.inventory
        unpatched = lab.draft_inventory(bare.inventory, lab.port(-3), remap=False)
        with running_envoy(unpatched, lab.work / "unpatched-run"):
            without = [lab.send(r) for r in spec["requests"]]
        assert without != before, "the requests do not see what the patches carry"
    for request, ours, theirs in zip(spec["requests"], before, after):
        if "differs" in request:
            assert ours != theirs, f"{request}: both answered {ours}: the case is out of date"
            assert request["differs"] in topics, (request, [d.line() for d in result.differences])
        else:
            assert ours == theirs, f"{request}: original {ours}, draft {theirs}"
    if spec["exit"] == 0:
        assert not any("differs" in r for r in spec["requests"])


def _run_expected(lab: Lab, spec: dict[str, Any]) -> None:
    result = import_files([str(CASES / lab.case.name / name) for name in spec["files"]])
    _check_report(result, spec)
    draft = lab.draft_inventory(result.inventory, lab.port(-2), remap=True)
    with running_envoy(draft, lab.work / "draft-run"):
        for request in spec["requests"]:
            got = lab.send(request)
            expected = _expected(lab, request["expect"])
            assert {k: got.get(k) for k in expected} == expected, (request, got)
