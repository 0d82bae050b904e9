"""The speed work keeps behaviour: caches are safe, shortcuts give the same results.

(The strict parser and the fast schema check have their own differential tests:
test_yamlsubset.py, test_schemacheck.py. The timings themselves are benchmarks/run.py's.)
"""

from __future__ import annotations

import gc
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness import EXAMPLE, REPO

from xdsgen import cache, safeyaml, speed
from xdsgen import parsed as plan

# --------------------------------------------------------------------------- template cache


def _render_example(env: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "from xdsgen.pipeline import load_model, render\n"
        f"files = render(load_model({str(EXAMPLE)!r}, config_dir={str(out)!r})).files\n"
        "print(sorted(files))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(REPO),
        timeout=120,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDSGEN_")}
    env.update(extra)
    return env


def test_compiled_templates_are_cached_and_reused(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    env = _env(XDSGEN_CACHE_DIR=str(directory))
    first = _render_example(env, tmp_path / "out")
    assert first.returncode == 0, first.stderr
    files = sorted(directory.iterdir())
    assert len(files) >= 4 and all(f.name.startswith("jinja-") for f in files)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = _render_example(env, tmp_path / "out")
    assert again.returncode == 0 and again.stdout == first.stdout
    assert [
        f.stat().st_mtime_ns for f in sorted(directory.iterdir())
    ] == mtimes  # read, not rewritten


def test_the_cache_gives_the_same_output_as_no_cache(tmp_path: Path) -> None:
    from xdsgen import render as render_mod
    from xdsgen.pipeline import load_model

    model = load_model(str(EXAMPLE), config_dir=str(tmp_path))
    cached_env = _env(XDSGEN_CACHE_DIR=str(tmp_path / "c"))
    code = (
        "import json\nfrom xdsgen.pipeline import load_model, render\n"
        f"model = load_model({str(EXAMPLE)!r}, config_dir={str(tmp_path)!r})\n"
        "print(json.dumps(render(model).files))\n"
    )
    outputs = []
    for _ in range(2):  # the second run loads the templates from the cache
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=cached_env,
            capture_output=True,
            text=True,
            cwd=str(REPO),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    import json

    assert json.loads(outputs[1]) == json.loads(outputs[0]) == render_mod.render(model).files


@pytest.mark.parametrize("setting", ["off", "", "0"])
def test_the_cache_can_be_turned_off(setting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDSGEN_CACHE_DIR", setting)
    assert cache.cache_dir() is None
    assert cache.jinja_bytecode_cache() is None


def test_an_unsafe_or_unusable_cache_directory_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant code there
    monkeypatch.setenv("XDSGEN_CACHE_DIR", str(shared))
    assert cache.cache_dir() is None
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDSGEN_CACHE_DIR", str(blocker / "sub"))
    assert cache.cache_dir() is None
    monkeypatch.delenv("XDSGEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == str(tmp_path / "xdg" / "xdsgen")


def test_render_works_when_the_cache_cannot_be_written(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir(mode=0o700)
    directory.chmod(0o500)  # readable, not writable (root ignores this: then it just works)
    try:
        proc = _render_example(_env(XDSGEN_CACHE_DIR=str(directory)), tmp_path / "out")
    finally:
        directory.chmod(0o700)
    assert proc.returncode == 0, proc.stderr


def test_a_corrupt_cache_file_means_compiling_again(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    env = _env(XDSGEN_CACHE_DIR=str(directory))
    assert _render_example(env, tmp_path / "out").returncode == 0
    for path in directory.iterdir():
        path.write_bytes(path.read_bytes()[:40])  # truncated: marshal cannot load it
    proc = _render_example(env, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr


def test_a_changed_template_is_compiled_again(tmp_path: Path) -> None:
    """The cache is keyed by the template source: an edit is never served stale."""
    import shutil

    package = tmp_path / "pkg" / "xdsgen"
    shutil.copytree(REPO / "xdsgen", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "templates", package / "templates")
    shutil.copytree(REPO / "schemas", package / "schemas")
    env = _env(XDSGEN_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path / "pkg"))
    code = (
        "from xdsgen.pipeline import load_model, render\n"
        f"print(render(load_model({str(EXAMPLE)!r})).files['sds_router.yaml'])\n"
    )

    def run() -> str:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            cwd=str(tmp_path),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    before = run()
    template = package / "templates" / "sds.yaml.j2"
    template.write_text(template.read_text() + "# edited\n")
    after = run()
    assert "# edited" not in before and "# edited" in after


# --------------------------------------------------------------------------- GC pause


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with speed.gc_paused():
        assert not gc.isenabled()
        with speed.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    with pytest.raises(ValueError), speed.gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with speed.gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


# --------------------------------------------------------------------------- YAML shortcuts


def _corpus() -> list[Path]:
    return (
        sorted(REPO.glob("tests/bad/*.yaml"))
        + sorted(REPO.glob("tests/cases/*/inventory.yaml"))
        + [EXAMPLE]
    )


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_the_fast_resolver_composes_exactly_like_pyyaml(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", errors="replace")
    fast = safeyaml._loader_class()
    assert fast is not getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def composed(loader: type) -> str:
        try:
            return yaml.serialize(yaml.compose(text, Loader=loader))
        except yaml.YAMLError as exc:
            return f"{type(exc).__name__}: {exc}"

    assert composed(fast) == composed(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def test_plan_reads_hand_edited_files_with_pyyaml() -> None:
    hand_written = "resources:\n- {name: a, type: STATIC}  # flow style and a comment\n"
    assert plan.load_yaml(hand_written) == yaml.safe_load(hand_written)
    generated = 'resources:\n- name: "a"\n  type: "STATIC"\n'
    assert plan.load_yaml(generated) == yaml.safe_load(generated)


# --------------------------------------------------------------------------- lock


def test_the_lock_writes_nothing_and_still_names_its_holder(tmp_path: Path) -> None:
    from xdsgen.live.lock import locked

    with locked(str(tmp_path), 1):
        pass
    lock_file = tmp_path / ".xdsgen" / "lock"
    before = lock_file.stat()
    with locked(str(tmp_path), 1):
        code = f"from xdsgen.live.lock import locked\nwith locked({str(tmp_path)!r}, 0.2): pass\n"
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), timeout=60
        )
        assert proc.returncode != 0
        assert f"(pid {os.getpid()}) holds the lock" in proc.stderr
    after = lock_file.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


# --------------------------------------------------------------------------- Envoy check


@pytest.mark.envoy
def test_one_process_validates_an_accepted_bootstrap_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import envoy_binary

    from xdsgen import envoycheck
    from xdsgen.pipeline import load_model, render

    envoy = envoy_binary()
    monkeypatch.setattr(envoycheck, "_ACCEPTED_BOOTSTRAPS", set())
    seen: list[str] = []
    original = envoycheck._validate

    def spy(envoy_path: str, config_path: str, what: str, *rest: object) -> None:
        seen.append(what)
        original(envoy_path, config_path, what, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(envoycheck, "_validate", spy)
    data = yaml.safe_load(EXAMPLE.read_text())
    inventory_path = tmp_path / "inv.yaml"
    for port in (15001, 15001, 15002):
        data["envoy"]["admin"] = f"127.0.0.1:{port}"
        inventory_path.write_text(yaml.safe_dump(data))
        model = load_model(str(inventory_path), config_dir=str(tmp_path / "config"))
        envoycheck.check_with_envoy(model, render(model), envoy, stand_ins=True)
    assert seen == [
        "the bootstrap",
        "the rendered files",  # first: both
        "the rendered files",  # same bootstrap: only the files
        "the bootstrap",
        "the rendered files",
    ]  # another admin port: both again
