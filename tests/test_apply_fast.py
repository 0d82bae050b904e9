"""The fast path of `apply` keeps every safety property (issue 16).

- Why `envoy --mode validate` runs for cluster, listener and secret changes and not for a
  change of routes only: real Envoy takes a cds.yaml or lds.yaml in part, a route file
  whole or not at all (shown here by hand-written files); and a refused route file that
  skipped the check is still detected and rolled back without a failed request.
- The admin reads apply makes (text readouts + `usedonly`) tell what the full filtered
  /stats tells; the uptime comes from /server_info.
- A long wait says what it waits for (status lines), a short one says nothing.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Envoy, HttpBackend, TcpEcho, free_ports, http_get
from test_apply_helpers import Live, start_live

from xdsgen import envoycheck
from xdsgen.admin import Admin, counter, parse_address
from xdsgen.conventions import versioned
from xdsgen.errors import EnvoyRefused
from xdsgen.live import orchestrate
from xdsgen.live.check import reason_to_check
from xdsgen.live.orchestrate import Options, apply
from xdsgen.live.plan import compute_plan
from xdsgen.live.state import State
from xdsgen.live.transition import read_files

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("fast")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port) as envoy:
        yield Live(envoy, tmp, tmp / "config", admin)
    seed.close()


def admin_of(envoy: Envoy) -> Admin:
    return Admin(parse_address(envoy.admin_address), timeout=5)


def backend_at(port: int, host: str = "any", path: str = "/") -> str:
    status, _, body = http_get("127.0.0.1", port, path, {"Host": host}, timeout=3)
    return str(json.loads(body)["backend"]) if status == 200 else f"status {status}"


def sites(live: Live, name: str, http4: int, backends: dict[str, Any], **extra: Any) -> Path:
    """Two vhosts on one plain listener: site.test -> "a", everything else -> "b"."""
    return live.inventory(
        name,
        listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
        upstreams={n: b.endpoint for n, b in backends.items()},
        http=[
            {"domains": ["site.test"], "routes": [{"prefix": "/", "upstream": "a"}]},
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "b"}]},
        ],
        **extra,
    )


def move_in(config: Path, name: str, text: str) -> None:
    temp = config / f".hand-{name}"
    temp.write_text(text)
    os.replace(temp, config / name)


# --------------------------------------------------------------------------- Envoy's facts


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Envoy, Path]]:
    """An Envoy of its own whose files these tests write by hand (no xdsgen history)."""
    tmp = tmp_path_factory.mktemp("facts")
    seed = HttpBackend("seed")
    (http4,) = free_ports(1)
    config = tmp / "config"
    inventory = tmp / "seed.yaml"
    inventory.write_text(
        json.dumps(
            {
                "version": 1,
                "envoy": {"config_dir": str(config), "access_log": "off"},
                "listen": {"ipv4": {"address": "127.0.0.1", "http": http4}},
                "upstreams": {"seed": seed.endpoint},
                "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "seed"}]}],
            }
        )
    )
    from harness import running_envoy

    with running_envoy(inventory, tmp) as envoy:
        yield envoy, config
    seed.close()


def _cluster(name: str, address: str, port: int, kind: str = "STATIC") -> str:
    return (
        '- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\n'
        f'  name: "{name}"\n'
        f"  type: {kind}\n"
        '  connect_timeout: "1s"\n'
        "  load_assignment:\n"
        f'    cluster_name: "{name}"\n'
        "    endpoints:\n"
        "    - lb_endpoints:\n"
        "      - endpoint:\n"
        "          address:\n"
        "            socket_address:\n"
        f'              address: "{address}"\n'
        f"              port_value: {port}\n"
    )


def test_envoy_takes_a_cds_file_in_part(bare: tuple[Envoy, Path]) -> None:
    """A refused cds.yaml has already changed what runs: the good cluster is added."""
    envoy, config = bare
    before = counter(envoy.stats(), "cluster_manager.cds.update_rejected")
    old = (config / "cds.yaml").read_text()
    body = "resources:\n" + old.split("resources:\n", 1)[1]
    # A STATIC cluster cannot take a host name: Envoy refuses that cluster alone.
    body += _cluster("fact_good", "127.0.0.1", 9) + _cluster("fact_bad", "localhost", 9)
    move_in(config, "cds.yaml", versioned(body))
    envoy.wait_for(
        lambda: counter(envoy.stats(), "cluster_manager.cds.update_rejected") > before,
        what="the refusal",
    )
    clusters = envoy.admin("/clusters")
    assert "fact_good::" in clusters and "fact_bad::" not in clusters
    move_in(config, "cds.yaml", old)


def test_envoy_takes_an_lds_file_in_part(bare: tuple[Envoy, Path]) -> None:
    """A listener that cannot be added does not stop the others in the same file."""
    envoy, config = bare
    echo = TcpEcho("echo")
    good, busy = free_ports(2)
    holder = __import__("socket").socket()
    try:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        before = counter(envoy.stats(), "listener_manager.lds.update_rejected")
        old = (config / "lds.yaml").read_text()
        cds = (config / "cds.yaml").read_text()
        move_in(config, "cds.yaml", cds + _cluster("echo", "127.0.0.1", echo.port))
        envoy.wait_for(lambda: "echo::" in envoy.admin("/clusters"), what="the echo cluster")

        def tcp(name: str, port: int) -> str:
            return (
                '- "@type": type.googleapis.com/envoy.config.listener.v3.Listener\n'
                f'  name: "{name}"\n'
                "  address:\n"
                "    socket_address:\n"
                '      address: "127.0.0.1"\n'
                f"      port_value: {port}\n"
                "  filter_chains:\n"
                "  - filters:\n"
                "    - name: envoy.filters.network.tcp_proxy\n"
                "      typed_config:\n"
                '        "@type": type.googleapis.com/'
                "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
                f'        stat_prefix: "{name}"\n'
                '        cluster: "echo"\n'
            )

        body = "resources:\n" + old.split("resources:\n", 1)[1]
        move_in(
            config, "lds.yaml", versioned(body + tcp("fact_good", good) + tcp("fact_busy", busy))
        )
        envoy.wait_for(
            lambda: counter(envoy.stats(), "listener_manager.lds.update_rejected") > before,
            what="the refusal",
        )
        from harness import tcp_roundtrip

        envoy.wait_for(lambda: tcp_roundtrip("127.0.0.1", good, b"hi") == b"echo:hi", what="good")
        move_in(config, "lds.yaml", old)
    finally:
        holder.close()
        echo.close()


def test_envoy_takes_a_route_file_whole_or_not_at_all(bare: tuple[Envoy, Path]) -> None:
    envoy, config = bare
    name = "rds_http_ipv4.yaml"
    old = (config / name).read_text()
    prefix = "http.http_ipv4.rds.http_ipv4"
    before = counter(envoy.stats(), f"{prefix}.update_rejected")
    version = envoy.stat(f"{prefix}.version_text")
    # Two vhosts claiming one domain: the whole route configuration is refused.
    bad = old.replace('- "*"', '- "dup.test"', 1) + (
        '  - name: "second"\n    domains:\n    - "dup.test"\n    routes:\n'
        '    - match:\n        prefix: "/"\n      route:\n        cluster: "seed"\n'
    )
    move_in(config, name, versioned(bad.split("\n", 1)[1]))
    envoy.wait_for(
        lambda: counter(envoy.stats(), f"{prefix}.update_rejected") > before, what="refusal"
    )
    assert envoy.stat(f"{prefix}.version_text") == version  # the old routes still run
    move_in(config, name, old)


# --------------------------------------------------------------------------- the check


def _plan(old: dict[str, str], new: dict[str, str]) -> Any:
    return compute_plan(old, new)


def test_the_check_runs_where_envoy_would_take_a_change_in_part() -> None:
    base = {"cds.yaml": "c1", "lds.yaml": "l1", "rds_a.yaml": "r1", "sds_s.yaml": "s1"}
    routes = _plan(base, {**base, "rds_a.yaml": "r2"})
    assert reason_to_check(routes, None) is None
    assert reason_to_check(routes, "auto") == "asked for (--envoy-check)"
    assert reason_to_check(routes, "/usr/bin/envoy") == "asked for (--envoy-check)"
    for name in ("cds.yaml", "lds.yaml", "sds_s.yaml"):
        plan = _plan(base, {**base, name: "x", "rds_a.yaml": "r2"})
        assert name in (reason_to_check(plan, None) or "")
        assert reason_to_check(plan, "") is None  # --no-envoy-check
    added = _plan(base, {**base, "sds_new.yaml": "s"})
    assert "sds_new.yaml" in (reason_to_check(added, None) or "")


class CheckSpy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[set[str]] = []
        real = envoycheck.check_with_envoy

        def spy(model: Any, rendered: Any, path: str, stand_ins: bool = False) -> None:
            self.calls.append(set(rendered.files))
            real(model, rendered, path, stand_ins)

        monkeypatch.setattr(envoycheck, "check_with_envoy", spy)


def test_route_changes_skip_the_check_and_cluster_changes_run_it(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = CheckSpy(monkeypatch)
    a, b, c = HttpBackend("a"), HttpBackend("b"), HttpBackend("c")
    (http4,) = free_ports(1)
    try:
        first = sites(live, "check-1", http4, {"a": a, "b": b})
        apply(str(first), Options())
        assert len(spy.calls) == 1  # clusters and listeners changed: checked
        lines: list[str] = []
        routes = live.inventory(
            "check-2",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"a": a.endpoint, "b": b.endpoint},
            http=[
                {
                    "domains": ["site.test", "new.test"],
                    "routes": [{"prefix": "/", "upstream": "a"}],
                },
                {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "b"}]},
            ],
        )
        result = apply(str(routes), Options(), progress=lines.append)
        assert [c.kind for c in result.plan.changes] == ["route"]
        assert len(spy.calls) == 1, "a change of routes only is not checked"
        assert "  envoy --mode validate: not needed (only route files change)" in lines
        assert backend_at(http4, "new.test") == "a"
        # --envoy-check checks every change, routes too.
        apply(str(first), Options(envoy_check="auto"))
        assert len(spy.calls) == 2
        # A new upstream: clusters change, checked again.
        third = sites(live, "check-3", http4, {"a": a, "b": c})
        lines.clear()
        apply(str(third), Options(), progress=lines.append)
        assert len(spy.calls) == 3
        assert any("cds.yaml change" in line and "accepted" in line for line in lines)
    finally:
        for backend in (a, b, c):
            backend.close()


def test_a_refused_route_file_without_the_check_is_rolled_back_and_nothing_fails(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the check would have caught, Envoy catches: it keeps serving the old routes,
    apply sees update_rejected and restores the file; no request fails meanwhile."""
    spy = CheckSpy(monkeypatch)
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    try:
        good = sites(live, "refused-rds-good", http4, {"a": a, "b": b})
        apply(str(good), Options(envoy_check=""))
        before = read_files(str(live.config))
        real_build = orchestrate.build

        def broken_build(inventory: str, config_dir: Any) -> Any:
            model, rendered = real_build(inventory, config_dir)
            name = "rds_http_ipv4.yaml"
            body = rendered.files[name].split("\n", 1)[1].replace('"site.test"', '"*"')
            rendered.files[name] = versioned(body)  # two vhosts claim "*": Envoy refuses
            return model, rendered

        monkeypatch.setattr(orchestrate, "build", broken_build)
        failures: list[str] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                for host, expect in (("site.test", "a"), ("other.test", "b")):
                    try:
                        answer = backend_at(http4, host)
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
        assert "routes: Envoy refused the update" in message
        assert "http.http_ipv4.rds.http_ipv4.update_rejected went up" in message
        assert "last confirmed config is restored and Envoy confirmed it" in message
        assert spy.calls == []  # the check did not run
        assert failures == []
        assert read_files(str(live.config)) == before
        assert State.load(str(live.config)).pending is None
    finally:
        a.close()
        b.close()


