"""Directory-swap mode (envoy.layout: directory) against one real Envoy: the live-change
proofs of rename mode (load, refusal, no-op, rollback, your own files), run again on a
directory that apply changes by swapping `..data` the way kubelet does, plus what only this
mode has: every file reloaded by one swap, and the generations apply goes through."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import HttpBackend, free_ports
from test_apply_envoy import test_applies_under_traffic_fail_no_request as traffic_proof
from test_apply_envoy import test_noop_apply_touches_nothing as noop_proof
from test_apply_envoy import test_refused_listener_restores_the_previous_files as refusal_proof
from test_apply_envoy import test_rollback_command_returns_to_the_previous_config as rollback_proof
from test_apply_helpers import Live, start_live
from test_reliability import test_files_xdsgen_did_not_write_are_never_removed as own_files_proof

from xdsgen.conventions import DATA_LINK, file_version
from xdsgen.live.confirm import subscriptions
from xdsgen.live.state import State
from xdsgen.live.swap import data_target, is_our_link, is_stamp_dir
from xdsgen.live.transition import read_files

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("dirswap")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port, layout="directory") as envoy:
        yield Live(envoy, tmp, tmp / "config", admin, layout="directory")
    seed.close()


def assert_swap_layout(config: Path) -> dict[str, str]:
    """The directory holds one generation: ..data -> the one ..<timestamp> directory, each
    file of ours a link into ..data, nothing left over from a swap. Returns the files."""
    stamp = data_target(str(config))
    assert stamp is not None and is_stamp_dir(stamp), stamp
    names = os.listdir(config)
    assert [n for n in names if is_stamp_dir(n)] == [stamp]
    assert "..data_tmp" not in names
    files = read_files(str(config))
    assert files and all(is_our_link(str(config), n) for n in files), names
    assert sorted(os.listdir(config / stamp)) == sorted(files)
    for name in files:
        assert (config / stamp / name).stat().st_mode & 0o777 == 0o644
    assert (config / stamp).stat().st_mode & 0o777 == 0o755
    return files


def assert_envoy_runs(live: Live, files: dict[str, str]) -> None:
    """No update missed: every subscription reports the version of its file on disk."""
    stats = live.envoy.stats()
    expected = {
        "cluster_manager.cds": file_version(files["cds.yaml"]),
        "listener_manager.lds": file_version(files["lds.yaml"]),
    }
    for name, prefix in subscriptions(files["lds.yaml"]).items():
        expected[prefix] = file_version(files[name])
    got = {p: stats.get(f"{p}.version_text", "").strip('"') for p in expected}
    assert got == expected


# --------------------------------------------------------------------------- rename mode's proofs


def test_applies_under_traffic_fail_no_request(live: Live) -> None:
    """Adds, changes, renames and removals of upstreams, vhosts and listeners while
    requests flow: zero failed requests, every apply confirmed, as in rename mode."""
    traffic_proof(live)
    files = assert_swap_layout(live.config)
    assert_envoy_runs(live, files)
    state = State.load(str(live.config))
    assert state.last_confirmed() is not None
    assert state.last_confirmed()["files"] == files  # the state is what the directory holds


def test_refused_listener_restores_the_previous_files(live: Live) -> None:
    refusal_proof(live)
    assert_envoy_runs(live, assert_swap_layout(live.config))


def test_noop_apply_touches_nothing(live: Live) -> None:
    before = data_target(str(live.config))
    noop_proof(live)
    assert data_target(str(live.config)) != before  # the first apply swapped once
    assert_swap_layout(live.config)


def test_rollback_command_returns_to_the_previous_config(live: Live) -> None:
    rollback_proof(live)
    assert_envoy_runs(live, assert_swap_layout(live.config))


def test_files_xdsgen_did_not_write_are_never_removed(live: Live) -> None:
    own_files_proof(live)
    assert_swap_layout(live.config)
    assert DATA_LINK in os.listdir(live.config)
