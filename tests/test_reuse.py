"""Reusing the last full render (xdsgen/reuse.py): whenever a render is reused, it is exactly
the full render of the same inventory (files byte for byte, the model with its warnings
and their lines, the parsed files and route digests apply's plan reads); whenever reuse
is not safe, the full render runs.

The threshold is lowered (XDSGEN_REUSE_FROM=1) so that the golden cases, every feature the
inventory has, go through it; the kept render is written in the foreground."""

from __future__ import annotations

import copy
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from xdsgen import parsed, pipeline, reuse
from xdsgen.errors import InventoryError, format_path, parse_path
from xdsgen.live import digests
from xdsgen.live.digests import RouteDigest
from xdsgen.yamlsubset import parse

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "tests" / "cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "inventory.yaml").is_file())
sys.path.insert(0, str(REPO / "benchmarks"))
import synth  # noqa: E402


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDSGEN_CACHE_DIR", str(folder))
    monkeypatch.setenv("XDSGEN_REUSE_FROM", "1")
    monkeypatch.setenv("XDSGEN_REUSE_FOREGROUND", "1")
    monkeypatch.delenv("XDSGEN_REUSE", raising=False)
    return folder


class Builds:
    """pipeline.build, counting the full builds (reuse does not build the model)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.monkeypatch = monkeypatch
        self.full = 0
        original = pipeline._model

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.full += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(pipeline, "_model", counted)

    def build(self, path: Path, **options: Any) -> tuple[Any, Any, bool]:
        """(model, rendered, reused)."""
        before = self.full
        parsed.retain([])
        digests.retain(set())
        model, rendered = pipeline.build(str(path), documents=True, **options)
        return model, rendered, self.full == before

    def reference(self, path: Path, **options: Any) -> tuple[Any, Any]:
        """The full render, nothing kept or reused."""
        with self.monkeypatch.context() as m:
            m.setenv("XDSGEN_REUSE", "off")
            parsed.retain([])
            return pipeline.build(str(path), **options)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Builds:
    return Builds(monkeypatch)


def assert_same_as_full(builds: Builds, path: Path, **options: Any) -> bool:
    """Build `path` (reusing when possible) and compare with the full render; returns
    whether it was reused."""
    model, rendered, reused = builds.build(path, **options)
    if reused:  # what the reuse left in the caches, before the reference parses anything
        for name, text in rendered.files.items():
            assert parsed.is_parsed(text), name
            assert parsed.document(text) == parse(text), name
            if name.startswith("rds_"):
                seeded = digests._MEMO.get(text)
                assert seeded is not None, name
                actual = {str(r["name"]): RouteDigest.of(r) for r in parse(text)["resources"]}
                assert {k: (d.whole, d.vhosts, d.bare) for k, d in seeded.items()} == {
                    k: (d.whole, d.vhosts, d.bare) for k, d in actual.items()
                }, name
    full_model, full_rendered = builds.reference(path, **options)
    assert rendered.files == full_rendered.files
    assert model == full_model
    assert model.warnings == full_model.warnings  # lines and columns included
    return reused


# --------------------------------------------------------------------------- edits


def route_edit(data: dict[str, Any], rng: random.Random) -> Optional[str]:
    """Change one key of one route of one vhost, within what reuse takes (ROUTE_KEYS)."""
    vhosts = [v for v in data.get("http") or [] if isinstance(v, dict) and v.get("routes")]
    upstreams = sorted(data.get("upstreams") or {})
    if not vhosts:
        return None
    vhost = rng.choice(vhosts)
    route = rng.choice(vhost["routes"])
    kinds = ["timeout", "websocket", "retries", "match"]
    if route.get("upstream") is not None and len(upstreams) > 1:
        kinds.append("upstream")
    if "prefix" in route:
        kinds.append("rewrite")
    kind = rng.choice(kinds)
    if kind == "upstream":
        route["upstream"] = rng.choice([u for u in upstreams if u != route["upstream"]])
    elif kind == "timeout":
        route["timeout"] = f"{rng.randint(2, 99)}s"
    elif kind == "websocket":
        route["websocket"] = not route.get("websocket", False)
    elif kind == "retries":
        route["retries"] = rng.randint(1, 3)
    elif kind == "rewrite":
        route["rewrite"] = "/elsewhere/"
    else:
        key = "prefix" if "prefix" in route else "path"
        route[key] = route[key].rstrip("/") + "/edited" + ("/" if key == "prefix" else "")
    return kind


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def case_copy(name: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path / name
    shutil.copytree(CASES / name, folder, ignore=shutil.ignore_patterns("expected"))
    path = folder / "inventory.yaml"
    return path, yaml.safe_load(path.read_text())


@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_golden_case_reused_or_not_is_its_full_render(
    name: str, tmp_path: Path, builds: Builds
) -> None:
    path, data = case_copy(name, tmp_path)
    assert assert_same_as_full(builds, path) is False  # nothing kept yet: the full render
    rng = random.Random(name)
    for _ in range(3):
        edited = copy.deepcopy(data)
        if route_edit(edited, rng) is None:
            return
        write(path, edited)
        assert_same_as_full(builds, path)


def synthetic(tmp_path: Path, n: int = 120) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "inventory.yaml"
    path.write_text(synth.generate(n, config_dir=str(tmp_path / "config")))
    return path, yaml.safe_load(path.read_text())


def test_route_edits_of_a_big_inventory_are_reused_and_exact(
    tmp_path: Path, builds: Builds
) -> None:
    path, data = synthetic(tmp_path)
    builds.build(path)  # the full render, kept
    rng = random.Random(7)
    kinds = set()
    for _ in range(12):
        edited = copy.deepcopy(data)
        for _ in range(rng.randint(1, 3)):
            kind = route_edit(edited, rng)
            assert kind is not None
            kinds.add(kind)
        write(path, edited)
        assert assert_same_as_full(builds, path), "a route edit was not reused"
    assert kinds >= {"upstream", "timeout", "websocket", "match"}


def test_an_unchanged_inventory_is_the_kept_render(tmp_path: Path, builds: Builds) -> None:
    path, _ = synthetic(tmp_path)
    builds.build(path)
    assert assert_same_as_full(builds, path)


def test_moved_lines_move_the_warnings(tmp_path: Path, builds: Builds) -> None:
    """Warnings of unchanged parts are located in the new text (a longer route above them
    moves them down)."""
    path, data = synthetic(tmp_path, 60)
    data["upstreams"]["spare"] = "127.0.0.9:9"  # unused: a warning, after the vhosts
    write(path, data)
    model, _, _ = builds.build(path)
    assert any("spare" in w.path for w in model.warnings)
    data["http"][3]["routes"].insert(0, {"path": "/new", "upstream": "up1"})
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    path.write_text(text)
    assert assert_same_as_full(builds, path)


# --------------------------------------------------------------------------- refusals


def refused(builds: Builds, path: Path, data: dict[str, Any]) -> None:
    write(path, data)
    assert assert_same_as_full(builds, path) is False


def test_a_change_beyond_the_routes_renders_in_full(tmp_path: Path, builds: Builds) -> None:
    path, data = synthetic(tmp_path)
    builds.build(path)
    changes = [
        lambda d: d["http"][4]["domains"].append("more.example.com"),  # domains: across vhosts
        lambda d: d["http"][4].update(redirect_to_https=True),
        lambda d: d["http"][4]["routes"][0].update(allow=["127.0.0.0/8"]),  # access
        lambda d: d["upstreams"].update(up3="127.0.0.3:9999"),  # the context
        lambda d: d["http"].append(
            {"domains": ["new.example.com"], "routes": [{"prefix": "/", "upstream": "up1"}]}
        ),
    ]
    for change in changes:
        edited = copy.deepcopy(data)
        change(edited)
        refused(builds, path, edited)
        write(path, data)
        builds.build(path)  # the original kept again


def test_more_than_max_changed_vhosts_render_in_full(tmp_path: Path, builds: Builds) -> None:
    path, data = synthetic(tmp_path)
    builds.build(path)
    for vhost in data["http"][: reuse.MAX_CHANGED + 1]:
        vhost["routes"][0]["timeout"] = "77s"
    refused(builds, path, data)


def test_an_upstream_no_longer_used_renders_in_full(tmp_path: Path, builds: Builds) -> None:
    """Its warning is about another part of the inventory: the full render says it."""
    path, data = synthetic(tmp_path, 12)
    data["upstreams"]["only"] = "127.0.0.9:9"
    data["http"][2]["routes"][0]["upstream"] = "only"
    write(path, data)
    builds.build(path)
    data["http"][2]["routes"][0]["upstream"] = "up1"
    refused(builds, path, data)
    model, _, _ = builds.build(path)
    assert any(w.path == "upstreams.only" for w in model.warnings)


def test_an_edited_error_page_renders_in_full(tmp_path: Path, builds: Builds) -> None:
    path, data = case_copy("error-pages", tmp_path)
    builds.build(path)
    page = path.parent / "down.html"
    page.write_text(page.read_text() + "<p>edited</p>\n")
    os.utime(page, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    write(path, data)
    assert assert_same_as_full(builds, path) is False


def tamper(kept: Path, name: str, old: str, new: str) -> None:
    import marshal

    files = marshal.loads((kept / "files.marshal").read_bytes())
    assert old in files[name]
    files[name] = files[name].replace(old, new, 1)
    (kept / "files.marshal").write_bytes(marshal.dumps(files))


@pytest.mark.parametrize(
    "old, new",
    [
        # the changed vhost's own part: what the kept render made of it is not what it
        # gives alone (as when another vhost shaped it)
        ('cluster: "up3"', 'cluster: "up9"'),
        # the route file's part outside the vhosts
        ("ignore_port_in_host_matching: true", "ignore_port_in_host_matching: false"),
    ],
)
def test_a_vhost_that_alone_is_not_what_was_kept_is_not_reused(
    tmp_path: Path, builds: Builds, cache: Path, old: str, new: str
) -> None:
    path, data = synthetic(tmp_path, 40)
    builds.build(path)
    (kept,) = (cache / "renders").iterdir()
    tamper(kept, "rds_http_ipv4.yaml", old, new)
    assert data["http"][3]["routes"][0]["upstream"] == "up3"
    data["http"][3]["routes"][1]["timeout"] = "9s"
    refused(builds, path, data)


def test_an_edit_with_an_error_reports_what_the_full_render_reports(
    tmp_path: Path, builds: Builds
) -> None:
    path, data = synthetic(tmp_path)
    builds.build(path)
    data["http"][6]["routes"][1]["upstream"] = "nowhere"
    write(path, data)
    with pytest.raises(InventoryError) as reused_error:
        builds.build(path)
    with pytest.raises(InventoryError) as full_error:
        builds.reference(path)
    assert reused_error.value.problems == full_error.value.problems
    assert "nowhere" in str(reused_error.value.problems)


def test_a_damaged_cache_renders_in_full(tmp_path: Path, builds: Builds, cache: Path) -> None:
    path, data = synthetic(tmp_path)
    builds.build(path)
    (kept,) = (cache / "renders").iterdir()
    data["http"][1]["routes"][0]["timeout"] = "5s"
    write(path, data)
    for name in ("meta.pickle", "model.pickle", "files.marshal", "vhosts.pickle"):
        saved = (kept / name).read_bytes()
        (kept / name).write_bytes(saved[: len(saved) // 2])
        assert assert_same_as_full(builds, path) is False
        shutil.rmtree(cache / "renders")
        builds.build(path)
        (kept,) = (cache / "renders").iterdir()


def test_a_failure_inside_reuse_renders_in_full(
    tmp_path: Path, builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xdsgen import reuse_edits

    path, data = synthetic(tmp_path)
    builds.build(path)

    def broken(*args: Any) -> bool:
        raise KeyError("something reuse did not expect")

    monkeypatch.setattr(reuse_edits.Edits, "rebuild", broken)
    data["http"][1]["routes"][0]["timeout"] = "5s"
    refused(builds, path, data)


def test_a_new_xdsgen_is_a_new_context(
    tmp_path: Path, builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data = synthetic(tmp_path)
    builds.build(path)
    monkeypatch.setitem(reuse._CODE, "sig", b"another xdsgen")
    data["http"][1]["routes"][0]["timeout"] = "5s"
    refused(builds, path, data)


def test_small_inventories_and_reuse_off_keep_nothing(
    tmp_path: Path, builds: Builds, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = synthetic(tmp_path, 20)
    monkeypatch.setenv("XDSGEN_REUSE_FROM", "21")
    builds.build(path)
    monkeypatch.setenv("XDSGEN_REUSE_FROM", "1")
    monkeypatch.setenv("XDSGEN_REUSE", "off")
    builds.build(path)
    assert not (cache / "renders").exists() or not any((cache / "renders").iterdir())


def test_only_the_most_recently_used_renders_are_kept(
    tmp_path: Path, builds: Builds, cache: Path
) -> None:
    path, _ = synthetic(tmp_path)
    for n in range(reuse._KEEP_RENDERS + 2):
        builds.build(path, config_dir=str(tmp_path / f"out{n}"))
        time.sleep(0.01)
    assert len(list((cache / "renders").iterdir())) == reuse._KEEP_RENDERS


# --------------------------------------------------------------------------- parts


def test_kept_vhosts_behave_as_the_tuple_they_stand_for() -> None:
    from xdsgen.model.ir import VirtualHost
    from xdsgen.reuse_edits import KeptVhosts

    a, b, c = (VirtualHost(f"vhost{i}_x", ("x",), (), index=i % 2) for i in range(3))
    loads: list[int] = []

    def kept() -> dict[str, Any]:
        loads.append(1)
        return {"http_ipv4": (a, b)}

    lazy = KeptVhosts(kept, "http_ipv4", {1: c})
    assert loads == []  # nothing read until used
    assert lazy == (a, c) and (a, c) == lazy and len(lazy) == 2 and list(lazy) == [a, c]
    assert lazy[1] is c and hash(lazy) == hash((a, c)) and loads == [1]
    again = pickle.loads(pickle.dumps(lazy))
    assert type(again) is tuple and again == (a, c)


def test_key_paths_read_back() -> None:
    for path in [
        ("http", 12, "routes", 0, "upstream"),
        ("upstreams", "nas.lan"),
        ("upstreams", 'a"b\\c\u202e'),
        ("listen", "ipv4", "https"),
        (),
    ]:
        assert parse_path(format_path(path)) == path
    assert parse_path("http[1]routes") is None and parse_path("a..b") is None


# --------------------------------------------------------------------------- the command


def test_render_command_keeps_in_the_background_then_reuses(tmp_path: Path, cache: Path) -> None:
    """`xdsgen render` as cron runs it: the kept render is written by a detached process
    (the command does not wait for it); the next render of a route edit reuses it and
    writes exactly what a full render writes."""
    path, data = synthetic(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "XDSGEN_REUSE_FOREGROUND"}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "xdsgen", "render", str(path), "-o", str(out)]
    subprocess.run(command, env=env, check=True, capture_output=True)
    renders = cache / "renders"
    deadline = time.monotonic() + 60
    while not (renders.is_dir() and any((d / "meta.pickle").exists() for d in renders.iterdir())):
        assert time.monotonic() < deadline, "the detached process kept nothing"
        time.sleep(0.05)
    (kept,) = renders.iterdir()
    os.utime(kept, ns=(0, 0))
    data["http"][2]["routes"][0]["upstream"] = "up5"
    write(path, data)
    subprocess.run(command, env=env, check=True, capture_output=True)
    assert kept.stat().st_mtime_ns > 0  # reused (touched when used)
    reused = {p.name: p.read_text() for p in out.iterdir()}
    shutil.rmtree(out)
    subprocess.run(command, env={**env, "XDSGEN_REUSE": "off"}, check=True, capture_output=True)
    assert reused == {p.name: p.read_text() for p in out.iterdir()}


# --------------------------------------------------------------------------- with Envoy


@pytest.mark.envoy
def test_an_apply_that_reuses_the_kept_render_is_confirmed_and_served(
    tmp_path: Path, builds: Builds
) -> None:
    from harness import HttpBackend, free_ports, http_get
    from test_apply_helpers import Live, start_live

    from xdsgen.live.orchestrate import Options, apply

    def backend_at(port: int, host: str) -> str:
        status, _, body = http_get("127.0.0.1", port, "/", {"Host": host}, timeout=3)
        return str(json.loads(body)["backend"]) if status == 200 else f"status {status}"

    a, b = HttpBackend("a"), HttpBackend("b")
    admin, http4 = free_ports(2)
    try:
        with start_live(tmp_path, admin, a.endpoint, http4) as envoy:
            live = Live(envoy, tmp_path, tmp_path / "config")
            vhosts = [
                {"domains": [f"site{i}.test"], "routes": [{"prefix": "/", "upstream": "a"}]}
                for i in range(30)
            ]
            vhosts[0]["routes"][0]["upstream"] = "b"

            def inventory() -> Path:
                return live.inventory(
                    "reuse",
                    listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
                    upstreams={"a": a.endpoint, "b": b.endpoint},
                    http=vhosts,
                )

            started = builds.full  # Envoy's seed config
            apply(str(inventory()), Options())
            assert builds.full == started + 1 and backend_at(http4, "site7.test") == "a"
            vhosts[7]["routes"][0]["upstream"] = "b"
            result = apply(str(inventory()), Options())
            assert builds.full == started + 1, "the apply did not reuse the kept render"
            assert [(c.kind, c.name) for c in result.plan.changes] == [("route", "http_ipv4")]
            assert backend_at(http4, "site7.test") == "b"
            assert backend_at(http4, "site8.test") == "a"
            on_disk = (tmp_path / "config" / "rds_http_ipv4.yaml").read_text()
            _, full = builds.reference(inventory(), check_files=True)
            assert on_disk == full.files["rds_http_ipv4.yaml"]
    finally:
        a.close()
        b.close()
