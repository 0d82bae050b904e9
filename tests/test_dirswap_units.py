"""Directory-swap mode without Envoy: the generations are safe to load in any order, the
writer makes kubelet's system calls, leaves other files alone and cleans up after a kill,
the layouts move both ways, render -o keeps one generation, and the inventory key."""

from __future__ import annotations

import builtins
import io
import itertools
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import pytest
from harness import write_inventory
from kubelet import KubeletVolume
from test_apply_helpers import run_xdsgen

from xdsgen.admin import AdminUnreachable
from xdsgen.conventions import CDS_FILE, DATA_LINK, LDS_FILE
from xdsgen.errors import EnvoyRefused, InventoryError, IOProblem, RenderError
from xdsgen.live import layout
from xdsgen.live.confirm import subscriptions
from xdsgen.live.generations import one_generation, plan_generations
from xdsgen.live.plan import cluster_references, union_cds
from xdsgen.live.swap import (
    data_target,
    is_our_link,
    is_stamp_dir,
    sweep,
    to_rename_layout,
    write_generation,
)
from xdsgen.live.transition import read_files
from xdsgen.parsed import resources_of
from xdsgen.pipeline import load_model, render
from xdsgen.render import verify

# --------------------------------------------------------------------------- configs

STAGES: list[dict[str, Any]] = [
    {  # 0: one upstream, two vhosts, a TCP map
        "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
        "upstreams": {"a": "127.0.0.1:3001", "t": "127.0.0.1:4001"},
        "http": [
            {"domains": ["x.test"], "routes": [{"prefix": "/", "upstream": "a"}]},
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "a"}]},
        ],
        "tcp": [{"port": 9001, "upstream": "t"}],
    },
    {  # 1: a new upstream and its route
        "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
        "upstreams": {"a": "127.0.0.1:3001", "b": "127.0.0.1:3002", "t": "127.0.0.1:4001"},
        "http": [
            {"domains": ["x.test"], "routes": [{"prefix": "/", "upstream": "b"}]},
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "a"}]},
        ],
        "tcp": [{"port": 9001, "upstream": "t"}],
    },
    {  # 2: both renamed, a certificate, an https listener and the IPv6 family
        "listen": {
            "ipv4": {"address": "127.0.0.1", "http": 8080, "https": 8443},
            "ipv6": {"address": "::1", "http": 8080},
        },
        "upstreams": {"alpha": "127.0.0.1:3001", "bee": "127.0.0.1:3002", "t": "127.0.0.1:4001"},
        "certificates": {"site": {"cert": "/etc/ssl/site.pem", "key": "/etc/ssl/site.key"}},
        "http": [
            {
                "domains": ["x.test"],
                "tls": "site",
                "families": ["ipv4"],
                "routes": [{"prefix": "/", "upstream": "bee"}],
            },
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "alpha"}]},
        ],
        "tcp": [{"port": 9002, "upstream": "t"}],
    },
    {  # 3: only TCP left
        "listen": {"ipv4": {"address": "127.0.0.1"}},
        "upstreams": {"t2": "127.0.0.1:4002"},
        "tcp": [{"port": 9002, "upstream": "t2"}],
    },
]


def rendered(tmp: Path, index: int, config_dir: str = "/etc/envoy") -> dict[str, str]:
    data = {
        "version": 1,
        "envoy": {"config_dir": config_dir, "layout": "directory", "access_log": "off"},
        **STAGES[index],
    }
    inventory = write_inventory(tmp / f"stage{index}.yaml", data)
    return dict(render(load_model(str(inventory))).files)


def clusters(files: dict[str, str]) -> set[str]:
    return {str(r["name"]) for r in resources_of(files.get(CDS_FILE)) or []}


def used(files: dict[str, str]) -> set[str]:
    """The clusters the listeners of `files` use, directly or through the route files
    they read."""
    lds = files.get(LDS_FILE)
    read = [files[n] for n in subscriptions(lds) if n in files]
    found = cluster_references([lds, *read])
    assert found is not None
    return found


