"""xdsgen/filewatch.py and xdsgen/inotify.py on real files (no Envoy): which files the
watcher depends on, a change counted only once complete and settled, directories removed,
recreated or not there yet, symlink swaps, an overflowing event queue, an idle wait that
sleeps, the polling fallback, and the timestamped output."""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Certs

from xdsgen import filewatch
from xdsgen import inotify as ino
from xdsgen.filewatch import InotifyWatcher, PollWatcher, Waker


@pytest.fixture
def waker() -> Iterator[Waker]:
    waker = Waker()
    yield waker
    waker.close()


def later(seconds: float, action: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_inotify_is_available_here() -> None:
    """The machine the tests run on is Linux: inotify through ctypes must work."""
    assert ino.available()


def test_watched_files_cover_inventory_certificates_symlinks_and_templates(
    tmp_path: Path,
) -> None:
    from xdsgen import resources
    from xdsgen.pipeline import load_model

    certs = Certs(tmp_path / "certs")
    cert, key = certs.issue("site", "site.example.com")
    # certbot's layout: live/NAME/fullchain.pem -> ../../archive/NAME/fullchain1.pem
    archive, live = tmp_path / "le" / "archive" / "site", tmp_path / "le" / "live" / "site"
    archive.mkdir(parents=True)
    live.mkdir(parents=True)
    shutil.copy(cert, archive / "fullchain1.pem")
    (live / "fullchain.pem").symlink_to("../../archive/site/fullchain1.pem")
    # ... reached through a symlinked directory, as /etc/ssl often is.
    (tmp_path / "ssl").symlink_to(tmp_path / "le")
    linked = tmp_path / "ssl" / "live" / "site" / "fullchain.pem"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\nlisten: {ipv4: {address: 127.0.0.1, http: 8080, https: 8443}}\n"
        "upstreams: {app: 127.0.0.1:3000}\n"
        f"certificates: {{site: {{cert: {linked}, key: {key}}}}}\n"
        "http:\n  - {domains: [site.example.com], tls: site,\n"
        "     routes: [{prefix: /, upstream: app}]}\n"
    )
    model = load_model(str(inventory))
    files = filewatch.watched_files(str(inventory), model.secret_files())
    assert {
        str(inventory),
        str(linked),  # as named
        str(tmp_path / "ssl"),  # the symlinked directory on the way
        str(live / "fullchain.pem"),  # the link certbot swaps
        str(archive / "fullchain1.pem"),  # the file read in the end
        str(key),
    } <= files
    assert str(resources.directory("templates") / "lds.yaml.j2") in files
    # Read from the text alone, the same certificate paths.
    assert filewatch.certificate_paths(str(inventory)) == {str(linked), str(key)}


def test_certificate_paths_of_an_invalid_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\nlistenz: oops\ncertificates:\n"
        "  site: {cert: /srv/tls/site.pem, key: /srv/tls/site.key}\n"
        "  odd: {cert: relative.pem, key: 42}\n  broken: nope\n"
    )
    assert filewatch.certificate_paths(str(inventory)) == {"/srv/tls/site.pem", "/srv/tls/site.key"}
    inventory.write_text("version: 1\ncertificates: {site: {cert: /a\n")  # not YAML at all
    assert filewatch.certificate_paths(str(inventory)) is None
    assert filewatch.certificate_paths(str(tmp_path / "missing.yaml")) is None


def test_an_idle_inotify_wait_sleeps_until_its_timeout(tmp_path: Path, waker: Waker) -> None:
    target = tmp_path / "inventory.yaml"
    target.write_text("a")
    (tmp_path / "other").write_text("x")
    watcher = InotifyWatcher({str(target)}, 0.05, waker)
    try:
        later(0.2, lambda: (tmp_path / "other").write_text("y"))  # not a watched name
        start = time.monotonic()
        assert watcher.wait(1.0) is False
        assert time.monotonic() - start >= 0.99
        # Woken by the other file's events (filtered out), never by a timer of its own.
        assert watcher.wakeups <= 4
    finally:
        watcher.close()
    poller = PollWatcher({str(target)}, 0.05, waker)
    assert poller.wait(1.0) is False
    assert poller.wakeups >= 4  # what polling costs: one look per interval


