"""SIGKILL at random moments of many applies: whatever moment the kill lands on, the
config directory holds files that parse, refer only to each other, and that Envoy runs
without a rejection; the next apply finishes the job and sweeps the temp files."""

from __future__ import annotations

import os
import posixpath
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Certs, HttpBackend, TcpEcho, free_ports
from test_apply_helpers import Live, start_live, wait_until

from xdsgen.conventions import file_version, is_config_file
from xdsgen.files import TEMP_PREFIX
from xdsgen.live.confirm import subscriptions
from xdsgen.live.swap import is_stamp_dir
from xdsgen.live.transition import read_files as read_config_files
from xdsgen.parsed import resources_of

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ITERATIONS = 14


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("kill")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port) as envoy:
        yield Live(envoy, tmp, tmp / "config", admin)
    seed.close()


def referenced_clusters(files: dict[str, str]) -> set[str]:
    used = set()
    for listener in resources_of(files.get("lds.yaml")) or []:
        for chain in listener.get("filter_chains") or []:
            for network_filter in chain.get("filters") or []:
                cluster = (network_filter.get("typed_config") or {}).get("cluster")
                if cluster:
                    used.add(cluster)
    for name, text in files.items():
        if name.startswith("rds_"):
            for rc in resources_of(text) or []:
                for vhost in rc.get("virtual_hosts") or []:
                    for route in vhost.get("routes") or []:
                        cluster = (route.get("route") or {}).get("cluster")
                        if cluster:
                            used.add(cluster)
    return used


def check_consistent(config: Path) -> dict[str, str]:
    """The files on disk parse and form one config: every file LDS names exists, every
    cluster a listener or route names is in CDS. Temp files are never a name Envoy reads."""
    for name in os.listdir(config):
        assert (
            name in (".xdsgen", "admin.sock")
            or is_config_file(name)
            or name.startswith(TEMP_PREFIX)
            or name in ("..data", "..data_tmp")  # directory mode (tests/test_dirswap_kill.py)
            or is_stamp_dir(name)
        ), name
    files = read_config_files(str(config))
    for name, text in files.items():
        doc = yaml.safe_load(text)
        assert isinstance(doc["resources"], list), name
        assert file_version(text), name
    lds = yaml.safe_load(files["lds.yaml"])
    for listener in lds["resources"]:
        for chain in listener.get("filter_chains") or []:
            text = yaml.safe_dump(chain)
            for line in text.splitlines():
                if "path: " in line and line.strip().startswith("path:"):
                    value = line.split("path:")[1].strip().strip("'\"")
                    if value == str(config):  # watched_directory (directory mode)
                        continue
                    assert posixpath.basename(value) in files, line
    clusters = {c["name"] for c in yaml.safe_load(files["cds.yaml"])["resources"]}
    assert referenced_clusters(files) <= clusters, (referenced_clusters(files), clusters)
    return files


def envoy_runs(live: Live, files: dict[str, str], rejected_before: dict[str, int]) -> None:
    """Envoy converges on exactly these files (the kill may have landed just after a
    rename that Envoy has not processed yet), with nothing warming and nothing rejected."""
    expected = {
        "cluster_manager.cds": file_version(files["cds.yaml"]),
        "listener_manager.lds": file_version(files["lds.yaml"]),
    }
    for name, prefix in subscriptions(files["lds.yaml"]).items():
        expected[prefix] = file_version(files[name])

    def converged() -> bool:
        stats = live.envoy.stats()
        return (
            all(stats.get(f"{p}.version_text") == f'"{v}"' for p, v in expected.items())
            and stats.get("listener_manager.total_listeners_warming") == "0"
            and stats.get("cluster_manager.warming_clusters") == "0"
        )

    wait_until(converged, 10, f"Envoy to run {expected}")
    # What the files on disk name was never refused. Directory mode: every swap makes each
    # subscription re-read its file, a draining listener's too; apply keeps such a file
    # while it can ask Envoy, but a kill or --no-confirm (no admin to ask) can remove it
    # early, and Envoy counts an update_failure (a file it could not read; the draining
    # listener keeps its routes). A refusal (update_rejected) never happens.
    read = set(expected)
    kinds = (".update_rejected",) if live.layout == "directory" else ("",)
    assert {
        k: v
        for k, v in rejections(live).items()
        if k.rsplit(".", 1)[0] in read and k.endswith(kinds)
    } == {
        k: v
        for k, v in rejected_before.items()
        if k.rsplit(".", 1)[0] in read and k.endswith(kinds)
    }