@pytest.mark.parametrize("start,end", [p for p in itertools.permutations(range(len(STAGES)), 2)])
def test_every_generation_is_safe_to_load_in_any_order(
    tmp_path: Path, start: int, end: int
) -> None:
    """For each swap X -> Y: whatever Envoy loads first, every cluster that X's or Y's
    listeners and routes use is in both X's and Y's cds.yaml, and every file X's or Y's
    listeners read is in Y. The last generation is the rendered config."""
    old, new = rendered(tmp_path, start), rendered(tmp_path, end)
    steps = plan_generations(old, new)
    assert steps and all(s.generation is not None for s in steps)
    generations = [old, *(dict(s.generation or ()) for s in steps)]
    assert generations[-1] == new
    for before, after in zip(generations, generations[1:]):
        assert before != after
        assert used(before) | used(after) <= clusters(before) & clusters(after), (before, after)
        assert set(subscriptions(before.get(LDS_FILE))) <= set(after)
        assert set(subscriptions(after.get(LDS_FILE))) <= set(after)
    # clusters change alone first, and shrink alone last
    whats = [s.what for s in steps]
    if whats[0] == "clusters (old and new)":
        assert {
            n for n in set(old) | set(generations[1]) if old.get(n) != generations[1].get(n)
        } == {CDS_FILE}
    if whats[-1] == "without what nothing uses" and len(generations) > 2:
        last, before_last = generations[-1], generations[-2]
        changed = {n for n in set(last) | set(before_last) if last.get(n) != before_last.get(n)}
        assert changed - {CDS_FILE} <= set(before_last) - set(last)


def test_the_swaps_a_change_takes(tmp_path: Path) -> None:
    s0, s1, s2 = (rendered(tmp_path, i) for i in range(3))
    # a new upstream and its route: clusters first, then the routes (nothing to prune)
    assert [s.what for s in plan_generations(s0, s1)] == [
        "clusters (old and new)",
        "listeners, routes and secrets (old clusters kept)",
    ]
    # renamed upstreams: the old clusters go in a third swap
    assert [s.what for s in plan_generations(s1, s2)] == [
        "clusters (old and new)",
        "listeners, routes and secrets (old clusters kept)",
        "without what nothing uses",
    ]
    assert plan_generations(s2, s2) == []
    same = plan_generations(s2, s2, stale=("lds.yaml",))
    assert [(s.what, [n for n, _ in s.writes]) for s in same] == [
        ("the same files again (Envoy runs other versions)", ["lds.yaml"])
    ]
    # A route file Envoy drops in the same swap as the listener reading it is kept one swap.
    middle = dict(plan_generations(s2, s0)[1].generation or ())
    assert "rds_https_ipv4.yaml" in middle and "sds_site.yaml" in middle
    assert "rds_https_ipv4.yaml" not in dict(plan_generations(s2, s0)[-1].generation or ())


def test_one_generation_keeps_what_the_files_on_disk_use(tmp_path: Path) -> None:
    s1, s2 = rendered(tmp_path, 1), rendered(tmp_path, 2)
    first = one_generation(s1, s2)
    assert clusters(first) == clusters(s2) | {"a", "b"}  # what the routes on disk use
    assert {n: t for n, t in first.items() if n != CDS_FILE} == {
        n: t for n, t in s2.items() if n != CDS_FILE
    }
    second = one_generation(first, s2)  # the next render prunes
    assert second == s2


# --------------------------------------------------------------------------- the writer


def _layout(directory: Path) -> dict[str, str]:
    return {n: os.readlink(directory / n) for n in sorted(os.listdir(directory))}


