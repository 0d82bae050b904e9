"""The mistakes a newcomer really makes (issue 12, items 12, 13 and 15), each with its
exact message through the CLI: indentation, URLs and inline addresses where an upstream's
name belongs, characters pasted from web pages, `tls: true`, unquoted `::1`, ports out of
range. The bad-input corpus (tests/bad/) holds the files; here the output must be exactly
the expected lines, nothing more.
"""

from __future__ import annotations

import glob
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from xdsgen.cli import main
from xdsgen.errors import InventoryError
from xdsgen.indentation import _progress, indentation_problem
from xdsgen.safeyaml import _loader_class, _parse


def _compose(text: str) -> object:
    """Parse as the inventory loader does (the fixes are tried with it)."""
    return yaml.compose(text, Loader=_loader_class())


HERE = Path(__file__).resolve().parent
BAD = HERE / "bad"
REPO = HERE.parent

NEWCOMER_CASES = [
    "indent-one-space-too-many",
    "indent-one-space-too-few",
    "indent-route-key-too-deep",
    "indent-route-key-between-levels",
    "indent-vhost-key-at-dash",
    "indent-list-entry-too-deep",
    "upstream-as-url",
    "inline-upstream-in-route",
    "typographic-quotes",
    "no-break-space-after-colon",
    "no-break-space-breaks-syntax",
    "tls-true",
    "ipv6-unquoted-in-flow",
    "port-out-of-range-everywhere",
]


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, ["--no-color", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if ": error: " in line]


def expectations(path: Path) -> list[str]:
    return [
        line[len("# expect: ") :]
        for line in path.read_text(encoding="utf-8").split("\n")
        if line.startswith("# expect: ")
    ]


@pytest.mark.parametrize("name", NEWCOMER_CASES)
def test_newcomer_mistake_gets_exactly_its_message(name: str) -> None:
    path = BAD / f"{name}.yaml"
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert error_lines(result.output) == [str(path) + e for e in expectations(path)]


def test_one_space_too_many_no_longer_advises_quoting() -> None:
    result = cli("validate", str(BAD / "indent-one-space-too-many.yaml"))
    assert "must be quoted" not in result.output
    assert "line 9 is indented 3 spaces, more than 'app' on line 8 (2 spaces)" in result.output


def test_an_out_of_range_port_reads_the_same_everywhere() -> None:
    result = cli("validate", str(BAD / "port-out-of-range-everywhere.yaml"))
    messages = [
        line.split(": error: ", 1)[1].split(": ", 1)[1] for line in error_lines(result.output)
    ]
    assert len(messages) == 6
    assert all(m.startswith("port ") and m.endswith(" is outside 1-65535") for m in messages)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("http://127.0.0.1:13000", "no scheme: write HOST:PORT (127.0.0.1:13000), not a URL"),
        ("http://nas.lan", "no scheme: write HOST:PORT (nas.lan:80), not a URL"),
        (
            "https://nas.lan:5001/",
            "no scheme: write HOST:PORT (nas.lan:5001), not a URL "
            "(to speak TLS to it, use the mapping form: {endpoints: [HOST:PORT], tls: {}})",
        ),
        (
            "http://127.0.0.1:3000/grafana/",
            "no scheme: write HOST:PORT (127.0.0.1:3000), not a URL; a path (/grafana/) "
            "belongs in a route's prefix or rewrite",
        ),
        (
            "127.0.0.1:3000/grafana",
            "no path: write HOST:PORT (127.0.0.1:3000); an upstream cannot have a path "
            "(/grafana): match it with a route's prefix, change it with rewrite",
        ),
        (
            "https://192.168.1.5:5001",
            "no scheme: write HOST:PORT (192.168.1.5:5001), not a URL (to speak TLS to it, use "
            "the mapping form: {endpoints: [HOST:PORT], tls: {sni: NAME_IN_ITS_CERTIFICATE}})",
        ),
        ("127.0.0.1:123456", "port 123456 is outside 1-65535"),
    ],
)
def test_upstreams_written_as_urls(tmp_path: Path, written: str, message: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\nlisten:\n  ipv4: {address: 0.0.0.0, http: 8080}\n"
        f'upstreams:\n  app: "{written}"\n'
        "http:\n  - domains: [a.example.com]\n    routes:\n      - {prefix: /, upstream: app}\n"
    )
    result = cli("validate", str(path))
    assert error_lines(result.output) == [f"{path}:5:3: error: upstreams.app: {message}"]


def test_tls_false_and_tls_without_certificates(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\nlisten:\n  ipv4: {address: 0.0.0.0, http: 8080, https: 8443}\n"
        "upstreams:\n  app: 127.0.0.1:3000\nhttp:\n"
        "  - {domains: [a.example.com], tls: false, routes: [{prefix: /, upstream: app}]}\n"
        "  - {domains: [b.example.com], tls: yes, routes: [{prefix: /, upstream: app}]}\n"
    )
    result = cli("validate", str(path))
    assert error_lines(result.output) == [
        f"{path}:7:32: error: http[0].tls: tls takes the name of a certificate, not false "
        "(leave tls out to serve this vhost without TLS)",
        f"{path}:8:32: error: http[1].tls: tls takes the name of a certificate, not yes "
        "(define one under certificates (e.g. router: {cert: /etc/ssl/router/fullchain.pem, "
        "key: /etc/ssl/router/privkey.pem}), then write tls: router)",
    ]


