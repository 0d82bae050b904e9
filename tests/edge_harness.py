"""Test pieces for the edge features (issue 15): an HTTP/3 client (aioquic), an h2c
backend (h2), a backend with its own 503 page, and a keep-alive HTTP/1.1 client.

Everything binds and connects on loopback only, on ports the kernel hands out.
"""

from __future__ import annotations

import asyncio
import http.client
import http.server
import json
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Optional

import pytest

# --------------------------------------------------------------------------- HTTP/3


def http3_get(
    host: str,
    port: int,
    authority: str,
    path: str = "/",
    ca: Optional[Path] = None,
    headers: Optional[dict[str, str]] = None,
    timeout: float = 5,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/3 GET over QUIC (aioquic), SNI = `authority`: (status, headers, body)."""
    try:
        from aioquic.asyncio import connect
        from aioquic.asyncio.protocol import QuicConnectionProtocol
        from aioquic.h3.connection import H3_ALPN, H3Connection
        from aioquic.h3.events import DataReceived, HeadersReceived
        from aioquic.quic.configuration import QuicConfiguration
    except ImportError:
        pytest.fail("aioquic is not installed: pip install -e '.[test]'")

    class Client(QuicConnectionProtocol):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.done: Optional[asyncio.Future[None]] = None
            self.status = 0
            self.headers: dict[str, str] = {}
            self.body = b""

        def quic_event_received(self, event: Any) -> None:
            for item in self.h3.handle_event(event):
                if isinstance(item, HeadersReceived):
                    for key, value in item.headers:
                        if key == b":status":
                            self.status = int(value)
                        else:
                            self.headers[key.decode().lower()] = value.decode()
                elif isinstance(item, DataReceived):
                    self.body += item.data
                ended = isinstance(item, (HeadersReceived, DataReceived)) and item.stream_ended
                if ended and self.done is not None and not self.done.done():
                    self.done.set_result(None)

    async def run() -> tuple[int, dict[str, str], bytes]:
        config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
        config.server_name = authority
        if ca is not None:
            config.load_verify_locations(str(ca))
        async with connect(host, port, configuration=config, create_protocol=Client) as client:
            assert isinstance(client, Client)
            client.done = asyncio.get_running_loop().create_future()
            stream = client._quic.get_next_available_stream_id()
            request = [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
            ]
            client.h3.send_headers(stream, request, end_stream=True)
            client.transmit()
            await asyncio.wait_for(client.done, timeout)
            return client.status, client.headers, client.body

    return asyncio.run(asyncio.wait_for(run(), timeout + 1))


# --------------------------------------------------------------------------- backends


class H2cBackend:
    """An HTTP/2-only backend (prior knowledge h2c, as Envoy speaks it with h2: true):
    answers JSON naming itself and the protocol it was spoken to in."""

    def __init__(self, name: str, host: str = "127.0.0.1", tls: Optional[tuple[Path, Path]] = None):
        """`tls`: (certificate, key) to speak h2 over TLS, offered by ALPN."""
        try:
            import h2.config
            import h2.connection
            import h2.events
        except ImportError:
            pytest.fail("h2 is not installed: pip install -e '.[test]'")
        self.name = name
        self.requests = 0
        self.alpn: list[Optional[str]] = []  # what each TLS connection negotiated
        backend = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                tls_object = transport.get_extra_info("ssl_object")
                if tls_object is not None:
                    backend.alpn.append(tls_object.selected_alpn_protocol())
                config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
                self.conn = h2.connection.H2Connection(config)
                self.transport = transport
                self.conn.initiate_connection()
                transport.write(self.conn.data_to_send())

            def data_received(self, data: bytes) -> None:
                try:
                    events = self.conn.receive_data(data)
                except Exception:  # not HTTP/2 (an HTTP/1.1 client): close, as h2-only servers do
                    self.transport.close()
                    return
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        backend.requests += 1
                        path = dict(event.headers).get(":path", "")
                        body = json.dumps(
                            {"backend": backend.name, "protocol": "HTTP/2", "path": path}
                        ).encode()
                        self.conn.send_headers(
                            event.stream_id,
                            [
                                (":status", "200"),
                                ("content-type", "application/json"),
                                ("content-length", str(len(body))),
                            ],
                        )
                        self.conn.send_data(event.stream_id, body, end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        self.transport.close()
                self.transport.write(self.conn.data_to_send())

        self.loop = asyncio.new_event_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        self.host = host
        self.port = int(sock.getsockname()[1])
        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            context.set_alpn_protocols(["h2"])
        self.server = self.loop.run_until_complete(
            self.loop.create_server(Protocol, sock=sock, ssl=context)
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self.thread.join(5)


class PageBackend:
    """Answers `status` with its own body (a backend's own error page), and 200 "ok" on
    /healthz so that health checks pass."""

    def __init__(self, status: int, body: bytes, content_type: str = "text/html"):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                code, data = (200, b"ok") if self.path == "/healthz" else (status, body)
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- clients


class KeepAlive:
    """One HTTP/1.1 connection kept open across requests (to prove it survives a change)."""

    def __init__(self, host: str, port: int, tls: Optional[ssl.SSLContext] = None, sni: str = ""):
        if tls is None:
            self.conn: http.client.HTTPConnection = http.client.HTTPConnection(
                host, port, timeout=5
            )
        else:
            self.conn = http.client.HTTPSConnection(
                host,
                port,
                context=tls,
                timeout=5,
                server_hostname=sni or None,  # type: ignore[call-arg]
            )
        self.conn.connect()
        assert self.conn.sock is not None
        self.local = self.conn.sock.getsockname()

    def get(self, path: str, host: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers={"Host": host})
        response = self.conn.getresponse()
        body = response.read()
        # Our own socket, still the same: a reconnect would have a new local port.
        assert self.conn.sock is not None and self.conn.sock.getsockname() == self.local
        return response.status, body

    def close(self) -> None:
        self.conn.close()


def stoppable(backend: Any) -> Any:
    """`backend` (harness.HttpBackend) with stop(): close its port AND the connections
    Envoy keeps open to it, as a process that dies does (close() alone leaves the
    keep-alive connections answering)."""
    import contextlib

    server = backend.server
    sockets: list[socket.socket] = []
    accept = server.get_request

    def get_request() -> Any:
        sock, address = accept()
        sockets.append(sock)
        return sock, address

    server.get_request = get_request

    def stop() -> None:
        backend.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    backend.stop = stop
    return backend
