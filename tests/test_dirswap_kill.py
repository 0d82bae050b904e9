"""SIGKILL of `xdsgen apply` in directory-swap mode: at each step of a swap (after the
..<timestamp> directory is written, after the new names' links, after ..data_tmp, after
the rename of ..data, after the dropped names' links are gone) and at random moments.
Envoy keeps serving throughout, runs exactly what the directory holds, and the next apply
completes the change and leaves nothing behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import HttpBackend, TcpEcho, free_ports
from test_apply_envoy import Probe, _backend_of
from test_apply_helpers import Live, fast_backend, start_live
from test_apply_kill import check_consistent, envoy_runs, rejections
from test_apply_kill import (
    test_sigkill_at_random_moments_leaves_a_config_envoy_runs as random_kills,
)
from test_dirswap_envoy import assert_envoy_runs, assert_swap_layout

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

# Runs xdsgen with the swap's system calls watched: SIGKILL itself at the n-th time the
# named moment comes (argv: moment, n, then xdsgen's own arguments).
KILLER = r"""
import os, runpy, shutil, signal, sys
import xdsgen.live.swap as swap

moment, nth = sys.argv[1], int(sys.argv[2])
seen = {"count": 0, "swapped": False}

def at(name):
    if name == moment:
        seen["count"] += 1
        if seen["count"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

write_stamp, symlink, rename, rmtree = swap._write_stamp_dir, os.symlink, os.rename, shutil.rmtree

def stamp_written(*args):
    name = write_stamp(*args)
    at("stamp")
    return name

def watched_symlink(src, dst, *args, **kwargs):
    if str(dst).endswith("..data_tmp"):
        at("links")
    symlink(src, dst, *args, **kwargs)
    if str(dst).endswith("..data_tmp"):
        at("data_tmp")

def watched_rename(src, dst, *args, **kwargs):
    rename(src, dst, *args, **kwargs)
    if str(dst).endswith("/..data"):
        seen["swapped"] = True
        at("renamed")

def watched_rmtree(path, *args, **kwargs):
    if seen["swapped"] and swap.is_stamp_dir(os.path.basename(str(path))):
        seen["swapped"] = False
        at("unlinked")
    rmtree(path, *args, **kwargs)

swap._write_stamp_dir = stamp_written
os.symlink, os.rename, shutil.rmtree = watched_symlink, watched_rename, watched_rmtree
sys.argv = ["xdsgen", *sys.argv[3:]]
runpy.run_module("xdsgen", run_name="__main__")
"""

MOMENTS = [
    ("stamp", 1),
    ("renamed", 1),
    *((moment, 2) for moment in ("stamp", "links", "data_tmp", "renamed", "unlinked")),
    ("renamed", 3),
    ("unlinked", 3),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("dirkill")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port, layout="directory") as envoy:
        yield Live(envoy, tmp, tmp / "config", admin, layout="directory")
    seed.close()


def _killed_apply(inventory: Path, moment: str, nth: int) -> None:
    process = subprocess.run(
        [sys.executable, "-c", KILLER, moment, str(nth), "apply", str(inventory)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == -signal.SIGKILL, (moment, nth, process.stderr)


def test_sigkill_at_each_step_of_a_swap(live: Live) -> None:
    """Between two configs that take three swaps each way (an upstream renamed, a listener
    and its route file added or removed, a TCP map moved): a kill at each step of the
    first, second and third swap. The stable route never fails."""
    a, b, t = fast_backend("a"), fast_backend("b"), TcpEcho("t")
    http4, http6, tcp1, tcp2 = free_ports(4)
    first = live.inventory(
        "steps-x",
        listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
        upstreams={"a": a.endpoint, "t": t.endpoint},
        http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "a"}]}],
        tcp=[{"port": tcp1, "upstream": "t"}],
    )
    second = live.inventory(
        "steps-y",
        listen={
            "ipv4": {"address": "127.0.0.1", "http": http4},
            "ipv6": {"address": "::1", "http": http6},
        },
        upstreams={"alpha": a.endpoint, "b": b.endpoint, "tee": t.endpoint},
        http=[
            {"domains": ["b.test"], "routes": [{"prefix": "/", "upstream": "b"}]},
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "alpha"}]},
        ],
        tcp=[{"port": tcp2, "upstream": "tee", "families": ["ipv4"]}],
    )
    from xdsgen.live.orchestrate import Options, apply

    assert apply(str(first), Options(timeout=10)).confirmed
    base = rejections(live)
    probe = Probe("stable /", lambda: _backend_of(http4, "any.test", "/"), lambda r: r == "a")
    probe.thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    try:
        targets = [second, first]
        for index, (moment, nth) in enumerate(MOMENTS):
            target = targets[index % 2]
            _killed_apply(target, moment, nth)
            files = check_consistent(live.config)
            envoy_runs(live, files, base)
            result = subprocess.run(
                [sys.executable, "-m", "xdsgen", "apply", str(target), "-v"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, (moment, nth, result.stderr)
            # The journal told it: an apply cut short, or (killed after its last swap) one
            # Envoy confirmed that was not recorded.
            assert "did not finish" in result.stderr or "recorded now" in result.stderr
            files = assert_swap_layout(live.config)
            assert_envoy_runs(live, files)
            # Confirmed applies keep what draining listeners read: Envoy never missed a file.
            assert rejections(live) == base
        ended = time.monotonic()
    finally:
        probe.stop.set()
        probe.thread.join(10)
        for backend in (a, b, t):
            backend.close()
    failures = probe.failures_within(started, ended)
    assert probe.successes_within(started, ended) >= 50
    assert failures == [], failures[:3]


def test_sigkill_at_random_moments(live: Live, tmp_path: Path) -> None:
    """Rename mode's random-kill proof, in directory mode (half confirmed, half --no-confirm
    with steps spread over a second)."""
    random_kills(live, tmp_path)
    assert_swap_layout(live.config)
