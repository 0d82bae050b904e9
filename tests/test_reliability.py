"""Fail safe under faults and hostile setups: each test reproduces one scenario of the
fault-injection pass (real Envoy on loopback) that once failed.

The module shares one Envoy, started on the default admin (a Unix socket in the config
directory); every test applies its own inventory to that directory, as a router does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Certs, HttpBackend, TcpEcho, free_ports, http_get, write_inventory
from test_apply_helpers import (
    Live,
    file_facts,
    run_xdsgen,
    start_live,
    wait_until,
    without_source_notes,
)

from xdsgen.live.state import State

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("rel")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port) as envoy:
        yield Live(envoy, tmp, tmp / "config")
    seed.close()


def backend_at(port: int, path: str = "/", host: str = "any") -> str:
    status, _, body = http_get("127.0.0.1", port, path, {"Host": host}, timeout=3)
    return str(json.loads(body)["backend"]) if status == 200 else f"status {status}"


def plain(live: Live, name: str, http4: int, routes: dict[str, str], **extra: Any) -> Path:
    """An inventory with one plain-HTTP listener; routes: prefix -> upstream endpoint."""
    upstreams = {f"u{i}": endpoint for i, endpoint in enumerate(routes.values())}
    return live.inventory(
        name,
        listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
        upstreams={**upstreams, **extra.pop("upstreams", {})},
        http=[
            {
                "domains": ["*"],
                "routes": [
                    {"prefix": prefix, "upstream": f"u{i}"} for i, prefix in enumerate(routes)
                ],
            }
        ],
        **extra,
    )


# --------------------------------------------------------------------------- 1. admin


def test_default_admin_is_a_unix_socket_no_cluster_can_dial(live: Live) -> None:
    sock = live.config / "admin.sock"
    assert sock.is_socket()
    assert oct(sock.stat().st_mode & 0o777) == oct(0o660)
    # Every admin read of this module goes through it; status too.
    result = run_xdsgen("status", "--config-dir", str(live.config))
    assert result.returncode == 0, result.stderr
    assert f"at unix:{sock}: LIVE" in result.stdout
    # Envoy itself says its admin address is that pipe: there is no TCP port to dial.
    dump = json.loads(live.envoy.admin("/config_dump"))
    (bootstrap,) = [c for c in dump["configs"] if "bootstrap" in c]
    assert bootstrap["bootstrap"]["admin"]["address"] == {
        "pipe": {"path": str(sock), "mode": 0o660}
    }


def _hosts_name_for_loopback() -> str:
    """A name other than localhost that /etc/hosts maps to 127.0.0.1 here, or ""."""
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if fields and fields[0] == "127.0.0.1":
            for name in fields[1:]:
                if "localhost" not in name:
                    return name
    return ""


def test_names_that_reach_a_tcp_admin_are_refused(tmp_path: Path, monkeypatch: Any) -> None:
    """Envoy resolves *.localhost to loopback, and any name in /etc/hosts may map there:
    with a TCP admin, an upstream by such a name would expose /quitquitquit."""
    from xdsgen.pipeline import load_model

    (admin,) = free_ports(1)
    name = _hosts_name_for_loopback()
    if not name:  # this machine has none: the resolver is asked for a made-up one
        name = "router-ui.test"
        real = socket.getaddrinfo

        def fake(host: str, *args: Any, **kwargs: Any) -> Any:
            if host == name:
                return real("127.0.0.1", *args, **kwargs)
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", fake)
    for host in ("foo.localhost", name):
        path = write_inventory(
            tmp_path / "inv.yaml",
            {
                "version": 1,
                "envoy": {"config_dir": str(tmp_path / "c"), "admin": f"127.0.0.1:{admin}"},
                "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
                "upstreams": {"ui": f"{host}:{admin}"},
                "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "ui"}]}],
            },
        )
        with pytest.raises(Exception) as caught:
            load_model(str(path))
        assert "points at Envoy's own admin interface" in str(caught.value), host


# --------------------------------------------------------------------------- 2. renewals


def _certificate(ca: Any, serial: int, days: int, name: str) -> tuple[bytes, bytes]:
    """A leaf for `name` signed by the trustme CA, with a chosen serial and lifetime."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _served_not_after(port: int, ca: Path) -> Any:
    from cryptography import x509

    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="site.example.com") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def test_renewal_that_keeps_the_serial_is_delivered(live: Live, tmp_path: Path) -> None:
    app = HttpBackend("app")
    certs = Certs(tmp_path / "certs")
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    first = _certificate(certs.ca, 0x1234, 2, "site.example.com")  # 2 days left
    cert.write_bytes(first[0])
    key.write_bytes(first[1])
    key.chmod(0o600)
    http4, https4 = free_ports(2)
    try:
        inventory = live.inventory(
            "renewal",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4, "https": https4}},
            upstreams={"app": app.endpoint},
            certificates={"site": {"cert": str(cert), "key": str(key)}},
            http=[
                {
                    "domains": ["site.example.com"],
                    "tls": "site",
                    "routes": [{"prefix": "/", "upstream": "app"}],
                }
            ],
        )
        assert run_xdsgen("apply", str(inventory)).returncode == 0
        old_expiry = _served_not_after(https4, certs.ca_path)
        # Renewed in place with the same serial, 90 days this time.
        renewed = _certificate(certs.ca, 0x1234, 90, "site.example.com")
        cert.write_bytes(renewed[0])
        key.write_bytes(renewed[1])
        dry = run_xdsgen("apply", str(inventory), "--dry-run")
        assert dry.returncode == 5 and "certificate files changed" in dry.stdout
        result = run_xdsgen("apply", str(inventory), "-v")
        assert result.returncode == 0, result.stderr
        assert "certificates: confirmed" in result.stdout
        assert (_served_not_after(https4, certs.ca_path) - old_expiry).days >= 80
        assert run_xdsgen("apply", str(inventory), "-v").stdout.strip() == "unchanged"
    finally:
        app.close()