def test_a_file_still_open_for_writing_is_waited_for(tmp_path: Path, waker: Waker) -> None:
    """A 300 ms pause mid-write, a 50 ms debounce: the change counts only after the close."""
    target = tmp_path / "inventory.yaml"
    target.write_text("old\n")
    watcher = InotifyWatcher({str(target)}, 0.05, waker)
    closed: list[float] = []

    def write() -> None:
        with open(target, "w") as handle:
            handle.write("first half\n")
            handle.flush()
            time.sleep(0.3)
            handle.write("second half\n")
            closed.append(time.monotonic())

    try:
        later(0.1, write)
        assert watcher.wait(5) is True
        assert closed and time.monotonic() >= closed[0] + 0.05
        assert target.read_text() == "first half\nsecond half\n"
    finally:
        watcher.close()


def test_changes_settle_for_the_debounce(tmp_path: Path, waker: Waker) -> None:
    target = tmp_path / "inventory.yaml"
    target.write_text("0")
    watcher = InotifyWatcher({str(target)}, 0.4, waker)
    try:

        def saves() -> None:
            for i in range(6):
                temp = tmp_path / ".swp"
                temp.write_text(str(i))
                os.replace(temp, target)
                time.sleep(0.1)

        later(0, saves)
        start = time.monotonic()
        assert watcher.wait(5) is True
        assert time.monotonic() - start >= 0.5 + 0.4 - 0.05  # the last save, then 0.4 s quiet
        assert target.read_text() == "5"
        assert watcher.wait(0.6) is False  # and that was all: one change
    finally:
        watcher.close()


def _saves(target: Path) -> dict[str, Any]:
    """The ways editors save, as their inotify events showed (vim, sed -i, a temp file
    renamed): each must be one change, and complete when it counts."""

    def in_place() -> None:  # vim: write, close, chmod within a few ms
        with open(target, "w") as handle:
            handle.write("in place\n")
            handle.flush()
            time.sleep(0.002)
            os.fsync(handle.fileno())
        os.chmod(target, 0o644)

    def sed_i() -> None:
        import subprocess

        subprocess.run(["sed", "-i", "s/.*/sed/", str(target)], check=True)

    def renamed() -> None:
        temp = target.with_name(".inventory.yaml.tmp")
        temp.write_text("renamed\n")
        os.replace(temp, target)

    def backup_then_write() -> None:  # writebackup: the old file moved aside first
        backup = target.with_name("inventory.yaml~")
        os.replace(target, backup)
        time.sleep(0.05)  # a busy machine: far longer than the debounce
        with open(target, "w") as handle:
            handle.write("after backup\n")
        os.unlink(backup)

    return {
        "in place": (in_place, "in place\n"),
        "sed -i": (sed_i, "sed\n"),
        "renamed": (renamed, "renamed\n"),
        "backup then write": (backup_then_write, "after backup\n"),
    }


@pytest.mark.parametrize("style", ["in place", "sed -i", "renamed", "backup then write"])
def test_each_save_is_one_complete_change_with_the_default_debounce(
    tmp_path: Path, waker: Waker, style: str
) -> None:
    from xdsgen.watch import DEFAULT_DEBOUNCE

    target = tmp_path / "inventory.yaml"
    target.write_text("old\n")
    save, expected = _saves(target)[style]
    watcher = InotifyWatcher({str(target)}, DEFAULT_DEBOUNCE, waker)
    try:
        later(0.05, save)
        assert watcher.wait(5) is True
        assert target.read_text() == expected  # what an apply now would read
        assert watcher.wait(0.3) is False  # and that was one change
    finally:
        watcher.close()


def test_a_file_deleted_for_good_counts_after_the_grace(tmp_path: Path, waker: Waker) -> None:
    target = tmp_path / "inventory.yaml"
    target.write_text("old\n")
    watcher = InotifyWatcher({str(target)}, 0.01, waker)
    try:
        later(0.05, target.unlink)
        start = time.monotonic()
        assert watcher.wait(5) is True
        assert time.monotonic() - start >= filewatch.GONE_GRACE
    finally:
        watcher.close()