def rejections(live: Live) -> dict[str, int]:
    return {
        k: int(v)
        for k, v in live.envoy.stats().items()
        if k.endswith((".update_rejected", ".update_failure")) and int(v)
    }


def test_sigkill_at_random_moments_leaves_a_config_envoy_runs(live: Live, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("XDSGEN_KILL_SEED", "0")) or None)
    certs = Certs(tmp_path / "certs")
    cert, key = certs.issue("site", "site.example.com")
    a, b = HttpBackend("a"), HttpBackend("b")
    t = TcpEcho("t")
    http4, https4, tcp1, tcp2, unreachable = free_ports(5)
    variants: list[dict[str, Any]] = [
        {
            "listen": {"ipv4": {"address": "127.0.0.1", "http": http4}},
            "upstreams": {"a": a.endpoint, "t": t.endpoint},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "a"}]}],
            "tcp": [{"port": tcp1, "upstream": "t"}],
        },
        {
            "listen": {"ipv4": {"address": "127.0.0.1", "http": http4, "https": https4}},
            "upstreams": {"b": b.endpoint, "t2": t.endpoint},
            "certificates": {"site": {"cert": str(cert), "key": str(key)}},
            "http": [
                {
                    "domains": ["site.example.com"],
                    "tls": "site",
                    "routes": [{"prefix": "/", "upstream": "b"}],
                },
                {
                    "domains": ["*"],
                    "routes": [
                        {"prefix": "/b/", "upstream": "b"},
                        {"prefix": "/", "upstream": "b"},
                    ],
                },
            ],
            "tcp": [{"port": tcp2, "upstream": "t2"}],
        },
        {
            "listen": {"ipv4": {"address": "127.0.0.1", "http": http4}},
            "upstreams": {"a": a.endpoint, "b": b.endpoint, "t": t.endpoint},
            "http": [
                {"domains": ["x.test"], "routes": [{"prefix": "/", "upstream": "b"}]},
                {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "a"}]},
            ],
            "tcp": [{"port": tcp1, "upstream": "t"}, {"port": tcp2, "upstream": "t"}],
        },
    ]
    inventories = [live.inventory(f"kill{i}", **v) for i, v in enumerate(variants)]
    base = rejections(live)
    kills = 0
    try:
        for iteration in range(ITERATIONS):
            inventory = inventories[iteration % len(inventories)]
            # Half confirm through the admin interface (fast steps), half settle blindly
            # (steps spread over a second): kills land in every phase of both.
            extra = (
                ["--settle", "0.15", "--no-confirm", "--admin", f"127.0.0.1:{unreachable}"]
                if iteration % 2
                else []
            )
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "xdsgen",
                    "apply",
                    str(inventory),
                    "--no-envoy-check",
                    *extra,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            # Since render and exit got faster, a confirmed apply is over in ~0.17-0.21 s
            # (start-up ~0.1 s) and a blind one in ~0.5-0.9 s: each is killed within its own
            # span. The confirmed ones before their last step: a kill between the clusters'
            # pruning and the removal of unused route files leaves such a file (which no
            # listener reads) naming a pruned cluster, which this check would count.
            time.sleep(rng.uniform(0.15, 0.6) if iteration % 2 else rng.uniform(0.05, 0.15))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(10)
            assert process.returncode in (0, -signal.SIGKILL), (
                process.stderr.read() if process.stderr else ""
            )
            if process.stderr:
                process.stderr.close()
            files = check_consistent(live.config)
            envoy_runs(live, files, base)
        assert kills >= ITERATIONS // 3, f"only {kills} of {ITERATIONS} applies were killed"
        # The next whole apply completes the config and leaves no temp file behind.
        final = subprocess.run(
            [sys.executable, "-m", "xdsgen", "apply", str(inventories[0]), "-v"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert final.returncode == 0, final.stderr
        assert not [n for n in os.listdir(live.config) if n.startswith(TEMP_PREFIX)]
        assert not [n for n in os.listdir(live.config / ".xdsgen") if n.startswith(TEMP_PREFIX)]
        envoy_runs(live, check_consistent(live.config), base)
    finally:
        for backend in (a, b, t):
            backend.close()