def test_a_swap_lays_the_directory_out_as_kubelet_does(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "rds_mine.yaml").write_text("mine")  # a file of your own
    os.symlink("/etc/hostname", config / "notes")  # a link of your own
    (config / "..mine").mkdir()  # a directory kubelet's names would not match
    write_generation(str(config), {"cds.yaml": "c1", "lds.yaml": "l1", "rds_a.yaml": "r1"}, ())
    first = data_target(str(config))
    assert first is not None and is_stamp_dir(first)
    assert os.readlink(config / DATA_LINK) == first
    for name in ("cds.yaml", "lds.yaml", "rds_a.yaml"):
        assert os.readlink(config / name) == f"..data/{name}"
        assert (config / first / name).stat().st_mode & 0o777 == 0o644
    assert (config / first).stat().st_mode & 0o777 == 0o755
    write_generation(
        str(config),
        {"cds.yaml": "c2", "lds.yaml": "l2", "rds_b.yaml": "r2"},
        ("cds.yaml", "lds.yaml", "rds_a.yaml", "rds_mine.yaml", "notes"),
    )
    second = data_target(str(config))
    assert second != first and not (config / first).exists()
    assert read_files(str(config)) == {
        "cds.yaml": "c2",
        "lds.yaml": "l2",
        "rds_b.yaml": "r2",
        "rds_mine.yaml": "mine",
    }
    assert not os.path.lexists(config / "rds_a.yaml")  # our link of a dropped name: gone
    assert (config / "rds_mine.yaml").read_text() == "mine"  # never ours: untouched
    assert os.readlink(config / "notes") == "/etc/hostname"
    assert (config / "..mine").is_dir()
    assert sorted(n for n in os.listdir(config) if n.startswith("..")) == sorted(
        ["..data", "..mine", second]
    )