def test_the_watched_directory_removed_and_recreated(tmp_path: Path, waker: Waker) -> None:
    directory = tmp_path / "conf"
    directory.mkdir()
    target = directory / "inventory.yaml"
    target.write_text("a")
    watcher = InotifyWatcher({str(target)}, 0.05, waker)
    try:
        shutil.rmtree(directory)
        assert watcher.wait(2) is True  # gone: a change (the apply reports the missing file)
        directory.mkdir()
        assert watcher.wait(2) is True  # back: seen through the parent, watched again
        target.write_text("b")
        assert watcher.wait(2) is True  # and heard inside the new directory
    finally:
        watcher.close()


def test_directories_that_do_not_exist_yet(tmp_path: Path, waker: Waker) -> None:
    target = tmp_path / "le" / "live" / "site" / "fullchain.pem"
    watcher = InotifyWatcher({str(target)}, 0.05, waker)
    try:
        assert watcher.wait(0.3) is False
        target.parent.mkdir(parents=True)
        target.write_text("cert")

        def arrived() -> bool:
            while watcher.wait(1):
                if target.exists():
                    return True
            return False

        assert arrived()
    finally:
        watcher.close()


def test_a_symlink_swapped_the_certbot_way(tmp_path: Path, waker: Waker) -> None:
    archive, live = tmp_path / "archive", tmp_path / "live"
    archive.mkdir()
    live.mkdir()
    (archive / "cert1.pem").write_text("one")
    link = live / "cert.pem"
    link.symlink_to("../archive/cert1.pem")
    watcher = InotifyWatcher(set(filewatch.resolution_chain(str(link))), 0.05, waker)
    try:
        (archive / "cert2.pem").write_text("two")  # not watched (yet): no change
        assert watcher.wait(0.3) is False
        (live / ".new").symlink_to("../archive/cert2.pem")
        os.replace(live / ".new", link)
        assert watcher.wait(2) is True
        (archive / "cert1.pem").write_text("one, edited in place")
        assert watcher.wait(2) is True  # the old target is still watched until retargeted
    finally:
        watcher.close()


def test_an_overflowing_event_queue_counts_as_a_change(tmp_path: Path, waker: Waker) -> None:
    target = tmp_path / "inventory.yaml"
    target.write_text("a")
    watcher = InotifyWatcher({str(target)}, 0.05, waker)
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    try:
        # Alternating files: identical consecutive events would be merged by the kernel.
        fds = [os.open(tmp_path / f"noise{i}", os.O_WRONLY | os.O_CREAT) for i in range(2)]
        for i in range(limit + 100):
            os.write(fds[i % 2], b"x")
        for fd in fds:
            os.close(fd)
        assert watcher.wait(5) is True  # events were lost: assume the worst
        target.write_text("b")
        assert watcher.wait(2) is True  # watching again on a fresh queue
    finally:
        watcher.close()


def test_a_replaced_directory_is_noticed_as_stale(tmp_path: Path, waker: Waker) -> None:
    """A grandparent renamed sends no event to the watched directory itself."""
    target = tmp_path / "top" / "conf" / "inventory.yaml"
    target.parent.mkdir(parents=True)
    target.write_text("a")
    watcher = InotifyWatcher({str(target)}, 0.05, waker)
    try:
        assert not watcher.stale()
        os.rename(tmp_path / "top", tmp_path / "old")
        target.parent.mkdir(parents=True)
        target.write_text("b")
        assert watcher.stale()
        watcher.refresh()
        assert watcher.wait(1) is True and not watcher.stale()
    finally:
        watcher.close()


def test_the_waker_ends_a_wait_at_once(tmp_path: Path, waker: Waker) -> None:
    for make in (InotifyWatcher, PollWatcher):
        watcher = make({str(tmp_path / "inventory.yaml")}, 0.05, waker)
        later(0.2, waker.wake)
        start = time.monotonic()
        assert watcher.wait(None) is False
        assert time.monotonic() - start < 1.5
        watcher.close()