# --------------------------------------------------------------------------- 3. user files


def test_files_xdsgen_did_not_write_are_never_removed(live: Live) -> None:
    app = HttpBackend("app")
    (http4,) = free_ports(1)
    mine = {
        "rds_custom.yaml": 'version_info: "mine"\nresources: []\n',
        "sds_mine.yaml": "# my secret notes\nresources: []\n",
    }
    try:
        for name, text in mine.items():
            (live.config / name).write_text(text)
        inventory = plain(live, "userfiles", http4, {"/": app.endpoint})
        dry = run_xdsgen("apply", str(inventory), "--dry-run")
        assert "custom" not in dry.stdout and "mine" not in dry.stdout, dry.stdout
        assert run_xdsgen("apply", str(inventory)).returncode == 0
        noop = run_xdsgen("apply", str(inventory), "--dry-run")
        assert noop.returncode == 0, noop.stdout
        for name, text in mine.items():
            assert (live.config / name).read_text() == text
        # A file of ours that is no longer rendered is removed, and the plan says so.
        tls_less = plain(live, "userfiles2", http4, {"/": app.endpoint}, tcp=[])
        assert run_xdsgen("apply", str(tls_less)).returncode == 0
        for name, text in mine.items():
            assert (live.config / name).read_text() == text
    finally:
        for name in mine:
            (live.config / name).unlink(missing_ok=True)
        app.close()


# --------------------------------------------------------------------------- 4. restore target


