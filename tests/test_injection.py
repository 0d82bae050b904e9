"""No inventory string can change the structure of the generated YAML.

The check is independent of render.verify: an inventory with hostile strings and the same
inventory with plain placeholders (zq001x...) go through the whole pipeline; the
placeholder render is parsed, every placeholder is replaced by the model's real value, and
the result must equal the parsed hostile render exactly: same keys, same lists, same
types, same values. Each hostile input is either rejected with a located, printable
error, or passes that comparison.

Envoy reads YAML with yaml-cpp, not PyYAML, so the escapes the q filter emits (\\xXX,
\\uXXXX, raw UTF-8 above U+FFFF) and the YAML 1.1 look-alikes (012, no, 1e3) are also
checked in a real Envoy's /config_dump.
"""

from __future__ import annotations

import dataclasses
import json
import string
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from harness import Envoy, HttpBackend, free_ports, http_get
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdsgen import render as render_mod
from xdsgen.cli import main
from xdsgen.errors import InventoryError, RenderError
from xdsgen.model import Model
from xdsgen.pipeline import load_model, render, write_plain
from xdsgen.render import load_yaml, render_bootstrap
from xdsgen.safeyaml import _SUSPICIOUS_RE as SUSPICIOUS
from xdsgen.safeyaml import suspicious_character

HERE = Path(__file__).resolve().parent

# The characters that break naive YAML templating, plus the ones the loader must refuse.
ATTACK_CHARS = list(
    "\"'\\\n\r\t#:{}[]&*!|>%@`,?-~ "
    "\x00\x01\x1b\x7f\x85\xa0\u2028\u2029\ufeff\ufffe"
    "\u202e\u200b\U0001f600\U00010000\U0010fffd"
)
ATTACK_STRINGS = [
    "\n",
    "a\nb: c",
    ": ",
    "a: b",
    "#",
    "a #b",
    "{",
    "{a: b}",
    "[",
    "&anchor",
    "*alias",
    "!!python/object:os.system",
    "!!python/object/apply:os.system [id]",
    "---",
    "...",
    "'",
    '"',
    "\\",
    "\\n",
    "n",
    "no",
    "yes",
    "on",
    "off",
    "~",
    "null",
    "true",
    "012",
    "0x1F",
    "1e3",
    "0o17",
    "1_000",
    ".inf",
    ".nan",
    "2001-01-01",
    "=",
    "<<",
    "%YAML 1.1",
    "? a",
    "- a",
    "|",
    ">",
    "@",
    "`",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\x00",
    "\U0001f600",
    "\U0010fffd",
    "\u202e",
    "\u200b",
    "\x1b[31m",
    "\x7f",
    "\x9f",
    "é",
    "\u00a0",
    "x" * 10240,
]
PLACEHOLDER = "zq{:03d}x"


# --------------------------------------------------------------------------- the pipeline


def inventory_for(v: dict[str, Any]) -> dict[str, Any]:
    """One inventory using every string field; `v` holds the strings."""
    return {
        "version": 1,
        "envoy": {
            "admin": "127.0.0.1:15001",
            "access_log": v["access_log"],
            "node_id": v["node_id"],
            "container_config_dir": v["container_dir"],
        },
        "listen": {
            "ipv4": {"address": "127.0.0.1", "http": 8080, "https": 8443},
            "ipv6": {"address": "::1", "http": 8080, "https": 8443},
        },
        "upstreams": {
            v["up0"]: "127.0.0.1:3000",
            v["up1"]: {
                "endpoints": [f"{v['host']}:443"],
                "connect_timeout": "2s",
                "tls": {"sni": v["sni"], "ca": v["ca"]},
            },
            v["up2"]: "[::1]:3002",
        },
        "certificates": {v["cert_name"]: {"cert": v["cert"], "key": v["key"]}},
        "http": [
            {
                "domains": [v["domain"]],
                "routes": [
                    {"prefix": v["prefix"], "upstream": v["up0"], "rewrite": v["rewrite"]},
                    {"path": v["path"], "upstream": v["up1"], "timeout": "0s"},
                ],
            },
            {
                "domains": [v["tls_domain"]],
                "tls": v["cert_name"],
                "routes": [
                    {"prefix": v["prefix2"], "upstream": v["up1"], "websocket": True},
                ],
            },
        ],
        "tls_passthrough": [{"sni": [v["pass_sni"]], "upstream": v["up2"]}],
        "tcp": [{"port": 9000, "upstream": v["up0"]}],
        "udp": [{"port": 9000, "upstream": v["up2"]}],
    }