def test_polling_when_forced_or_when_inotify_fails(
    tmp_path: Path, waker: Waker, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {str(tmp_path / "inventory.yaml")}
    monkeypatch.setenv("XDSGEN_WATCHER", "poll")
    assert isinstance(filewatch.make_watcher(files, 0.05, waker), PollWatcher)
    monkeypatch.delenv("XDSGEN_WATCHER")
    assert isinstance(filewatch.make_watcher(files, 0.05, waker), InotifyWatcher)

    def no_inotify() -> None:
        raise OSError(38, "libc has no inotify")

    monkeypatch.setattr(ino, "Inotify", no_inotify)
    warnings: list[str] = []
    watcher = filewatch.make_watcher(files, 0.05, waker, warnings.append)
    assert isinstance(watcher, PollWatcher) and watcher.describe() == "polling every 0.25s"
    assert warnings and "polling instead" in warnings[0]
    # OpenWrt without python3-ctypes: polling, not a crash.
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "ctypes", None)
    assert not ino.available()
    assert isinstance(filewatch.make_watcher(files, 0.05, waker), PollWatcher)
    # Polling sees a change, once it held still.
    (tmp_path / "inventory.yaml").write_text("new")
    assert watcher.wait(2) is True
    assert watcher.wait(0.5) is False


def test_every_line_of_the_watcher_is_timestamped() -> None:
    from xdsgen.errors import Problem
    from xdsgen.report.console import Console
    from xdsgen.watch import stamped

    out, err = io.StringIO(), io.StringIO()
    log = stamped(Console(verbose=True, out=out, err=err))
    log.info("watching 3 files (inotify)")
    log.detail("  clusters: confirmed")
    log.problems([Problem(3, 1, "upstreamz", "unknown key", source="inv.yaml")])
    log.error("1 error; keeping the running config")
    log.out.write("two ")
    log.out.write("parts\nand a\nthird line\n")
    lines = out.getvalue().splitlines() + err.getvalue().splitlines()
    assert len(lines) == 7
    assert all(re.match(r"^\d\d:\d\d:\d\d ", line) for line in lines), lines
    assert out.getvalue().splitlines()[2].endswith(" two parts")


def test_watch_does_not_go_with_dry_run(tmp_path: Path) -> None:
    from test_apply_helpers import run_xdsgen

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("version: 1\n")
    result = run_xdsgen("apply", str(inventory), "--watch", "--dry-run")
    assert result.returncode == 2
    assert "--watch applies every change; it does not go with --dry-run" in result.stderr


def test_failures_are_said_once_and_the_all_clear_even_when_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reporting rules on their own (the real applies are in test_watch*.py): a retry
    failing the same way stays silent, the recovery is printed, with -q on stderr."""
    from xdsgen.errors import EnvoyRefused, InventoryError, Problem
    from xdsgen.live import orchestrate as apply_module
    from xdsgen.live.orchestrate import Options
    from xdsgen.report.console import Console
    from xdsgen.watch import Session

    outcomes: list[Any] = []

    def fake_apply(*_args: Any, **_kwargs: Any) -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    class Done:
        def __init__(self, empty: bool):
            self.plan = type("Plan", (), {"empty": empty})()
            self.warnings: list[Any] = []
            self.model = type("Model", (), {"secret_files": lambda self: set()})()

        def line(self) -> str:
            return "unchanged" if self.plan.empty else "applied: 1 to change"

    monkeypatch.setattr(apply_module, "apply", fake_apply)
    for quiet in (False, True):
        out, err = io.StringIO(), io.StringIO()
        session = Session(
            str(tmp_path / "inv.yaml"), Options(), Console(quiet=quiet, out=out, err=err)
        )
        bad = InventoryError([Problem(2, 1, "upstreamz", "unknown key", source="inv.yaml")])
        outcomes[:] = [
            bad,
            bad,
            EnvoyRefused("refused"),
            Done(False),
            EnvoyRefused("x"),
            Done(True),
        ]
        session.apply("change")
        session.apply("recheck")  # the same errors again: not repeated
        session.apply("recheck")  # a new error: said
        session.apply("change")
        session.apply("Envoy restarted")
        session.apply("recheck")
        said = err.getvalue() if quiet else out.getvalue()
        assert err.getvalue().count("unknown key") == 1
        assert err.getvalue().count("error: refused") == 1
        assert "fixed: applied: 1 to change" in said
        assert "ok again: unchanged (recheck)" in said
