"""The bad-input corpus: every broken inventory gets its precise message, exit 1, no
traceback, and the live config directory stays byte-for-byte as it was.

tests/bad/<name>.yaml starts with a comment saying what is wrong, then one
`# expect: <text>` line per error, in the order they must be reported (the text is the
message line after the file name: `:LINE:COL: error: key.path: message (hint)`).
Inputs that cannot be written as such a file (empty, binary, huge, a directory, a FIFO,
unreadable) are made by the tests below.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdsgen.cli import main

HERE = Path(__file__).resolve().parent
BAD = HERE / "bad"
CORPUS = sorted(BAD.glob("*.yaml"))
GOOD = HERE / "cases" / "minimal-http" / "inventory.yaml"


def expectations(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    return [line[len("# expect: ") :] for line in lines if line.startswith("# expect: ")]


def snapshot(directory: Path) -> dict[str, Any]:
    """Everything a write could change: names, bytes, inode (a rename makes a new one),
    mode and mtime of every entry, hidden temp files included."""
    state: dict[str, Any] = {}
    for entry in sorted(directory.iterdir()):
        info = entry.lstat()
        body = entry.read_bytes() if stat.S_ISREG(info.st_mode) else None
        state[entry.name] = (body, info.st_ino, info.st_mode, info.st_mtime_ns, info.st_size)
    return state


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config directory as a running router has it: rendered files plus one of its own."""
    directory = tmp_path_factory.mktemp("live")
    result = CliRunner().invoke(main, ["render", str(GOOD), "-o", str(directory)])
    assert result.exit_code == 0, result.output
    (directory / "README.keep").write_bytes(b"not ours\n")
    assert {"cds.yaml", "lds.yaml", "rds_http_ipv4.yaml"} <= {p.name for p in directory.iterdir()}
    return directory