def test_refused_files_a_killed_apply_left_are_never_restored(live: Live) -> None:
    """A killed apply can leave a config Envoy refused on disk. The next refusal restores
    the last config Envoy confirmed, not those files, so a restarted Envoy has listeners."""
    app = HttpBackend("app")
    http4, busy = free_ports(2)
    holder = socket.socket()
    try:
        good = plain(live, "killed-good", http4, {"/": app.endpoint})
        assert run_xdsgen("apply", str(good)).returncode == 0
        confirmed = State.load(str(live.config)).last_confirmed()
        assert confirmed is not None
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        bad = plain(live, "killed-bad", busy, {"/": app.endpoint})
        # What a SIGKILL between the refused write and its restore leaves behind.
        from xdsgen.live.orchestrate import build

        _, rendered = build(str(bad), None)
        state = State.load(str(live.config))
        state.begin(rendered.files, {}, str(bad))
        for name, text in rendered.files.items():
            temp = live.config / f".{name}.tmp"
            temp.write_text(text)
            os.replace(temp, live.config / name)
        wait_until(
            lambda: live.envoy.stat("listener_manager.lds.update_rejected") != "0",
            what="Envoy to refuse the listener",
        )
        result = run_xdsgen("apply", str(bad), "--timeout", "5")
        assert result.returncode == 3, result.stderr
        assert "did not finish" in result.stderr  # the journal told the next apply
        assert "last confirmed config is restored and Envoy confirmed it" in result.stderr
        on_disk = {n: (live.config / n).read_text() for n in confirmed["files"]}
        assert on_disk == confirmed["files"]
        assert backend_at(http4) == "app"
        assert State.load(str(live.config)).pending is None
    finally:
        holder.close()
        app.close()


# --------------------------------------------------------------------------- 5. slow admin


def test_a_slow_envoy_is_waited_for_and_a_hung_one_writes_nothing(live: Live) -> None:
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    pid = live.envoy.proc.pid  # type: ignore[union-attr]
    try:
        first = plain(live, "slow-a", http4, {"/": a.endpoint})
        assert run_xdsgen("apply", str(first)).returncode == 0
        second = plain(live, "slow-b", http4, {"/": b.endpoint})
        # Hung before apply starts: nothing is written, exit 6 after --timeout.
        os.kill(pid, signal.SIGSTOP)
        before = file_facts(live.config)
        try:
            started = time.monotonic()
            hung = run_xdsgen("apply", str(second), "--timeout", "1.5")
            took = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
        assert hung.returncode == 6, hung.stderr
        assert "nothing was written" in hung.stderr and took < 10
        assert file_facts(live.config) == before
        # Slow while apply runs (a router's Envoy busy for seconds): waited for.
        process = subprocess.Popen(
            _xdsgen("apply", second),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.3)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(3)
        os.kill(pid, signal.SIGCONT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert backend_at(http4) == "b"
    finally:
        os.kill(pid, signal.SIGCONT)
        a.close()
        b.close()


def _xdsgen(*args: Any) -> list[str]:
    import sys

    return [sys.executable, "-m", "xdsgen", *map(str, args)]


def test_http_proxy_in_the_environment_is_never_used(live: Live) -> None:
    app = HttpBackend("app")
    (http4, proxy) = free_ports(2)
    try:
        inventory = plain(live, "proxyenv", http4, {"/": app.endpoint})
        env = {"http_proxy": f"http://127.0.0.1:{proxy}", "HTTP_PROXY": f"http://127.0.0.1:{proxy}"}
        result = run_xdsgen("apply", str(inventory), env=env)
        assert result.returncode == 0, result.stderr
        assert backend_at(http4) == "app"
        assert run_xdsgen("status", str(inventory), env=env).returncode == 0
    finally:
        app.close()


# --------------------------------------------------------------------------- 6. garbage


class _Garbage(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _garbage_server(kind: str) -> _Garbage:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            if kind == "not-http":
                self.request.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            elif kind == "json-list":
                body = b"[1, 2, 3]"
                self.request.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            elif kind == "trickle":
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(600):  # one byte every 0.1 s: never ends within a deadline
                    try:
                        self.request.sendall(b"x")
                    except OSError:
                        return
                    time.sleep(0.1)

    server = _Garbage(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("kind", ["not-http", "json-list", "trickle"])
def test_garbage_on_the_admin_port_is_a_clear_exit_6(live: Live, kind: str) -> None:
    app = HttpBackend("app")
    (http4,) = free_ports(1)
    server = _garbage_server(kind)
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        inventory = plain(live, f"garbage-{kind}", http4, {"/": app.endpoint})
        before = file_facts(live.config)
        started = time.monotonic()
        result = run_xdsgen("apply", str(inventory), "--admin", address, "--timeout", "2")
        assert time.monotonic() - started < 15
        assert result.returncode == 6, result.stderr
        assert "Traceback" not in result.stderr and address in result.stderr
        assert file_facts(live.config) == before
        status = run_xdsgen("status", "--admin", address)
        assert status.returncode == 6 and "Traceback" not in status.stderr, status.stderr
    finally:
        server.shutdown()
        server.server_close()
        app.close()


# --------------------------------------------------------------------------- 7. make-before-break


def test_clusters_in_use_survive_a_cds_file_that_does_not_parse(live: Live) -> None:
    old, new = HttpBackend("old"), HttpBackend("new")
    (http4,) = free_ports(1)
    try:
        first = plain(live, "mbb-old", http4, {"/": old.endpoint})
        assert run_xdsgen("apply", str(first)).returncode == 0
        # The file on disk is damaged in place (Envoy does not notice an in-place write).
        (live.config / "cds.yaml").write_text("resources: [unclosed\n")
        failures: list[str] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                try:
                    answer = backend_at(http4)
                except OSError as exc:
                    answer = str(exc)
                if answer not in ("old", "new"):
                    failures.append(answer)

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        # The route moves to a new upstream named differently: u0 (old) is dropped.
        second = live.inventory(
            "mbb-new",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"other": new.endpoint},
            http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "other"}]}],
        )
        result = run_xdsgen("apply", str(second), "-v")
        time.sleep(0.2)
        stop.set()
        thread.join()
        assert result.returncode == 0, result.stderr
        assert "clusters (old and new): confirmed" in result.stdout
        assert failures == []
        assert backend_at(http4) == "new"
    finally:
        old.close()
        new.close()