FIELDS = [
    "access_log",
    "node_id",
    "container_dir",
    "up0",
    "up1",
    "up2",
    "host",
    "sni",
    "ca",
    "cert_name",
    "cert",
    "key",
    "domain",
    "tls_domain",
    "prefix",
    "rewrite",
    "path",
    "prefix2",
    "pass_sni",
]


def placeholders(values: dict[str, str]) -> dict[str, str]:
    """Plain stand-ins, valid in every field. Upstream names keep their sort order (the
    model sorts clusters by name) so both models line up entry by entry."""
    out: dict[str, str] = {}
    for index, field in enumerate(FIELDS):
        word = PLACEHOLDER.format(index + 10)
        if field in ("domain", "tls_domain", "pass_sni", "sni", "host"):
            word += ".example"
        elif field in (
            "access_log",
            "container_dir",
            "ca",
            "cert",
            "key",
            "prefix",
            "rewrite",
            "path",
            "prefix2",
        ):
            word = "/" + word
        out[field] = word
    ups = sorted(["up0", "up1", "up2"], key=lambda f: values[f])
    for rank, field in enumerate(ups):
        out[field] = PLACEHOLDER.format(rank + 1)
    return out


def _escape_for_yaml(match: Any) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def write(tmp: Path, name: str, data: dict[str, Any]) -> Path:
    """The inventory as JSON (valid YAML), raw UTF-8 except what a YAML reader would not
    take literally: those as YAML escapes, so the loader sees exactly these strings.
    (yaml.safe_dump writes a raw U+0085 inside quotes, which reads back as a space.)"""
    text = json.dumps(data, ensure_ascii=False)  # one line: no raw newline to escape
    text = SUSPICIOUS.sub(_escape_for_yaml, text)
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def rendered_docs(model: Model) -> dict[str, Any]:
    files = dict(render(model).files)  # verify runs here, as in production
    files["bootstrap.yaml"] = render_bootstrap(model)
    docs = {name: load_yaml(text) for name, text in files.items()}
    for doc in docs.values():
        doc.pop("version_info", None)  # a hash of the text: differs by construction
    return docs