def run_cli(args: list[str]) -> Any:
    result = CliRunner().invoke(main, args)
    # A failure must come from sys.exit in the error handler, never from an exception
    # click caught for us (that would be a traceback on a real terminal).
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: crashed with {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    return result


def assert_in_order(output: str, expected: list[str], source: str) -> None:
    position = 0
    for text in expected:
        found = output.find(text, position)
        assert found >= 0, f"{source}: expected, in order:\n  {text}\ngot:\n{output}"
        position = found + len(text)


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 40
    for path in CORPUS:
        assert expectations(path), f"{path.name} has no # expect: line"


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_render_refuses_and_leaves_live_dir_alone(path: Path, live: Path) -> None:
    before = snapshot(live)
    source = os.path.relpath(path)
    result = run_cli(["--no-color", "render", source, "-o", str(live)])
    assert result.exit_code == 1, result.output
    assert_in_order(
        result.output,
        [source + e if e.startswith(":") else e for e in expectations(path)],
        path.name,
    )
    assert "nothing written" in result.output
    assert snapshot(live) == before


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_apply_refuses_and_leaves_live_dir_alone(path: Path, live: Path) -> None:
    before = snapshot(live)
    result = run_cli(
        [
            "--no-color",
            "apply",
            str(path),
            "--config-dir",
            str(live),
            "--no-envoy-check",
            "--lock-timeout",
            "1",
            "--timeout",
            "1",
        ]
    )
    assert result.exit_code == 1, result.output
    # apply checks certificate files too (more errors may come first); each expected
    # message is still there.
    for text in expectations(path):
        assert text in result.output, f"{path.name}: {text!r} missing from:\n{result.output}"
    assert snapshot(live) == before


def test_every_error_is_sorted_by_position() -> None:
    result = run_cli(["--no-color", "validate", str(BAD / "many-errors-sorted.yaml")])
    located = [line for line in result.output.splitlines() if ": error: " in line]
    positions = [tuple(int(n) for n in line.split(":")[1:3]) for line in located]
    assert len(positions) == 5
    assert positions == sorted(positions)


# ----------------------------------------------------------------- inputs made on the spot


def _bad_file(kind: str, directory: Path) -> tuple[Path, str]:
    """Write one kind of unusable input; return its path and the expected message."""
    path = directory / f"{kind}.yaml"
    if kind == "empty":
        path.write_bytes(b"")
        return path, f"{path}: error: the file is empty"
    if kind == "blank":
        path.write_bytes(b"\n   \n\n")
        return path, f"{path}: error: the file is empty"
    if kind == "huge":
        with open(path, "wb") as handle:  # 50 MB, sparse: nothing is really written
            handle.truncate(50 * 1024 * 1024)
        return path, f"{path}: error: file is 52428800 bytes; an inventory is at most 4194304 bytes"
    if kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
        return path, f"{path}:1:1: error: file contains NUL bytes: not a text file"
    if kind == "gzip":
        import gzip

        path.write_bytes(
            gzip.compress(GOOD.read_bytes(), mtime=0)[:10].replace(b"\x00", b"\x01")
            + b"\xff\xfe\xfd"
        )
        return path, f"{path}:1:2: error: not UTF-8 text (byte b'\\x8b')"
    if kind == "latin1":
        path.write_bytes("version: 1\nlisten: {}\n# café\n".encode("latin-1"))
        return path, f"{path}:3:6: error: not UTF-8 text (byte b'\\xe9')"
    if kind == "utf16":
        path.write_bytes(GOOD.read_text().encode("utf-16"))
        return path, f"{path}:1:1: error: file is UTF-16 text, not UTF-8 (save it as UTF-8)"
    if kind == "directory":
        path.mkdir()
        return path, f"{path}: error: is a directory, not an inventory file"
    if kind == "missing":
        return path, f"{path}: error: file not found (check the path)"
    if kind == "under-a-file":
        (directory / "plain").write_text("x")
        path = directory / "plain" / "inventory.yaml"
        return path, f"{path}: error: file not found: a part of the path is not a directory"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would block a cron run forever
        return path, f"{path}: error: is not a regular file (a pipe, socket or device)"
    if kind == "dangling-symlink":
        path.symlink_to(directory / "nowhere.yaml")
        return path, f"{path}: error: file not found"
    if kind == "symlink-loop":
        path.symlink_to(path)
        return path, f"{path}: error: cannot read: Too many levels of symbolic links"
    raise AssertionError(kind)


KINDS = [
    "empty",
    "blank",
    "huge",
    "binary",
    "gzip",
    "latin1",
    "utf16",
    "directory",
    "missing",
    "under-a-file",
    "fifo",
    "dangling-symlink",
    "symlink-loop",
]


@pytest.mark.parametrize("kind", KINDS)
def test_unusable_files(kind: str, tmp_path: Path, live: Path) -> None:
    path, expected = _bad_file(kind, tmp_path)
    before = snapshot(live)
    for args in (
        ["validate", str(path)],
        ["render", str(path), "-o", str(live)],
        ["apply", str(path), "--config-dir", str(live), "--no-envoy-check"],
    ):
        result = run_cli(["--no-color", *args])
        assert result.exit_code == 1, (args, result.output)
        assert expected in result.output, (args, result.output)
    assert snapshot(live) == before


def test_unusable_file_json(tmp_path: Path) -> None:
    import json

    path, _ = _bad_file("binary", tmp_path)
    result = run_cli(["validate", "--format", "json", str(path)])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["errors"] == [
        {
            "file": str(path),
            "line": 1,
            "column": 1,
            "path": "",
            "severity": "error",
            "message": "file contains NUL bytes: not a text file",
            "hint": "is this the right file?",
        }
    ]


def test_unreadable_file(tmp_path: Path, live: Path) -> None:
    """Mode 000. Root reads anything, so as root the check runs in a forked child that
    has dropped to uid/gid 65534 (nobody): a real EACCES either way, never skipped."""
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"xdsgen-perm-{os.getpid()}"
    directory.mkdir(mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)
    path = directory / "inventory.yaml"
    path.write_bytes(GOOD.read_bytes())
    os.chmod(path, 0o000)
    expected = f"{path}: error: permission denied (run as a user who can read it, or fix its mode)"
    before = snapshot(live)
    try:
        # Everything the CLI imports lazily is imported now: the child may not read the
        # interpreter's own directories once it is nobody.
        run_cli(["validate", str(GOOD)])
        run_cli(["render", str(path), "-o", str(live)])
        if os.geteuid() != 0:
            output, code = _validate_output(str(path))
        else:
            output, code = _validate_as_nobody(str(path))
        assert code == 1, output
        assert expected in output, output
        assert "Traceback" not in output
    finally:
        os.chmod(path, 0o600)
        path.unlink()
        directory.rmdir()
    assert snapshot(live) == before


def _validate_output(path: str) -> tuple[str, int]:
    result = run_cli(["--no-color", "validate", path])
    return result.output, result.exit_code


def _validate_as_nobody(path: str) -> tuple[str, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root for good, run the CLI, report, exit
        code = 99
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            output, code = _validate_output(path)
            os.write(write_end, output.encode())
        except BaseException as exc:  # reported to the parent, which fails the test
            os.write(write_end, f"child failed: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks).decode(), os.waitstatus_to_exitcode(status)


def test_real_process_no_traceback(tmp_path: Path) -> None:
    """The installed entry point, as cron runs it: stderr has the message, never a traceback."""
    import subprocess

    for path in (BAD / "billion-laughs.yaml", BAD / "recursive-alias.yaml", tmp_path / "nope"):
        proc = subprocess.run(
            [sys.executable, "-m", "xdsgen", "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert ": error: " in proc.stderr


# ----------------------------------------------------------------- fuzz: never a crash


def _load_or_refuse(path: Path) -> None:
    """Anything at all either loads, or is refused with located problems: no other
    exception may escape (the CLI would have no message for it)."""
    from xdsgen.errors import InventoryError
    from xdsgen.pipeline import load_model, render

    try:
        render(load_model(str(path)))
    except InventoryError as exc:
        assert exc.problems
        assert all(p.message for p in exc.problems)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_fuzz_bytes_never_crash(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    _load_or_refuse(path)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "",
            "*",
            "/",
            "127.0.0.1:1",
            "[::1]:2",
            "a.b",
            "ipv4",
            "ipv6",
            "::",
            "0.0.0.0",
            "2s",
            "/etc/x",
            "off",
            "app",
            "site",
            "x:y:z",
            "[x]:1",
        ]
    ),
    st.text(max_size=12),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "domains",
                    "routes",
                    "prefix",
                    "path",
                    "upstream",
                    "tls",
                    "sni",
                    "port",
                    "families",
                    "endpoints",
                    "cert",
                    "key",
                    "address",
                    "http",
                    "https",
                    "verify",
                    "rewrite",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
_SECTIONS = [
    "envoy",
    "listen",
    "upstreams",
    "certificates",
    "http",
    "tls_passthrough",
    "tcp",
    "udp",
]


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.dictionaries(st.sampled_from(_SECTIONS), _VALUES, max_size=3))
def test_fuzz_structures_never_crash(tmp_path: Path, changes: dict[str, Any]) -> None:
    """Near-valid inventories: a working one with whole sections replaced by junk."""
    import yaml

    base = yaml.safe_load((HERE / "cases" / "home-router" / "inventory.yaml").read_text())
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump({**base, **changes}))
    _load_or_refuse(path)


_PORTS = st.sampled_from([1, 80, 443, 8080, 15001, 65535])
_NAMES = st.sampled_from(["app", "App", "nas", "012", "no"])
_DOMAINS = st.sampled_from(
    ["a.example.com", "A.example.com", "*", "*.example.com", "b.lan", "bad..name", "x.example.com."]
)
_FAMILIES = st.lists(st.sampled_from(["ipv4", "ipv6"]), min_size=1, max_size=2, unique=True)
_ENDPOINTS = st.sampled_from(
    [
        "127.0.0.1:3000",
        "127.0.0.1:15001",
        "[::1]:15001",
        "nas.lan:80",
        "localhost:15001",
        "0.0.0.0:15001",
        "fd00::1:80",
        "[fe80::1%1]:1",
        "10.0.0.1:0",
        "h:1",
    ]
)


def _maybe(key: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), strategy.map(lambda v: {key: v}))


_ROUTE = st.builds(
    lambda match, value, upstream, extra: {match: value, "upstream": upstream, **extra},
    st.sampled_from(["prefix", "path"]),
    st.sampled_from(["/", "/a", "/a/b", "a", "/a b"]),
    _NAMES,
    _maybe("rewrite", st.sampled_from(["/", "x"])),
)
_VHOST = st.builds(
    lambda domains, routes, tls, fam, redirect: {
        "domains": domains,
        "routes": routes,
        **tls,
        **fam,
        **redirect,
    },
    st.lists(_DOMAINS, min_size=1, max_size=3),
    st.lists(_ROUTE, min_size=1, max_size=3),
    _maybe("tls", st.sampled_from(["site", "Site", "other"])),
    _maybe("families", _FAMILIES),
    _maybe("redirect_to_https", st.booleans()),
)
_UPSTREAM = st.one_of(
    _ENDPOINTS,
    st.builds(
        lambda eps, tls: {"endpoints": eps, **tls},
        st.lists(_ENDPOINTS, min_size=1, max_size=3),
        _maybe(
            "tls",
            st.fixed_dictionaries(
                {},
                optional={
                    "sni": _DOMAINS,
                    "verify": st.booleans(),
                    "ca": st.sampled_from(["/ca.pem", "ca.pem"]),
                },
            ),
        ),
    ),
)
_INVENTORY = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "listen": st.fixed_dictionaries(
            {},
            optional={
                "ipv4": st.builds(
                    lambda a, p: {"address": a, **p},
                    st.sampled_from(["0.0.0.0", "127.0.0.1", "::", "x"]),
                    st.fixed_dictionaries({}, optional={"http": _PORTS, "https": _PORTS}),
                ),
                "ipv6": st.builds(
                    lambda a, p: {"address": a, **p},
                    st.sampled_from(["::", "::1", "0.0.0.0", "fe80::1%eth0"]),
                    st.fixed_dictionaries({}, optional={"http": _PORTS, "https": _PORTS}),
                ),
            },
        ).filter(bool),
        "upstreams": st.dictionaries(_NAMES, _UPSTREAM, max_size=4),
    },
    optional={
        "envoy": st.fixed_dictionaries(
            {},
            optional={
                "admin": st.sampled_from(
                    ["127.0.0.1:15001", "[::1]:15001", "0.0.0.0:15001", "h:1"]
                ),
                "admin_allow_remote": st.booleans(),
                "access_log": st.sampled_from(["off", False, "/dev/stdout", "rel.log"]),
                "container_config_dir": st.sampled_from(["/etc/envoy", "rel", "/"]),
            },
        ),
        "certificates": st.dictionaries(
            st.sampled_from(["site", "Site"]),
            st.fixed_dictionaries(
                {"cert": st.sampled_from(["/x.pem", "x.pem", "/etc"]), "key": st.just("/x.key")}
            ),
            max_size=2,
        ),
        "http": st.lists(_VHOST, max_size=3),
        "tls_passthrough": st.lists(
            st.fixed_dictionaries(
                {"sni": st.lists(_DOMAINS, min_size=1, max_size=2), "upstream": _NAMES},
                optional={"families": _FAMILIES},
            ),
            max_size=2,
        ),
        "tcp": st.lists(
            st.fixed_dictionaries(
                {"port": _PORTS, "upstream": _NAMES}, optional={"families": _FAMILIES}
            ),
            max_size=2,
        ),
        "udp": st.lists(
            st.fixed_dictionaries(
                {"port": _PORTS, "upstream": _NAMES}, optional={"families": _FAMILIES}
            ),
            max_size=2,
        ),
    },
)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(_INVENTORY)
def test_fuzz_schema_shaped_inventories_never_crash(tmp_path: Path, data: dict[str, Any]) -> None:
    """Inventories of the right shape with colliding names, ports, domains and families:
    the meaning checks must refuse or accept them, never fall over."""
    import yaml

    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    _load_or_refuse(path)
