"""Directory-swap mode with real Envoy: what one swap makes Envoy do, how many swaps a
change takes, refusals rolled back by swapping, `status` through the links, and
--no-confirm."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Certs, HttpBackend, free_ports
from test_apply_envoy import _backend_of
from test_apply_helpers import Live, run_xdsgen, start_live, wait_until
from test_dirswap_envoy import assert_envoy_runs, assert_swap_layout

from xdsgen.conventions import versioned
from xdsgen.errors import EnvoyRefused
from xdsgen.live import orchestrate
from xdsgen.live.orchestrate import Options, apply
from xdsgen.live.state import State
from xdsgen.live.swap import data_target
from xdsgen.live.transition import read_files

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("dirchanges")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port, layout="directory") as envoy:
        yield Live(envoy, tmp, tmp / "config", admin, layout="directory")
    seed.close()


def sites(live: Live, name: str, port: int, upstreams: dict[str, Any], **more: Any) -> Path:
    """One vhost per upstream (NAME.test), and a catch-all to the last one."""
    names = list(upstreams)
    return live.inventory(
        name,
        listen={"ipv4": {"address": "127.0.0.1", "http": port}},
        upstreams={n: b.endpoint for n, b in upstreams.items()},
        http=[
            *(
                {"domains": [f"{n}.test"], "routes": [{"prefix": "/", "upstream": n}]}
                for n in names
            ),
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": names[-1]}]},
        ],
        **more,
    )


def swaps(inventory: Path) -> list[str]:
    """Apply, confirmed; the steps it took (each one swap of ..data)."""
    lines: list[str] = []
    result = apply(str(inventory), Options(timeout=10), progress=lines.append)
    assert result.confirmed or result.plan.empty
    return [line.strip().rsplit(":", 1)[0] for line in lines if line.endswith(": confirmed")]


def test_one_swap_makes_envoy_reread_every_file_once(live: Live) -> None:
    """Envoy's answer to a move of ..data: each subscription (cds, lds, every rds/sds) has
    its own watch on the directory and re-reads its own file, once; an unchanged file is
    re-read and changes nothing. And a route edit is exactly one swap."""
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    try:
        swaps(sites(live, "reread-1", http4, {"a": a, "b": b}))
        wait_until(
            lambda: live.envoy.stat("listener_manager.total_listeners_draining") == "0",
            15,
            "removed listeners to drain",
        )
        prefixes = ["cluster_manager.cds", "listener_manager.lds", "http.http_ipv4.rds.http_ipv4"]
        attempts = {p: int(live.envoy.stat(f"{p}.update_attempt")) for p in prefixes}
        stamp = data_target(str(live.config))
        edited = sites(live, "reread-2", http4, {"a": a, "b": b})
        text = edited.read_text().replace("b.test", "bee.test")
        edited.write_text(text)
        assert swaps(edited) == ["listeners, routes and secrets (old clusters kept)"]
        assert data_target(str(live.config)) != stamp
        time.sleep(0.3)  # any second read would have come by now
        assert {p: int(live.envoy.stat(f"{p}.update_attempt")) for p in prefixes} == {
            p: n + 1 for p, n in attempts.items()
        }
        assert _backend_of(http4, "bee.test", "/") == "b"
    finally:
        a.close()
        b.close()


def test_changes_take_the_swaps_they_need(live: Live) -> None:
    """A new upstream with its route: clusters first, then the routes (two swaps). A
    renamed one: three, the last without the old cluster. Every swap confirmed, and the
    state is what the directory holds."""
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    try:
        swaps(sites(live, "count-1", http4, {"a": a}))
        assert swaps(sites(live, "count-2", http4, {"a": a, "b": b})) == [
            "clusters (old and new)",
            "listeners, routes and secrets (old clusters kept)",
        ]
        assert swaps(sites(live, "count-3", http4, {"a": a, "bee": b})) == [
            "clusters (old and new)",
            "listeners, routes and secrets (old clusters kept)",
            "without what nothing uses",
        ]
        files = assert_swap_layout(live.config)
        assert_envoy_runs(live, files)
        assert 'name: "b"' not in files["cds.yaml"]
        assert State.load(str(live.config)).last_confirmed()["files"] == files
        assert swaps(sites(live, "count-3", http4, {"a": a, "bee": b})) == []  # a no-op
    finally:
        a.close()
        b.close()


def test_a_refused_route_file_is_rolled_back_by_swapping(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Envoy refuses a route file of the swapped generation (two vhosts claim "*", which
    xdsgen would never render): apply swaps the last confirmed generation back, exit 3,
    and no request fails meanwhile."""
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    try:
        good = sites(live, "refused-good", http4, {"a": a, "b": b})
        apply(str(good), Options(envoy_check=""))
        before = read_files(str(live.config))
        real_build = orchestrate.build

        def broken_build(inventory: str, config_dir: Any) -> Any:
            model, rendered = real_build(inventory, config_dir)
            name = "rds_http_ipv4.yaml"
            body = rendered.files[name].split("\n", 1)[1].replace('"a.test"', '"*"')
            rendered.files[name] = versioned(body)
            return model, rendered

        monkeypatch.setattr(orchestrate, "build", broken_build)
        failures: list[str] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                for host, expect in (("a.test", "a"), ("other.test", "b")):
                    try:
                        answer = _backend_of(http4, host, "/")
                    except OSError as exc:
                        answer = str(exc)
                    if answer != expect:
                        failures.append(f"{host}: {answer}")

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        try:
            with pytest.raises(EnvoyRefused) as refused:
                apply(str(good), Options(timeout=5))
        finally:
            time.sleep(0.2)
            stop.set()
            thread.join()
        message = str(refused.value)
        assert "listeners, routes and secrets (old clusters kept): Envoy refused" in message
        assert "http.http_ipv4.rds.http_ipv4.update_rejected went up" in message
        assert "last confirmed config is restored and Envoy confirmed it" in message
        assert failures == []
        assert read_files(str(live.config)) == before
        assert_envoy_runs(live, assert_swap_layout(live.config))
        assert State.load(str(live.config)).pending is None
    finally:
        a.close()
        b.close()