# --------------------------------------------------------------------------- 8. chain names


def test_removing_one_passthrough_keeps_the_others_connections(live: Live) -> None:
    nas, vpn = TcpEcho("nas"), TcpEcho("vpn")
    http4, https4 = free_ports(2)

    def inventory(name: str, entries: list[tuple[str, str]]) -> Path:
        return live.inventory(
            name,
            listen={"ipv4": {"address": "127.0.0.1", "http": http4, "https": https4}},
            upstreams={"nas": nas.endpoint, "vpn": vpn.endpoint},
            tls_passthrough=[{"sni": [sni], "upstream": up} for sni, up in entries],
        )

    both = inventory("pass-both", [("nas.example.com", "nas"), ("vpn.example.com", "vpn")])
    assert run_xdsgen("apply", str(both)).returncode == 0
    # A raw connection "for" vpn.example.com: a ClientHello with that SNI, then our bytes.
    hello = _client_hello("vpn.example.com")
    conn = socket.create_connection(("127.0.0.1", https4), timeout=5)
    try:
        conn.sendall(hello)
        assert _read_until(conn, b"vpn:").startswith(b"vpn:")
        only_vpn = inventory("pass-one", [("vpn.example.com", "vpn")])
        result = run_xdsgen("apply", str(only_vpn), "-v")
        assert result.returncode == 0, result.stderr
        time.sleep(2.5)  # past the drain time of a changed chain
        conn.sendall(b"still here")
        assert b"still here" in _read_until(conn, b"still here")
    finally:
        conn.close()
        nas.close()
        vpn.close()