def test_a_check_refusal_drops_the_journal(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    try:
        good = sites(live, "journal-good", http4, {"a": a, "b": b})
        apply(str(good), Options(envoy_check=""))
        state = State.load(str(live.config))
        history = [e["files"] for e in state.accepted]

        def refuse(*_: Any, **__: Any) -> None:
            raise EnvoyRefused("Envoy refused the rendered files: a stand-in refusal")

        monkeypatch.setattr(envoycheck, "check_with_envoy", refuse)
        other = sites(live, "journal-bad", http4, {"a": b, "b": a})  # clusters change
        before = read_files(str(live.config))
        with pytest.raises(EnvoyRefused, match="stand-in refusal"):
            apply(str(other), Options())
        after = State.load(str(live.config))
        assert after.pending is None
        assert [e["files"] for e in after.accepted] == history
        assert read_files(str(live.config)) == before
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- admin reads


def test_apply_stats_tell_what_the_full_filter_tells(live: Live) -> None:
    """Every stat apply looks at has the same value in the cheap reads as in a full
    filtered /stats (a stat missing from `usedonly` is 0 there)."""
    admin = admin_of(live.envoy)
    full = admin.stats()
    cheap = admin.apply_stats()
    versions = admin.versions()
    assert versions and all(k.endswith(".version_text") for k in versions)
    for name, value in full.items():
        if name.endswith(".version_text") or (value.isdigit() and name in cheap):
            assert cheap[name] == value, name
        elif value.isdigit():
            assert int(value) == 0, f"{name} is {value} but missing from the usedonly read"
    assert any(k.startswith("listener_manager.") for k in cheap)


def test_uptime_comes_from_server_info(live: Live) -> None:
    """Envoy's own count, live (the server.uptime stat only moves at each stats flush,
    every 5 s, so it lags)."""
    admin = admin_of(live.envoy)
    first = admin.uptime()
    time.sleep(1.2)
    second = admin.uptime()
    assert 1.0 <= second - first <= 3.0
    assert float(admin.stats(r"^server\.uptime$")["server.uptime"]) <= second


# --------------------------------------------------------------------------- status lines


def test_a_long_wait_for_envoy_says_what_it_waits_for(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    pid = live.envoy.pid
    try:
        first = sites(live, "status-1", http4, {"a": a, "b": b})
        quick: list[str] = []
        apply(str(first), Options(envoy_check=""), status=quick.append)
        assert quick == []  # Envoy answered at once: nothing to say
        second = live.inventory(
            "status-2",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"a": a.endpoint, "b": b.endpoint},
            http=[
                {"domains": ["site.test"], "routes": [{"prefix": "/", "upstream": "b"}]},
                {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "a"}]},
            ],
        )
        said: list[tuple[float, str]] = []
        started = time.monotonic()

        def freeze() -> None:
            # Envoy stops right when apply writes the route file (its stats are read before).
            os.kill(pid, signal.SIGSTOP)
            time.sleep(2.5)
            os.kill(pid, signal.SIGCONT)

        from xdsgen.live import transition as transition_module

        real_replace = transition_module.replace_file

        def replace_then_freeze(target: str, text: str, *rest: Any) -> None:
            real_replace(target, text, *rest)
            if target.endswith("rds_http_ipv4.yaml"):
                threading.Thread(target=freeze, daemon=True).start()

        monkeypatch.setattr(transition_module, "replace_file", replace_then_freeze)
        try:
            result = apply(
                str(second),
                Options(envoy_check=""),
                status=lambda line: said.append((time.monotonic() - started, line)),
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        assert result.confirmed
        assert [line for _, line in said] == ["waiting for Envoy to confirm rds_http_ipv4…"]
        assert said[0][0] >= 1.0
        assert backend_at(http4, "site.test") == "b"
    finally:
        os.kill(pid, signal.SIGCONT)
        a.close()
        b.close()


def test_announced_says_its_line_only_after_a_second() -> None:
    from xdsgen.live.progress import announced, quiet

    said: list[str] = []
    with announced(said.append, "short"):
        time.sleep(0.05)
    with announced(said.append, "long"):
        time.sleep(1.3)
    with announced(quiet, "nobody listens"):
        pass
    assert said == ["long"]


def test_a_long_lived_process_keeps_only_two_configs_parsed(live: Live) -> None:
    """`apply --watch` applies again and again in one process: only the files on disk and
    the ones just rendered stay parsed (at 10 000 vhosts one route file is ~25 MB)."""
    from xdsgen import parsed
    from xdsgen.live import digests

    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    try:
        before = set(read_files(str(live.config)).values())
        for i in range(12):
            inventory = live.inventory(
                f"retain-{i}",
                listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
                upstreams={"a": a.endpoint, "b": b.endpoint},
                http=[
                    {"domains": [f"v{i}.test"], "routes": [{"prefix": "/", "upstream": "a"}]},
                    {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "b"}]},
                ],
            )
            apply(str(inventory), Options(envoy_check=""))
            on_disk = set(read_files(str(live.config)).values())
            # What the apply found on disk, and what it wrote: nothing older.
            assert set(parsed._CACHE) <= before | on_disk
            assert set(digests._MEMO) <= before | on_disk
            before = on_disk
        assert backend_at(http4, "v11.test") == "a"
    finally:
        a.close()
        b.close()


def test_polling_follows_what_a_read_costs_envoy_not_a_read_that_waited() -> None:
    from xdsgen.live import confirm

    poll = confirm.Poll()
    assert poll.interval == confirm.POLL_MIN
    now = time.monotonic()
    poll.timed(now - 2.0)  # answered after a 2 s load: not what a read costs
    assert poll.interval == confirm.POLL_MAX
    poll.timed(time.monotonic() - 0.005)  # a 5 ms read (10 000 vhosts)
    assert abs(poll.interval - confirm.POLL_FACTOR * 0.005) < 0.003
    poll.timed(time.monotonic() - 1.0)  # another long wait: the cost stays the quickest
    assert poll.interval < 0.03
    poll.timed(time.monotonic())  # a home router's Envoy answers at once
    assert poll.interval == confirm.POLL_MIN