def _recorder(monkeypatch: pytest.MonkeyPatch, root: Path) -> list[tuple[str, ...]]:
    """The file system calls under `root`, stamp directory names replaced by <stamp>."""
    calls: list[tuple[str, ...]] = []

    def rel(path: Any) -> str:
        text = os.fspath(path)
        if os.path.isabs(text):
            text = os.path.relpath(text, root)
        return "/".join("<stamp>" if is_stamp_dir(p) else p for p in text.split("/"))

    real = {
        "mkdir": os.mkdir,
        "symlink": os.symlink,
        "rename": os.rename,
        "unlink": os.unlink,
        "rmtree": shutil.rmtree,
        "open": builtins.open,
    }

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(("mkdir", rel(path)))
        real["mkdir"](path, *args, **kwargs)

    def symlink(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(("symlink", rel(src), rel(dst)))
        real["symlink"](src, dst, *args, **kwargs)

    def rename(src: Any, dst: Any) -> None:
        calls.append(("rename", rel(src), rel(dst)))
        real["rename"](src, dst)

    inside = []  # rmtree's own unlinks are not calls of the writer

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if not inside:
            calls.append(("unlink", rel(path)))
        real["unlink"](path, *args, **kwargs)

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(("rmtree", rel(path)))
        inside.append(path)
        try:
            real["rmtree"](path, *args, **kwargs)
        finally:
            inside.pop()

    def opened(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode and str(root) in os.fspath(path):
            calls.append(("write", rel(path)))
        return real["open"](path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "symlink", symlink)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(builtins, "open", opened)
    monkeypatch.setattr(io, "open", opened)
    return calls


def test_a_swap_makes_kubelets_system_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same calls as kubelet's AtomicWriter (tests/kubelet.py) for the same update, in
    its order, but for one: the link of a new name is made before the swap, not after
    (kubelet moved it after for Windows' sake; before, a new listener finds its file the
    moment Envoy reads the swapped generation)."""
    first = {"cds.yaml": "c1", "lds.yaml": "l1", "rds_a.yaml": "r1"}
    second = {"cds.yaml": "c2", "lds.yaml": "l2", "rds_b.yaml": "r2"}
    ours, theirs = tmp_path / "xdsgen", tmp_path / "kubelet"
    ours.mkdir()
    write_generation(str(ours), first, ())
    kubelet = KubeletVolume(theirs)
    kubelet.write(first)
    calls = _recorder(monkeypatch, ours)
    write_generation(str(ours), second, first)
    monkeypatch.undo()
    kubelet_calls = _recorder(monkeypatch, theirs)
    kubelet.write(second)
    monkeypatch.undo()
    new_link = ("symlink", "..data/rds_b.yaml", "rds_b.yaml")
    assert new_link in kubelet_calls and new_link in calls
    reordered = [c for c in kubelet_calls if c != new_link]
    reordered.insert(reordered.index(("symlink", "<stamp>", "..data_tmp")), new_link)
    assert calls == reordered
    assert calls == [
        ("mkdir", "<stamp>"),
        ("write", "<stamp>/cds.yaml"),
        ("write", "<stamp>/lds.yaml"),
        ("write", "<stamp>/rds_b.yaml"),
        new_link,
        ("symlink", "<stamp>", "..data_tmp"),
        ("rename", "..data_tmp", "..data"),
        ("unlink", "rds_a.yaml"),
        ("rmtree", "<stamp>"),
    ]


def test_sweep_removes_what_a_killed_swap_left(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    write_generation(str(config), {"cds.yaml": "c", "lds.yaml": "l"}, ())
    live = data_target(str(config))
    orphan = config / "..2024_01_02_03_04_05.abc123"
    orphan.mkdir()
    (orphan / "cds.yaml").write_text("half")
    os.symlink(orphan.name, config / "..data_tmp")
    (config / "..mine").mkdir()
    assert sorted(sweep(str(config))) == sorted(["..data_tmp", orphan.name])
    assert sorted(n for n in os.listdir(config) if n.startswith("..")) == sorted(
        ["..data", "..mine", str(live)]
    )
    assert read_files(str(config)) == {"cds.yaml": "c", "lds.yaml": "l"}


def test_a_failed_swap_leaves_the_running_generation(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    write_generation(str(config), {"cds.yaml": "c", "lds.yaml": "l"}, ())
    live = data_target(str(config))
    (config / "..data_tmp").mkdir()  # rename of a link over ..data would still work; this blocks
    (config / "..data_tmp" / "x").write_text("x")
    with pytest.raises(IOProblem, match="cannot swap"):
        write_generation(str(config), {"cds.yaml": "c2", "lds.yaml": "l2"}, ("cds.yaml",))
    assert data_target(str(config)) == live
    assert read_files(str(config)) == {"cds.yaml": "c", "lds.yaml": "l"}
    assert [n for n in os.listdir(config) if is_stamp_dir(n)] == [live]


def test_the_layouts_move_both_ways_and_finish_a_half_done_move(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    files = {"cds.yaml": "c", "lds.yaml": "l", "rds_a.yaml": "r"}
    for name, text in files.items():
        (config / name).write_text(text)
    (config / "rds_mine.yaml").write_text("mine")
    said: list[str] = []
    assert layout.conversion(str(config), "directory", files)
    assert layout.convert(str(config), "directory", files, said.append)
    assert all(is_our_link(str(config), n) for n in files)
    assert read_files(str(config)) == {**files, "rds_mine.yaml": "mine"}
    assert not os.path.islink(config / "rds_mine.yaml")
    assert not layout.convert(str(config), "directory", files, said.append)  # done already
    # half moved back (a kill): one regular file, two links
    (config / "cds.yaml").unlink()
    (config / "cds.yaml").write_text("c")
    assert layout.conversion(str(config), "rename", files)
    assert layout.convert(str(config), "rename", files, said.append)
    assert read_files(str(config)) == {**files, "rds_mine.yaml": "mine"}
    assert not any(os.path.islink(config / n) for n in files)
    assert DATA_LINK not in os.listdir(config)
    assert not [n for n in os.listdir(config) if is_stamp_dir(n)]
    assert layout.conversion(str(config), "rename", files) is None
    assert [s.split(" moves")[1][:26] for s in said] == [
        " to the directory layout (",
        " to the rename layout (reg",
    ]
    to_rename_layout(str(config), files)  # idempotent
    assert read_files(str(config)) == {**files, "rds_mine.yaml": "mine"}


# --------------------------------------------------------------------------- Envoy's side


class FakeAdmin:
    def __init__(self, answer: Any):
        self.answer = answer
        self.asked: list[str] = []

    def _answer(self, path: str) -> Any:
        self.asked.append(path)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def get_json(self, path: str, timeout: Optional[float] = None) -> Any:
        return self._answer(path)

    def config_dump(self, resource: Optional[str] = None, timeout: Optional[float] = None) -> Any:
        return self._answer(f"/config_dump?resource={resource}")


def _bootstrap_dump(watched: Optional[str]) -> dict[str, Any]:
    source: dict[str, Any] = {"path": "/etc/envoy/cds.yaml"}
    if watched:
        source["watched_directory"] = {"path": watched}
    dynamic = {
        "cds_config": {"path_config_source": source},
        "lds_config": {"path_config_source": source},
    }
    return {"configs": [{"bootstrap": {"dynamic_resources": dynamic}}]}


def _model(tmp_path: Path, layout_name: str = "directory") -> Any:
    data = {
        "version": 1,
        "envoy": {"config_dir": "/etc/envoy", "layout": layout_name},
        **STAGES[0],
    }
    return load_model(str(write_inventory(tmp_path / "model.yaml", data)))


def test_apply_refuses_when_envoy_does_not_watch_the_directory(tmp_path: Path) -> None:
    model = _model(tmp_path)
    fine = FakeAdmin(_bootstrap_dump("/etc/envoy"))
    layout.check_envoy_watches(fine, model, 1.0)
    assert fine.asked == [layout.BOOTSTRAP_MASK]
    with pytest.raises(EnvoyRefused, match="bootstrap watches no directory, not /etc/envoy"):
        layout.check_envoy_watches(FakeAdmin(_bootstrap_dump(None)), model, 1.0)
    with pytest.raises(EnvoyRefused, match="watches /elsewhere, not /etc/envoy"):
        layout.check_envoy_watches(FakeAdmin(_bootstrap_dump("/elsewhere")), model, 1.0)
    with pytest.raises(IOProblem, match="nothing was written"):
        layout.check_envoy_watches(FakeAdmin(AdminUnreachable("gone", "gone")), model, 1.0)
    # rename mode never asks; a no-op in directory mode neither
    quiet = FakeAdmin(_bootstrap_dump(None))
    layout.prepare(_model(tmp_path, "rename"), {}, quiet, 1.0, False, print)
    layout.prepare(model, {}, quiet, 1.0, True, print)
    assert quiet.asked == []


def test_files_a_draining_listener_reads_are_kept_with_their_clusters(tmp_path: Path) -> None:
    s1, s2, s3 = (rendered(tmp_path, i) for i in (1, 2, 3))
    model = _model(tmp_path)

    class Files:
        def __init__(self, files: dict[str, str]):
            self.files = files

    # the https listener of stage 2 is on disk: replaced by stage 3, it will drain
    kept = layout.keep_files(model, Files(s3), s2, None, 1.0).files
    assert {"rds_https_ipv4.yaml", "sds_site.yaml", "rds_http_ipv4.yaml"} <= set(kept)
    assert used(s2) - {"t"} <= clusters(kept)
    # stage 1's listeners are gone from disk, but Envoy still drains the one reading
    # rds_http_ipv6.yaml
    draining = {
        "configs": [
            {"name": "x", "active_state": {}},
            {
                "name": "http_ipv6",
                "draining_state": {
                    "listener": {
                        "rds": {
                            "config_source": {
                                "path_config_source": {"path": "/etc/envoy/rds_http_ipv6.yaml"}
                            }
                        }
                    }
                },
            },
        ]
    }
    every_cluster = union_cds(s2[CDS_FILE], s1[CDS_FILE])  # the last apply kept them
    assert every_cluster is not None
    on_disk = {**s1, "rds_http_ipv6.yaml": s2["rds_http_ipv6.yaml"], CDS_FILE: every_cluster}
    kept = layout.keep_files(model, Files(s1), on_disk, FakeAdmin(draining), 1.0).files
    assert set(kept) == set(s1) | {"rds_http_ipv6.yaml"}
    assert clusters(kept) == clusters(s1) | {"alpha"}  # the draining routes' cluster
    # nothing reads it any more: a later apply removes it; rename mode keeps nothing
    assert layout.keep_files(model, Files(s1), on_disk, FakeAdmin({"configs": []}), 1.0).files == s1
    rename = _model(tmp_path, "rename")
    assert layout.keep_files(rename, Files(s3), s2, None, 1.0).files == s3


# --------------------------------------------------------------------------- inventory, render


def test_the_layout_key(tmp_path: Path) -> None:
    default = load_model(
        str(
            write_inventory(
                tmp_path / "d.yaml", {"version": 1, "envoy": {"config_dir": "/e"}, **STAGES[0]}
            )
        )
    )
    assert (default.envoy.layout, default.envoy.watched_directory) == ("rename", None)
    model = _model(tmp_path)
    assert (model.envoy.layout, model.envoy.watched_directory) == ("directory", "/etc/envoy")
    moved = model.with_config_dir("/srv/xds")
    assert moved.envoy.watched_directory == "/srv/xds"
    docker = load_model(
        str(
            write_inventory(
                tmp_path / "docker.yaml",
                {
                    "version": 1,
                    "envoy": {
                        "config_dir": "/srv/xds",
                        "container_config_dir": "/etc/envoy",
                        "layout": "directory",
                    },
                    **STAGES[0],
                },
            )
        )
    )
    assert docker.envoy.watched_directory == "/etc/envoy"  # as Envoy sees it
    assert docker.with_config_dir("/tmp/x").envoy.watched_directory == "/etc/envoy"
    bad = write_inventory(
        tmp_path / "bad.yaml", {"version": 1, "envoy": {"layout": "sideways"}, **STAGES[0]}
    )
    with pytest.raises(InventoryError) as error:
        load_model(str(bad))
    assert "envoy.layout" in str(error.value) and "directory" in str(error.value)


def test_verify_catches_a_listener_that_would_miss_the_swaps(tmp_path: Path) -> None:
    model = _model(tmp_path)
    files = render(model)
    verify(model, files)
    plain = replace(model, envoy=replace(model.envoy, watched_directory=None))
    with pytest.raises(RenderError, match=r"lds\.yaml"):
        verify(plain, files)


def test_render_into_a_directory_swaps_one_generation(tmp_path: Path) -> None:
    out = tmp_path / "out"
    inventories = []
    for index in (1, 2):
        data = {
            "version": 1,
            "envoy": {"config_dir": str(out), "layout": "directory", "access_log": "off"},
            **STAGES[index],
        }
        inventories.append(write_inventory(tmp_path / f"render{index}.yaml", data))
    first = run_xdsgen("render", str(inventories[0]))
    assert first.returncode == 0, first.stderr
    assert all(is_our_link(str(out), n) for n in read_files(str(out)))
    again = run_xdsgen("render", str(inventories[0]))
    assert "nothing written" in again.stdout + again.stderr
    before = data_target(str(out))
    second = run_xdsgen("render", str(inventories[1]))
    assert second.returncode == 0, second.stderr
    assert data_target(str(out)) != before
    kept = read_files(str(out))
    assert {"a", "b"} <= clusters(kept)  # the routes on disk used them: kept one generation
    third = run_xdsgen("render", str(inventories[1]))
    assert third.returncode == 0
    assert clusters(read_files(str(out))) == {"alpha", "bee", "t"}  # pruned by the next render
    # rendering in the rename layout into it turns it back into plain files
    data = {"version": 1, "envoy": {"config_dir": str(out), "access_log": "off"}, **STAGES[1]}
    plain = write_inventory(tmp_path / "plain.yaml", data)
    assert run_xdsgen("render", str(plain)).returncode == 0
    assert DATA_LINK not in os.listdir(out)
    assert not any(os.path.islink(out / n) for n in read_files(str(out)))