def model_pairs(a: Any, b: Any, out: dict[str, str]) -> None:
    """Walk two models of the same shape; map each string of `a` to the one of `b`."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b)
        for f in dataclasses.fields(a):
            if f.name != "warnings":
                model_pairs(getattr(a, f.name), getattr(b, f.name), out)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            model_pairs(x, y, out)
    elif isinstance(a, str):
        assert isinstance(b, str)
        if a != b:
            assert out.setdefault(a, b) == b, f"{a!r} stands for both {out[a]!r} and {b!r}"
    else:
        assert a == b, (a, b)


def substitute(tree: Any, whole: dict[str, str], parts: list[tuple[str, str]]) -> Any:
    if isinstance(tree, dict):
        return {substitute(k, whole, parts): substitute(v, whole, parts) for k, v in tree.items()}
    if isinstance(tree, list):
        return [substitute(x, whole, parts) for x in tree]
    if isinstance(tree, str):
        if tree in whole:
            return whole[tree]
        for old, new in parts:  # paths the templates build: envoy_dir + "/rds_x.yaml"
            tree = tree.replace(old, new)
        return tree
    return tree


def check(tmp: Path, values: dict[str, str]) -> str:
    """'accepted' (and the render is exact) or 'rejected' (with clean messages)."""
    hostile = write(tmp, "hostile.yaml", inventory_for(values))
    try:
        hostile_model = load_model(str(hostile), config_dir=str(tmp / "out"))
    except InventoryError as exc:
        assert exc.problems
        for problem in exc.problems:
            text = problem.format()
            assert problem.line >= 1 and problem.column >= 1, text
            assert problem.path or problem.message.startswith("YAML syntax error"), text
            # A message never carries a raw control, bidi or invisible character.
            assert suspicious_character(text) is None, repr(text)
        return "rejected"
    plain_values = placeholders(values)
    plain = write(tmp, "plain.yaml", inventory_for(plain_values))
    plain_model = load_model(str(plain), config_dir=str(tmp / "out"))
    mapping: dict[str, str] = {}
    model_pairs(plain_model, hostile_model, mapping)
    parts = sorted(((k, v) for k, v in mapping.items() if "zq" in k), key=lambda kv: -len(kv[0]))
    expected = substitute(rendered_docs(plain_model), mapping, parts)
    got = rendered_docs(hostile_model)
    assert got == expected
    # And the values are the inventory's own, where the model keeps them verbatim.
    rds = got["rds_http_ipv4.yaml"]["resources"][0]["virtual_hosts"][0]["routes"]
    assert rds[0]["match"]["prefix"] == values["prefix"]
    assert rds[0]["route"]["prefix_rewrite"] == values["rewrite"]
    assert rds[1]["match"]["path"] == values["path"]
    assert sorted(c["name"] for c in got["cds.yaml"]["resources"]) == sorted(
        values[u] for u in ("up0", "up1", "up2")
    )
    assert got["bootstrap.yaml"]["node"]["id"] == values["node_id"]
    return "accepted"


# --------------------------------------------------------------------------- strategies


# Printable characters a value may hold, YAML's syntax characters first among them.
YAML_SYNTAX = [*"\"'\\#:{}[]&*!|>%@`,?-~=", "\U0001f600", "\U0010fffd", "é", "\u00a0"]
SAFE_CHAR = st.one_of(
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn")),
    st.sampled_from(YAML_SYNTAX),
    st.sampled_from(list(string.ascii_letters + string.digits + "/._-")),
)
ANY_CHAR = st.one_of(
    st.characters(blacklist_categories=("Cs",)),  # str cannot hold Cs
    st.sampled_from(ATTACK_CHARS),
)

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
HOSTNAME = (
    st.lists(_LABEL, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda h: not h.replace(".", "").isdigit())
)
LOOKALIKES = [
    "n",
    "no",
    "yes",
    "on",
    "off",
    "null",
    "true",
    "012",
    "0x1F",
    "1e3",
    "0o17",
    "1_000",
    "1.5",
    "0b11",
]
NAME = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True), st.sampled_from(LOOKALIKES)
)


def _path(chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.text(chars, min_size=1, max_size=24).map(lambda t: "/" + t)


# What each field normally holds (valid, but with every character YAML could trip on) ...
_PATH_FIELDS = ("access_log", "ca", "cert", "key", "prefix", "rewrite", "path", "prefix2")
SAFE: dict[str, st.SearchStrategy[str]] = {
    **{f: _path(SAFE_CHAR) for f in _PATH_FIELDS},
    # posixpath.join("/a/", "x") is "/a/x": the placeholder comparison would differ.
    "container_dir": _path(SAFE_CHAR).filter(lambda p: not p.endswith("/")),
    **{f: NAME for f in ("node_id", "up0", "up1", "up2", "cert_name")},
    "host": HOSTNAME.filter(lambda h: "." in h or h.isalpha()),
    "sni": HOSTNAME,
    "domain": st.one_of(HOSTNAME, st.sampled_from(["*", "*.example.com"])),
    "tls_domain": HOSTNAME.map(lambda h: "tls." + h),
    "pass_sni": HOSTNAME.map(lambda h: "pass." + h),
}
# ... and, in one field per example, anything at all.
_ANY = st.one_of(st.text(ANY_CHAR, max_size=24), st.sampled_from(ATTACK_STRINGS[:-1]))
HOSTILE: dict[str, st.SearchStrategy[str]] = {
    f: (_ANY.map(lambda t: "/" + t) if f in _PATH_FIELDS or f == "container_dir" else _ANY)
    for f in FIELDS
}


@st.composite
def VALUES(draw: Any) -> dict[str, str]:
    values = {f: draw(SAFE[f]) for f in FIELDS}
    if draw(st.booleans()):
        field = draw(st.sampled_from(FIELDS))
        values[field] = draw(HOSTILE[field])
    for field in ("domain", "tls_domain", "pass_sni", "sni", "host"):
        # Host names are case-insensitive and the model lowercases SNI names.
        values[field] = values[field].lower()
    return values


def base_values() -> dict[str, str]:
    return {
        "access_log": "/var/log/envoy/access.log",
        "node_id": "router",
        "container_dir": "/etc/envoy",
        "up0": "app",
        "up1": "nas",
        "up2": "ntp",
        "host": "nas.lan",
        "sni": "nas.example.com",
        "ca": "/etc/ssl/ca.pem",
        "cert_name": "site",
        "cert": "/etc/ssl/site.pem",
        "key": "/etc/ssl/site.key",
        "domain": "app.example.com",
        "tls_domain": "tls.example.com",
        "prefix": "/",
        "rewrite": "/",
        "path": "/metrics",
        "prefix2": "/",
        "pass_sni": "pass.example.com",
    }


# --------------------------------------------------------------------------- tests


def test_base_inventory_round_trips(tmp_path: Path) -> None:
    assert check(tmp_path, base_values()) == "accepted"


def test_property_hostile_strings_never_change_structure(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    outcomes: Counter[str] = Counter()
    tmp = tmp_path_factory.mktemp("prop")

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(VALUES())
    def run(values: dict[str, str]) -> None:
        ups = [values["up0"], values["up1"], values["up2"]]
        if len({u.lower() for u in ups}) < 3:
            values = {**values, "up1": values["up1"] + "_b", "up2": values["up2"] + "_c"}
        if any("zq" in v for v in values.values()) or values["container_dir"].endswith("/"):
            return
        outcomes[check(tmp, values)] += 1

    run()
    # The strategy must reach the renderer often, or the property proves little.
    assert outcomes["accepted"] >= 40, outcomes
    assert outcomes["rejected"] >= 10, outcomes


@pytest.mark.parametrize("field", FIELDS)
def test_hand_written_attacks(field: str, tmp_path: Path) -> None:
    """Each attack in each field: rejected with a clean message, or exact."""
    outcomes = {}
    for attack in ATTACK_STRINGS:
        values = base_values()
        if field in (
            "access_log",
            "container_dir",
            "ca",
            "cert",
            "key",
            "prefix",
            "rewrite",
            "path",
            "prefix2",
        ):
            values[field] = "/" + attack
        elif field in ("tls_domain", "pass_sni"):
            values[field] = attack + ".example.com"
        else:
            values[field] = attack
        if field == "container_dir" and values[field].endswith("/"):
            continue
        if field in ("domain", "tls_domain", "pass_sni", "sni", "host"):
            # Host names are case-insensitive and the model lowercases SNI names.
            values[field] = values[field].lower()
        outcomes[attack] = check(tmp_path, values)
    # Characters no value may contain are refused wherever they appear.
    for attack in (
        "\n",
        "a\nb: c",
        "\x85",
        "\u2028",
        "\u2029",
        "\ufeff",
        "\x00",
        "\u202e",
        "\u200b",
        "\x1b[31m",
        "\x7f",
        "\x9f",
    ):
        assert outcomes[attack] == "rejected", (field, attack)
    assert outcomes["x" * 10240] == "rejected"  # longer than any field allows
    if field in ("prefix", "path", "prefix2", "rewrite"):
        # URL paths keep YAML syntax characters exactly (no spaces: they cannot match).
        for attack in (
            "#",
            "{a:b}",
            "&anchor",
            "*alias",
            "!!python/object:os.system",
            "---",
            "'",
            '"',
            "\\",
            "012",
            "no",
            "~",
            "0x1F",
            "1e3",
            "\U0001f600",
            "é",
        ):
            outcome = check(tmp_path, {**base_values(), field: "/" + attack})
            assert outcome == "accepted", (field, attack)
    if field in ("up0", "up1", "up2", "node_id", "cert_name"):
        # YAML 1.1 look-alikes are fine names once quoted: they stay strings.
        for attack in (
            "n",
            "no",
            "yes",
            "on",
            "off",
            "null",
            "true",
            "012",
            "0x1F",
            "1e3",
            "0o17",
            "1_000",
        ):
            assert outcomes[attack] == "accepted", (field, attack)
    if field in ("access_log", "cert", "key", "ca", "container_dir"):
        for attack in (
            "a: b",
            "#",
            "{a: b}",
            "&anchor",
            "*alias",
            "---",
            "'",
            '"',
            "\\",
            "\U0001f600",
            "\U0010fffd",
            "\u00a0",
        ):
            assert outcomes[attack] == "accepted", (field, attack)


def test_long_values_round_trip_or_are_refused(tmp_path: Path) -> None:
    assert check(tmp_path, {**base_values(), "prefix": "/" + "a" * 2047}) == "accepted"
    assert check(tmp_path, {**base_values(), "prefix": "/" + "a" * 2048}) == "rejected"
    assert check(tmp_path, {**base_values(), "cert": "/" + "é" * 4095}) == "accepted"
    assert check(tmp_path, {**base_values(), "cert": "/" + "é" * 4096}) == "rejected"


def test_quote_filter_escapes_every_unsafe_character() -> None:
    """The filter alone, on characters the loader never lets through: PyYAML reads back
    the exact string (never a surrogate pair for U+10000 and above)."""
    from xdsgen.render import yaml_quote

    every_bmp = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
    samples = [every_bmp, "\U00010000\U0001f600\U0010ffff", '"\\\n\r\t\x00\x85\u2028\ufeff']
    for value in samples:
        text = yaml_quote(value)
        assert load_yaml(f"k: {text}\n") == {"k": value}
        assert "\n" not in text and "\r" not in text
    assert yaml_quote("\U0001f600") == '"\U0001f600"'  # raw UTF-8, not \\uD83D\\uDE00
    with pytest.raises(RenderError, match="lone surrogate"):
        yaml_quote("a\udc80")


# --------------------------------------------------------------------------- verify


def test_verify_mismatch_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A template or filter bug that changes a value or the structure: render and apply
    refuse with RenderError (exit 1) and the live directory is left alone."""
    inventory = write(
        tmp_path,
        "inventory.yaml",
        {
            "version": 1,
            "envoy": {"access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
            "upstreams": {"012": "127.0.0.1:3000"},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/a\\tb", "upstream": "012"}]}],
        },
    )
    live = tmp_path / "live"
    assert CliRunner().invoke(main, ["render", str(inventory), "-o", str(live)]).exit_code == 0
    (live / "lds.yaml").write_text("# the live file\n")
    before = {p.name: p.read_bytes() for p in live.iterdir()}

    real_q = render_mod.yaml_quote
    env = render_mod.environment()

    def off_by_one(value: object) -> Any:  # drops the last character of paths
        if isinstance(value, str) and value.startswith("/") and len(value) > 1:
            return real_q(value[:-1])
        return real_q(value)

    def unquoted(value: object) -> Any:  # prints values bare: 012 becomes the number 10
        return render_mod._Safe(str(value))

    def naive(value: object) -> Any:  # quotes without escaping: \t becomes a tab
        return render_mod._Safe(f'"{value}"')

    for bug in (off_by_one, unquoted, naive):
        monkeypatch.setitem(env.filters, "q", bug)
        with pytest.raises(RenderError, match="an xdsgen bug, please report it; nothing was"):
            render(load_model(str(inventory)))
        for args in (
            ["render", str(inventory), "-o", str(live)],
            ["apply", str(inventory), "--config-dir", str(live), "--no-envoy-check"],
        ):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 1, (bug, result.output)
            assert isinstance(result.exception, SystemExit)
            assert "an xdsgen bug, please report it; nothing was written" in result.output
            assert "Traceback" not in result.output
            assert {p.name: p.read_bytes() for p in live.iterdir()} == before


# --------------------------------------------------------------------------- real Envoy

ODD_PREFIX = "/a:b#c{d}[e]&f*g!!python/object---'\"\\~012é\U0001f600\u00a0x"
ODD_NAMES = ["012", "no", "1e3", "0x1F", "on", "null", "true", "1_000", "0o17", "yes"]
ESCAPED_PREFIX = '/\x85|\u2028|\u2029|\ufeff|\x01|\t|\x7f|\x9f|\ufffe|\U0010fffd|"|\\'


@pytest.fixture(scope="module")
def odd_envoy(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("odd-envoy")
    admin, http = free_ports(2)
    backend = HttpBackend("odd")
    log = tmp / "log #{x}: &a *b '\"é\U0001f600.log"
    data = {
        "version": 1,
        "envoy": {"admin": f"127.0.0.1:{admin}", "access_log": str(log), "node_id": "no"},
        "listen": {"ipv4": {"address": "127.0.0.1", "http": http}},
        "upstreams": {name: backend.endpoint for name in ODD_NAMES},
        "http": [
            {
                "domains": ["*"],
                "routes": [
                    {"prefix": ODD_PREFIX, "upstream": "012", "rewrite": "/r#{x}&'\"é"},
                    *({"prefix": f"/{name}/", "upstream": name} for name in ODD_NAMES[1:]),
                ],
            }
        ],
    }
    inventory = write(tmp, "inventory.yaml", data)
    config = tmp / "config"
    model = load_model(str(inventory), config_dir=str(config))
    first = render(model)
    write_plain(str(config), first)
    (tmp / "bootstrap.yaml").write_text(render_bootstrap(model))
    envoy = Envoy(tmp / "bootstrap.yaml", admin, tmp / "envoy.log").start()
    try:
        envoy.wait_versions(first)
        yield envoy, model, http, log
    finally:
        envoy.stop()
        backend.close()


def _routes(envoy: Envoy) -> list[dict[str, Any]]:
    dump = json.loads(envoy.admin("/config_dump?resource=dynamic_route_configs"))
    return dump["configs"][0]["route_config"]["virtual_hosts"][0]["routes"]


@pytest.mark.envoy
def test_envoy_reads_odd_values_exactly(odd_envoy: Any) -> None:
    envoy, _, http, log = odd_envoy
    dump = json.loads(envoy.admin("/config_dump?resource=dynamic_active_clusters"))
    assert sorted(c["cluster"]["name"] for c in dump["configs"]) == sorted(ODD_NAMES)
    routes = _routes(envoy)
    assert routes[0]["match"] == {"prefix": ODD_PREFIX}
    assert routes[0]["route"]["cluster"] == "012"
    assert routes[0]["route"]["prefix_rewrite"] == "/r#{x}&'\"é"
    assert [r["route"]["cluster"] for r in routes[1:]] == ODD_NAMES[1:]
    info = json.loads(envoy.admin("/server_info"))
    assert info["node"]["id"] == "no"
    # The access log lands at the odd path exactly, created by Envoy itself.
    status, _, _ = http_get("127.0.0.1", http, "/no/x", {"Host": "a"})
    assert status == 200
    envoy.wait_for(lambda: log.exists() and log.stat().st_size > 0, what="access log at odd path")


@pytest.mark.envoy
def test_envoy_reads_our_escapes_like_pyyaml(odd_envoy: Any) -> None:
    """Characters the loader refuses still get escaped by q; yaml-cpp must read \\xXX,
    \\uXXXX and raw non-BMP UTF-8 to the same code points PyYAML does."""
    envoy, model, _, _ = odd_envoy
    rc = model.route_configs[0]
    vh = rc.virtual_hosts[0]
    routes = (dataclasses.replace(vh.routes[0], value=ESCAPED_PREFIX), *vh.routes[1:])
    changed = dataclasses.replace(
        model,
        route_configs=(
            dataclasses.replace(rc, virtual_hosts=(dataclasses.replace(vh, routes=routes),)),
        ),
    )
    rendered = render(changed)
    text = rendered.files["rds_http_ipv4.yaml"]
    assert "\\x85" in text and "\\u2028" in text and "\\uFEFF" in text and "\U0010fffd" in text
    write_plain(changed.envoy.config_dir, rendered)
    envoy.wait_for(
        lambda: _routes(envoy)[0]["match"].get("prefix") == ESCAPED_PREFIX,
        what="the escaped prefix in /config_dump",
    )