def _client_hello(sni: str) -> bytes:
    """A TLS ClientHello that a real client would send (made by ssl with a memory BIO)."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def _read_until(conn: socket.socket, marker: bytes) -> bytes:
    data = b""
    deadline = time.monotonic() + 5
    while marker not in data and time.monotonic() < deadline:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data[data.find(marker) :] if marker in data else data


# --------------------------------------------------------------------------- 10. DNS


def test_restore_does_not_wait_for_dns_it_did_not_cause(live: Live) -> None:
    """An upstream whose DNS never answers keeps its cluster warming: the apply that adds
    it fails (exit 3), and the restore must not wait for that cluster."""
    app = HttpBackend("app")
    (http4,) = free_ports(1)
    try:
        good = plain(live, "dns-good", http4, {"/": app.endpoint})
        assert run_xdsgen("apply", str(good)).returncode == 0
        dns = plain(
            live,
            "dns-never",
            http4,
            {"/": app.endpoint},
            upstreams={"slow": "never-answers.invalid-tld-xdsgen:80"},
        )
        started = time.monotonic()
        result = run_xdsgen("apply", str(dns), "--timeout", "3", "--no-envoy-check")
        took = time.monotonic() - started
        if result.returncode == 0:  # this machine's resolver answered (NXDOMAIN) at once
            assert backend_at(http4) == "app"
            return
        assert result.returncode == 3, result.stderr
        assert "last confirmed config is restored and Envoy confirmed it" in result.stderr
        assert took < 3 + 3 + 5, took  # the restore did not wait for the warming cluster
        assert backend_at(http4) == "app"
    finally:
        app.close()


# --------------------------------------------------------------------------- 11. disk faults


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs (CI runs as root), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the test needs root): {done.stderr!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_mid_apply_restores_what_envoy_confirmed(
    tmp_path: Path, small_disk: Path
) -> None:
    from harness import running_envoy

    app, other = HttpBackend("app"), HttpBackend("other")
    (http4,) = free_ports(1)
    config = small_disk / "config"

    def inventory(name: str, routes: int) -> Path:
        return write_inventory(
            tmp_path / f"{name}.yaml",
            {
                "version": 1,
                "envoy": {"config_dir": str(config), "access_log": "off"},
                "listen": {"ipv4": {"address": "127.0.0.1", "http": http4}},
                "upstreams": {"app": app.endpoint, "other": other.endpoint},
                "http": [
                    {
                        "domains": ["*"],
                        "routes": [
                            *(
                                {"path": f"/long/{'x' * 200}/{i}", "upstream": "other"}
                                for i in range(routes)
                            ),
                            {"prefix": "/", "upstream": "app"},
                        ],
                    }
                ],
            },
        )

    small = inventory("small", 1)
    try:
        with running_envoy(small, small_disk) as envoy:  # reads small_disk/config
            assert run_xdsgen("apply", str(small)).returncode == 0
            filler = small_disk / "filler"
            free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
            # Leave room for the journal (the new texts compressed: ~15 KB) and the new CDS,
            # not for the big route file (~600 KB).
            filler.write_bytes(b"\0" * max(free - 300_000, 0))
            big = inventory("big", 2000)
            result = run_xdsgen("apply", str(big), "-v")
            assert result.returncode == 6, result.stderr
            assert "No space left on device" in result.stderr or "nothing was written" in (
                result.stderr
            )
            assert "Traceback" not in result.stderr
            assert backend_at(http4) == "app"
            confirmed = State.load(str(config)).last_confirmed()
            assert confirmed is not None
            on_disk = {n: (config / n).read_text() for n in confirmed["files"]}
            assert on_disk == confirmed["files"]
            filler.unlink()
            assert run_xdsgen("apply", str(big)).returncode == 0, "works again with room"
            assert backend_at(http4, f"/long/{'x' * 200}/7") == "other"
            assert envoy.stat("listener_manager.lds.update_rejected") == "0"
    finally:
        app.close()
        other.close()


def test_a_confirmed_apply_whose_history_cannot_be_saved_is_recorded_next_time(
    live: Live, monkeypatch: Any
) -> None:
    from xdsgen.errors import IOProblem
    from xdsgen.live import orchestrate
    from xdsgen.live.state import State as StateClass

    app = HttpBackend("app")
    (http4,) = free_ports(1)
    try:
        inventory = plain(live, "history", http4, {"/": app.endpoint})
        real_commit = StateClass.commit
        calls = {"n": 0}

        def failing_commit(self: Any, *args: Any, **kwargs: Any) -> None:
            calls["n"] += 1
            raise IOProblem("cannot write state.json: No space left on device")

        monkeypatch.setattr(StateClass, "commit", failing_commit)
        with pytest.raises(IOProblem) as caught:
            orchestrate.apply(str(inventory), orchestrate.Options(envoy_check=""))
        assert "Envoy runs the new config (confirmed)" in str(caught.value)
        assert "the next apply records it" in str(caught.value)
        assert backend_at(http4) == "app"
        monkeypatch.setattr(StateClass, "commit", real_commit)
        notes: list[str] = []
        result = orchestrate.apply(
            str(inventory), orchestrate.Options(envoy_check=""), warn=notes.append
        )
        assert result.plan.empty
        assert any("confirmed by Envoy but not recorded; recorded now" in n for n in notes)
        state = State.load(str(live.config))
        assert state.pending is None and state.accepted[0]["confirmed"] is True
    finally:
        app.close()


# --------------------------------------------------------------------------- 13. render


def test_render_into_a_live_directory_is_refused(live: Live) -> None:
    app = HttpBackend("app")
    (http4,) = free_ports(1)
    try:
        inventory = plain(live, "render-live", http4, {"/": app.endpoint})
        assert run_xdsgen("apply", str(inventory)).returncode == 0
        before = file_facts(live.config)
        other = plain(live, "render-other", http4, {"/x/": app.endpoint})
        result = run_xdsgen("render", str(other))
        assert result.returncode == 2
        assert "is applied to a running Envoy" in result.stderr and "xdsgen apply" in result.stderr
        assert file_facts(live.config) == before
    finally:
        app.close()


# --------------------------------------------------------------------------- 14. drift


def test_hand_edits_and_a_second_inventory_are_not_silent(live: Live) -> None:
    app = HttpBackend("app")
    (http4,) = free_ports(1)
    try:
        inventory = plain(live, "drift", http4, {"/": app.endpoint})
        assert run_xdsgen("apply", str(inventory)).returncode == 0
        rds = live.config / "rds_http_ipv4.yaml"
        text = rds.read_text()
        edited = text.replace('prefix: "/"', 'prefix: "/edited/"')
        temp = live.config / ".edit"
        temp.write_text(edited)
        os.replace(temp, rds)  # by rename: Envoy loads it, same version line
        wait_until(lambda: backend_at(http4, "/") != "app", what="Envoy to load the edit")
        status = json.loads(run_xdsgen("status", str(inventory), "--json").stdout)
        states = {r["file"]: r["state"] for r in status["resources"]}
        assert states["rds_http_ipv4.yaml"] == "edited by hand"
        dry = run_xdsgen("apply", str(inventory), "--dry-run")
        assert dry.returncode == 5 and dry.stdout.split()[:3] == ["~", "route", "http_ipv4"]
        result = run_xdsgen("apply", str(inventory))
        assert result.returncode == 0
        assert "edited by hand" in result.stderr
        assert backend_at(http4, "/") == "app"
        # Another inventory applied to the same directory is said, both ways.
        other = plain(live, "drift-other", http4, {"/": app.endpoint, "/o/": app.endpoint})
        flip = run_xdsgen("apply", str(other))
        assert flip.returncode == 0
        assert f"last applied from {inventory}" in flip.stderr
        flop = run_xdsgen("apply", str(inventory))
        assert f"last applied from {other}" in flop.stderr
        assert without_source_notes(flop.stderr) == ""
    finally:
        app.close()