def test_pasted_characters_in_comments_and_quotes_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "# Grafana\u2019s \u201cbackend\u201d:\u00a0see the wiki\n"
        "version: 1\nlisten:\n  ipv4: {address: 0.0.0.0, http: 8080}  # \u00a0\u201cv4\u201d\n"
        'upstreams:\n  app: 127.0.0.1:3000\nenvoy: {access_log: "/var/log/a\u00a0b.log"}\n'
        "http:\n  - domains: [a.example.com]\n    routes:\n      - {prefix: /, upstream: app}\n",
        encoding="utf-8",
    )
    assert cli("validate", str(path)).exit_code == 0


def test_validate_summary_counts_in_words(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\nlisten:\n  ipv4: {address: 0.0.0.0, http: 8080, https: 8443}\n"
        "upstreams:\n  app: 127.0.0.1:3000\n"
        "certificates:\n  site: {cert: /etc/ssl/s/fullchain.pem, key: /etc/ssl/s/privkey.pem}\n"
        "http:\n  - domains: [a.example.com]\n    tls: site\n"
        "    routes:\n      - {prefix: /, upstream: app}\n"
    )
    result = cli("validate", str(path))
    assert result.exit_code == 0
    assert result.stdout == (
        f"{path}: valid: 1 upstream, 1 vhost, 1 route, 1 certificate; ipv4: http 8080, https 8443\n"
    )


def test_validate_summary_of_300_tcp_maps_stays_readable(tmp_path: Path) -> None:
    maps = "".join(f"  - {{port: {port}, upstream: app}}\n" for port in range(20000, 20300))
    odd = "".join(f"  - {{port: {port}, upstream: app}}\n" for port in (139, 445, 4450))
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\nlisten:\n  ipv4: {address: 0.0.0.0, http: 8080}\n"
        '  ipv6: {address: "::", http: 8080}\n'
        "upstreams:\n  app: 127.0.0.1:3000\ntcp:\n" + maps + odd + "udp:\n"
        "  - {port: 53, upstream: app}\n  - {port: 54, upstream: app}\n"
    )
    result = cli("validate", str(path))
    assert result.exit_code == 0
    ports = "http 8080, tcp 139, 445, 4450, 20000-20299, udp 53-54"
    assert result.stdout == (
        f"{path}: valid: 1 upstream, 0 vhosts, 0 routes, 0 certificates; "
        f"ipv4: {ports}; ipv6: {ports}\n"
    )


# --------------------------------------------------------------------------- indentation


def _valid_inventories() -> list[Path]:
    paths = [Path(p) for p in sorted(glob.glob(str(HERE / "cases" / "*" / "inventory.yaml")))]
    return [
        *paths,
        REPO / "examples" / "home-router.yaml",
        REPO / "examples" / "docker" / "inventory.yaml",
    ]


def test_a_line_moved_by_a_space_or_two_is_the_line_named() -> None:
    """Every key and list line of every valid inventory, moved one space left, one or two
    right: where YAML then fails, the message names the moved line (all but a handful of
    truly ambiguous cases) and the edit its hint proposes first makes the file parse."""
    named = missed = 0
    for path in _valid_inventories():
        original = path.read_text().split("\n")
        for index, line in enumerate(original):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            for delta in (-1, 1, 2):
                if delta < 0 and not line.startswith(" "):
                    continue
                moved = list(original)
                moved[index] = " " * delta + line if delta > 0 else line[1:]
                text = "\n".join(moved)
                try:
                    _compose(text)
                    continue  # still valid YAML (a different meaning, the schema's business)
                except yaml.MarkedYAMLError as exc:
                    error_line = exc.problem_mark.line + 1
                with pytest.raises(InventoryError) as caught:
                    _parse(text, str(path))
                problem = caught.value.problems[0]
                assert problem.message.startswith("YAML syntax error: "), problem
                found = indentation_problem(text, error_line, _compose)
                assert found is not None, (path, index + 1, delta, problem.format())
                assert (problem.line, problem.message) == (found.line, found.message)
                # The edit the hint proposes first makes the whole file parse.
                assert _progress(text, found.fixes[0], _compose) == math.inf, found
                if problem.line == index + 1:
                    named += 1
                else:
                    missed += 1
    assert named >= 600
    assert missed <= named // 100, (named, missed)


def test_the_proposed_edit_is_checked_by_parsing() -> None:
    # Line 3 is one space too deep; its fix (back to 2) parses. A mistake the model
    # cannot explain keeps PyYAML's words instead of a wrong hint.
    text = "upstreams:\n  app: 127.0.0.1:3000\n   nas: 10.0.0.2:80\n"
    found = indentation_problem(text, 3, _compose)
    assert found is not None and found.fixes == ((3, -1),)
    assert indentation_problem("a: b: c\n", 1, _compose) is None
