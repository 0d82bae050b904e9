"""The apply history (DIR/.xdsgen/state.json, format 3): texts stored once by content
hash in DIR/.xdsgen/files/, read only when needed; older formats read and migrated."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from xdsgen.errors import IOProblem
from xdsgen.live.blobs import BlobStore, FileSet, digest
from xdsgen.live.state import HISTORY, STATE_FORMAT, State, state_path

CDS = 'version_info: "c1"\nresources: []\n'
LDS = 'version_info: "l1"\nresources: []\n'
RDS = 'version_info: "r1"\nresources:\n- name: "http_ipv4"\n'


def files(n: int) -> dict[str, str]:
    return {"cds.yaml": CDS, "lds.yaml": LDS, "rds_http_ipv4.yaml": RDS + f"# {n}\n" * 1000}


def blobs(config: Path) -> list[str]:
    """The stored texts (not their route digests)."""
    directory = config / ".xdsgen" / "files"
    names = os.listdir(directory) if directory.is_dir() else []
    return sorted(n for n in names if not n.endswith(".idx"))


def test_each_text_is_stored_once_and_state_json_names_hashes(tmp_path: Path) -> None:
    state = State(str(tmp_path))
    state.commit(files(1), {}, True, "unix:/x", "inv.yaml")
    state.commit(files(2), {}, True, "unix:/x", "inv.yaml")  # only the route file changed
    stored = json.loads(Path(state_path(str(tmp_path))).read_text())
    assert stored["format"] == STATE_FORMAT == 3
    entry = stored["accepted"][0]
    assert "files" not in entry  # an older xdsgen must not read hashes as texts
    assert entry["file_hashes"] == {n: digest(t) for n, t in files(2).items()}
    # cds and lds are shared by both entries: 4 texts, not 6.
    assert len(blobs(tmp_path)) == 4
    assert Path(state_path(str(tmp_path))).stat().st_size < 2000
    again = State.load(str(tmp_path))
    assert [dict(e["files"]) for e in again.accepted] == [files(2), files(1)]


def test_texts_are_compressed_and_read_only_when_asked_for(tmp_path: Path) -> None:
    state = State(str(tmp_path))
    state.commit(files(1), {}, True, "", "inv.yaml")
    route = digest(files(1)["rds_http_ipv4.yaml"])
    path = tmp_path / ".xdsgen" / "files" / f"{route}.z"
    assert path.stat().st_size < len(files(1)["rds_http_ipv4.yaml"]) / 10
    loaded = State.load(str(tmp_path)).accepted[0]["files"]
    assert isinstance(loaded, FileSet) and loaded._texts == {}
    assert loaded["rds_http_ipv4.yaml"] == files(1)["rds_http_ipv4.yaml"]
    assert list(loaded._texts) == ["rds_http_ipv4.yaml"]
    # Compared by hashes, without reading a text.
    other = State.load(str(tmp_path)).accepted[0]["files"]
    assert other == loaded and other._texts == {}
    assert loaded.differing({**files(1), "rds_http_ipv4.yaml": "x"}) == ["rds_http_ipv4.yaml"]


def test_texts_no_entry_names_are_removed(tmp_path: Path) -> None:
    state = State(str(tmp_path))
    for n in range(HISTORY + 3):
        state.commit(files(n), {}, True, "", "inv.yaml")
    assert len(state.accepted) == HISTORY
    names = {h for e in state.accepted for h in e["files"].hashes.values()}
    assert {b.removesuffix(".z") for b in blobs(tmp_path)} == names
    assert len(blobs(tmp_path)) == HISTORY + 2  # five route files, one cds, one lds


def test_the_journal_stores_its_texts_before_naming_them(tmp_path: Path) -> None:
    state = State(str(tmp_path))
    state.commit(files(1), {}, True, "", "inv.yaml")
    state.begin(files(2), {}, "inv.yaml")
    pending = State.load(str(tmp_path)).pending
    assert pending is not None and dict(pending["files"]) == files(2)
    state.commit(files(2), {}, True, "", "inv.yaml")
    assert State.load(str(tmp_path)).pending is None


def test_format_2_is_read_and_migrated(tmp_path: Path) -> None:
    path = Path(state_path(str(tmp_path)))
    path.parent.mkdir(parents=True)
    entry = {
        "files": files(1),
        "certs": {"site": "abc"},
        "confirmed": True,
        "admin": "127.0.0.1:15001",
        "source": "/etc/xdsgen/inventory.yaml",
        "time": "2026-01-01T00:00:00Z",
    }
    path.write_text(json.dumps({"format": 2, "accepted": [entry], "pending": None}))
    state = State.load(str(tmp_path))
    assert dict(state.accepted[0]["files"]) == files(1)
    assert state.known_certs() == {"site": "abc"}
    assert state.last_confirmed() is state.accepted[0]
    state.commit(files(2), {"site": "abc"}, True, "127.0.0.1:15001", "inv.yaml")
    stored = json.loads(path.read_text())
    assert stored["format"] == 3 and all("files" not in e for e in stored["accepted"])
    assert [dict(e["files"]) for e in State.load(str(tmp_path)).accepted] == [files(2), files(1)]


def test_an_entry_whose_text_was_lost_is_dropped(tmp_path: Path) -> None:
    state = State(str(tmp_path))
    state.commit(files(1), {}, True, "", "inv.yaml")
    state.commit(files(2), {}, True, "", "inv.yaml")
    lost = digest(files(1)["rds_http_ipv4.yaml"])
    (tmp_path / ".xdsgen" / "files" / f"{lost}.z").unlink()
    again = State.load(str(tmp_path))
    assert [dict(e["files"]) for e in again.accepted] == [files(2)]


def test_a_damaged_text_is_a_clear_error(tmp_path: Path) -> None:
    state = State(str(tmp_path))
    state.commit(files(1), {}, True, "", "inv.yaml")
    key = digest(files(1)["rds_http_ipv4.yaml"])
    (tmp_path / ".xdsgen" / "files" / f"{key}.z").write_bytes(b"not zlib")
    loaded = State.load(str(tmp_path)).accepted[0]["files"]
    with pytest.raises(IOProblem, match="is damaged"):
        loaded["rds_http_ipv4.yaml"]


def test_without_zlib_texts_are_stored_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xdsgen.live import blobs as blobs_module

    monkeypatch.setattr(blobs_module, "_zlib", lambda: None)
    store = BlobStore(str(tmp_path))
    store.write([(digest("hello"), "hello")])
    assert (tmp_path / "files" / digest("hello")).read_text() == "hello"
    assert store.read(digest("hello")) == "hello"


# --------------------------------------------------------------------------- route digests


def _sites(tmp_path: Path, name: str, hosts: list[tuple[str, str]]) -> dict[str, str]:
    from harness import write_inventory

    from xdsgen.pipeline import load_model, render

    data = {
        "version": 1,
        "envoy": {"config_dir": str(tmp_path / "config")},
        "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
        "upstreams": {"a": "127.0.0.1:3000", "b": "127.0.0.1:3001"},
        "http": [
            {"domains": [host], "routes": [{"prefix": prefix, "upstream": "a"}]}
            for host, prefix in hosts
        ],
    }
    return render(load_model(str(write_inventory(tmp_path / f"{name}.yaml", data)))).files


BASE_SITES = [("a.test", "/"), ("b.test", "/"), ("c.test", "/x/"), ("*", "/")]
VARIANTS = {
    "a vhost's route": [("a.test", "/"), ("b.test", "/y/"), ("c.test", "/x/"), ("*", "/")],
    "a vhost added": [*BASE_SITES[:3], ("d.test", "/"), ("*", "/")],
    "a vhost removed": [BASE_SITES[0], *BASE_SITES[2:]],
    "a vhost renamed": [("a.test", "/"), ("bb.test", "/"), ("c.test", "/x/"), ("*", "/")],
    "vhosts reordered": [BASE_SITES[1], BASE_SITES[0], *BASE_SITES[2:]],
    "nothing": BASE_SITES,
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_stored_digests_plan_what_parsing_plans(tmp_path: Path, variant: str) -> None:
    """A route file known by its stored digests gives the same plan as parsing it."""
    from xdsgen import parsed
    from xdsgen.live.digests import index_from_json, index_json, route_digests
    from xdsgen.live.plan import compute_plan

    old = _sites(tmp_path, "old", BASE_SITES)
    new = _sites(tmp_path, "new", VARIANTS[variant])
    parsing = compute_plan(old, new)
    stored = {t: index_json(route_digests(t) or {}) for n, t in old.items() if n.startswith("rds_")}
    parsed._CACHE.clear()  # a new process: the old files are not parsed yet
    asked: list[str] = []

    def known(text: str) -> Any:
        asked.append(text)
        return index_from_json(stored[text]) if text in stored else None

    by_digests = compute_plan(old, new, known=known)
    assert by_digests.lines() == parsing.lines()
    assert by_digests.writes == parsing.writes
    if variant != "nothing":
        assert asked, "the stored digests were not used"
        assert not any(parsed.is_parsed(t) for t in stored if t not in new.values())


def test_a_route_file_without_stored_digests_beside_one_with_them(tmp_path: Path) -> None:
    """A file on disk that apply never stored digests for (left by an apply killed before
    its state was saved) beside one it did: each is compared with its own kind (this
    crashed the plan with an AttributeError, found by killing applies at random)."""
    from harness import write_inventory

    from xdsgen import parsed
    from xdsgen.live.digests import index_from_json, index_json, route_digests
    from xdsgen.live.plan import compute_plan
    from xdsgen.pipeline import load_model, render

    def two_families(name: str, prefix: str) -> dict[str, str]:
        data = {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "config")},
            "listen": {
                "ipv4": {"address": "127.0.0.1", "http": 8080},
                "ipv6": {"address": "::1", "http": 8080},
            },
            "upstreams": {"a": "127.0.0.1:3000"},
            "http": [{"domains": ["*"], "routes": [{"prefix": prefix, "upstream": "a"}]}],
        }
        return render(load_model(str(write_inventory(tmp_path / f"{name}.yaml", data)))).files

    old, new = two_families("old", "/"), two_families("new", "/x/")
    parsing = compute_plan(old, new)
    ipv4 = old["rds_http_ipv4.yaml"]
    stored = {ipv4: index_json(route_digests(ipv4) or {})}
    parsed._CACHE.clear()
    mixed = compute_plan(
        old, new, known=lambda text: index_from_json(stored[text]) if text in stored else None
    )
    assert mixed.lines() == parsing.lines()
    assert mixed.writes == parsing.writes


def test_apply_stores_route_digests_and_the_next_plan_uses_them(tmp_path: Path) -> None:
    """Stored with the texts, removed with them; read by the next apply's plan."""
    from xdsgen import parsed
    from xdsgen.live.blobs import digest
    from xdsgen.live.orchestrate import _known

    state = State(str(tmp_path))
    old = _sites(tmp_path, "old", BASE_SITES)
    state.commit(old, {}, True, "", "inv.yaml")
    route = old["rds_http_ipv4.yaml"]
    index = tmp_path / ".xdsgen" / "files" / f"{digest(route)}.idx"
    assert index.is_file()
    assert not (tmp_path / ".xdsgen" / "files" / f"{digest(old['cds.yaml'])}.idx").exists()
    parsed._CACHE.clear()
    found = _known(State.load(str(tmp_path)))(route)
    assert found is not None and set(found) == {"http_ipv4"}
    index.write_text("{damaged")
    assert _known(State.load(str(tmp_path)))(route) is None  # then the file is parsed
    for n in range(HISTORY + 1):
        state.commit(_sites(tmp_path, f"v{n}", [(f"v{n}.test", "/")]), {}, True, "", "inv.yaml")
    assert not index.exists()