def test_a_rejected_secret_of_a_new_listener_is_rolled_back(live: Live, tmp_path: Path) -> None:
    """Without `envoy --mode validate`, a key that belongs to another certificate reaches
    Envoy in the swapped generation: the new listener's secret is refused, the listener
    never warms, and the swap back restores the last confirmed generation."""
    app = HttpBackend("app")
    certs = Certs(tmp_path / "certs")
    cert, _ = certs.issue("site", "site.example.com")
    _, other_key = certs.issue("other", "other.example.com")
    http4, https4 = free_ports(2)
    try:
        good = sites(live, "secret-good", http4, {"app": app})
        apply(str(good), Options())
        before = read_files(str(live.config))
        bad = live.inventory(
            "secret-bad",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4, "https": https4}},
            upstreams={"app": app.endpoint},
            certificates={"site": {"cert": str(cert), "key": str(other_key)}},
            http=[
                {
                    "domains": ["site.example.com"],
                    "tls": "site",
                    "routes": [{"prefix": "/", "upstream": "app"}],
                },
                {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]},
            ],
        )
        with pytest.raises(EnvoyRefused) as failure:
            apply(str(bad), Options(timeout=3.0, envoy_check=""))
        message = str(failure.value)
        assert "Envoy refused the update (sds.site.update_rejected went up)" in message
        assert "last confirmed config is restored and Envoy confirmed it" in message
        assert read_files(str(live.config)) == before
        wait_until(
            lambda: live.envoy.stat("listener_manager.total_listeners_warming") == "0",
            what="the refused listener to go away",
        )
        assert _backend_of(http4, "any", "/") == "app"
        assert_swap_layout(live.config)
    finally:
        app.close()


def test_status_reads_the_versions_through_the_links(live: Live) -> None:
    import json

    a = HttpBackend("a")
    (http4,) = free_ports(1)
    try:
        inventory = sites(live, "status", http4, {"a": a})
        assert run_xdsgen("apply", str(inventory)).returncode == 0
        result = run_xdsgen("status", str(inventory), "--format", "json")
        assert result.returncode == 0, result.stderr
        resources = {r["file"]: r for r in json.loads(result.stdout)["resources"]}
        files = read_files(str(live.config))
        for name in ("cds.yaml", "lds.yaml", "rds_http_ipv4.yaml"):
            assert resources[name]["state"] == "in sync", resources[name]
            assert resources[name]["on_disk"] == files[name].split('"')[1]
    finally:
        a.close()


def test_no_confirm_spreads_the_swaps_and_envoy_ends_on_the_last(live: Live) -> None:
    a, b = HttpBackend("a"), HttpBackend("b")
    http4, unreachable = free_ports(2)
    try:
        swaps(sites(live, "blind-1", http4, {"a": a}))
        blind = sites(live, "blind-2", http4, {"bee": b})
        started = time.monotonic()
        result = run_xdsgen(
            "apply",
            str(blind),
            "--no-confirm",
            "--settle",
            "0.3",
            "--admin",
            f"127.0.0.1:{unreachable}",
            "-v",
        )
        assert result.returncode == 0, result.stderr
        assert "NOT confirmed" in result.stdout
        assert [line.strip() for line in result.stdout.splitlines() if "written" in line] == [
            "clusters (old and new): written",
            "listeners, routes and secrets (old clusters kept): written",
            "without what nothing uses: written",
        ]
        assert time.monotonic() - started >= 0.9  # three swaps, settled apart
        files = assert_swap_layout(live.config)
        wait_until(lambda: _backend_of(http4, "any", "/") == "b", what="the new route")
        assert_envoy_runs(live, files)
    finally:
        a.close()
        b.close()
