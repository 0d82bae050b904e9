"""`xdsgen import`: drafts, the differences named, exit codes, and renders that round-trip."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from harness import EXAMPLE, envoy_binary

from xdsgen.cli import main
from xdsgen.envoycheck import check_with_envoy
from xdsgen.importer import ImportResult, duration_text, import_files, import_to
from xdsgen.pipeline import load_model, render, write_plain

HERE = Path(__file__).resolve().parent
CASES = HERE / "import_cases"
# Golden cases whose features import does not read back (each is a named difference):
# error pages and maintenance pages live in files import cannot recreate, HTTP/3 listeners
# are not read yet.
NOT_IMPORTED = {"error-pages", "maintenance-access", "http3"}
GOLDEN = sorted(
    p / "inventory.yaml"
    for p in (HERE / "cases").iterdir()
    if (p / "inventory.yaml").is_file() and p.name not in NOT_IMPORTED
)
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)


def pair(case: str) -> list[str]:
    return [str(CASES / case / "lds.yaml"), str(CASES / case / "cds.yaml")]


def copied(case: str, tmp_path: Path) -> list[str]:
    """A case's LDS and CDS with CERTS/ (made by the equivalence test) as /etc/ssl/."""
    for path in (CASES / case).iterdir():
        (tmp_path / path.name).write_text(path.read_text().replace("CERTS/", "/etc/ssl/"))
    return [str(tmp_path / "lds.yaml"), str(tmp_path / "cds.yaml")]


def lines(result: ImportResult) -> list[str]:
    return [d.line() for d in result.differences]


def with_text(result: ImportResult, text: str) -> list[str]:
    return [line for line in lines(result) if text in line]


def http_lds(routes: list[dict[str, Any]], **hcm: Any) -> dict[str, Any]:
    return {
        "resources": [
            {
                "@type": LISTENER,
                "name": "http",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
                "filter_chains": [
                    {
                        "filters": [
                            {
                                "name": "envoy.filters.network.http_connection_manager",
                                "typed_config": {
                                    "@type": HCM,
                                    "stat_prefix": "http",
                                    "route_config": {
                                        "virtual_hosts": [
                                            {"name": "any", "domains": ["*"], "routes": routes}
                                        ]
                                    },
                                    **hcm,
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }


def cds(*names: str, **extra: Any) -> dict[str, Any]:
    return {
        "resources": [
            {
                "@type": CLUSTER,
                "name": name,
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {
                                    "endpoint": {
                                        "address": {
                                            "socket_address": {
                                                "address": "127.0.0.1",
                                                "port_value": 3000,
                                            }
                                        }
                                    }
                                }
                            ]
                        }
                    ],
                },
                **extra,
            }
            for name in names
        ]
    }


def write(tmp_path: Path, **files: Any) -> list[str]:
    paths = []
    for name, doc in files.items():
        path = tmp_path / name.replace("_", ".")
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------- drafts


def test_v3_pair_names_every_difference(tmp_path: Path) -> None:
    out = tmp_path / "draft.yaml"
    result, text = import_to(pair("v3"), str(out), patches=False)
    assert out.read_text() == text
    assert result.problems == [] and not result.v2
    inv = yaml.safe_load(text)
    assert inv["listen"] == {"ipv4": {"address": "0.0.0.0", "http": 8080, "https": 8443}}
    # RDS is named by its path inside the container (/etc/envoy/rds.yaml), read from beside lds.
    assert inv["envoy"]["container_config_dir"] == "/etc/envoy"
    assert inv["envoy"]["config_dir"] == str(CASES / "v3")
    assert inv["envoy"]["access_log"] == "/var/log/envoy/access.log"
    assert inv["upstreams"]["web"] == {"endpoints": ["127.0.0.1:3000"], "connect_timeout": "0.25s"}
    assert inv["upstreams"]["api"]["endpoints"] == ["api1.lan:8000", "api2.lan:8000"]
    assert inv["upstreams"]["nas"] == "192.168.1.20:5001"
    assert inv["upstreams"]["dns"] == "[fd00::53]:53"
    app, default = inv["http"]
    assert app == {
        "domains": ["app.example.com"],
        "tls": "app.example.com",
        "redirect_to_https": True,
        "routes": [
            {"prefix": "/api/", "upstream": "api", "timeout": "30s"},
            {"prefix": "/", "upstream": "web"},
        ],
    }
    assert default["routes"] == [
        {"prefix": "/ws", "upstream": "web", "websocket": True},
        {"prefix": "/old/", "upstream": "web", "rewrite": "/new/"},
        {"prefix": "/", "upstream": "web"},
    ]
    assert inv["tls_passthrough"] == [{"sni": ["nas.example.com"], "upstream": "nas"}]
    assert inv["tcp"] == [{"port": 2222, "upstream": "ssh"}]
    assert inv["udp"] == [{"port": 5353, "upstream": "dns"}]
    assert not result.equivalent
    # The redirect goes to 443 in the original (no port_redirect), to 8443 in the draft.
    assert with_text(result, "the original redirects to https; the draft redirects to https port")
    assert with_text(result, "cluster 'api': lb_policy LEAST_REQUEST")
    # The health check is carried over; what the draft checks otherwise is named.
    assert inv["upstreams"]["api"]["health_check"] == {
        "path": "/healthz",
        "interval": "5s",
        "timeout": "1s",
        "unhealthy_threshold": 2,
        "healthy_threshold": 1,
    }
    assert with_text(result, "cluster 'api': health checks GET /healthz every 5s (60s without")
    assert with_text(result, "cluster 'api': panic mode below 50% healthy (Envoy's default)")
    assert with_text(result, "cluster 'api': ejects no endpoint; the draft ejects an endpoint")
    assert with_text(result, "HTTP filter envoy.filters.http.cors (http_filters[0])")
    assert with_text(result, "('everything_else') routes[0]: a route matching on safe_regex")
    # The draft's header lists every difference and note.
    header = text.split("version: 1", 1)[0]
    assert all(line in header for line in lines(result))
    assert "It behaves differently from the original (7 differences)" in header
    assert result.patches == [] and "patches" not in inv


def test_v3_pair_carries_what_it_can_as_patches(tmp_path: Path) -> None:
    out = tmp_path / "draft.yaml"
    result, text = import_to(pair("v3"), str(out))
    assert [p.line() for p in result.patches] == [
        "patched: cluster api: lb_policy, health_checks, "
        "common_lb_config.healthy_panic_threshold, outlier_detection",
        "patched: connection manager http_ipv4: http_filters",
    ]
    inv = yaml.safe_load(text)
    assert inv["patches"] == result.inventory["patches"]
    api, hcm = inv["patches"]
    assert api["cluster"] == "api" and api["merge"]["lb_policy"] == "LEAST_REQUEST"
    # The draft says the check with health_check; the patch replaces what xdsgen renders
    # for it with the original's (no no_traffic_interval, 200 only) and removes what xdsgen
    # adds that the original has not: no panic mode off, no ejection.
    assert inv["upstreams"]["api"]["health_check"]["path"] == "/healthz"
    assert api["merge"]["health_checks"][0]["http_health_check"] == {"path": "/healthz"}
    assert api["merge"]["common_lb_config"] == {"healthy_panic_threshold": None}
    assert api["merge"]["outlier_detection"] is None
    # The whole filter list, in order, router included (a merge patch replaces a list).
    assert hcm["connection_manager"] == "http_ipv4"
    assert [f["name"] for f in hcm["merge"]["http_filters"]] == [
        "envoy.filters.http.cors",
        "envoy.filters.http.router",
    ]
    # What no patch carries stays listed, the loud one first.
    assert [d.topic for d in result.differences] == ["redirect", "routing"]
    assert not with_text(result, "lb_policy") and not with_text(result, "http_filters")
    # Each patch says where it came from, in the draft itself.
    patches = text.split("\npatches:\n", 1)[1]
    assert "# from " + str(CASES / "v3" / "cds.yaml") + ": cluster 'api'\n- cluster: api" in (
        patches
    )
    assert "It behaves differently from the original (2 differences)" in text
    assert "# 2 patches at the end carry over what the inventory cannot say." in text
    load_model(str(out))  # the draft with its patches and comments is a valid inventory


def test_seed_blog_v2_imports_as_an_equivalent_draft() -> None:
    result = import_files(pair("v2"))
    assert result.equivalent, lines(result)
    assert result.v2 and "v2 names" in result.notes[0].line()
    inv = result.inventory
    # "::" with ipv4_compat: both families on the same ports.
    assert inv["listen"] == {
        "ipv4": {"address": "0.0.0.0", "http": 80, "https": 443},
        "ipv6": {"address": "::", "http": 80, "https": 443},
    }
    assert "access_log" not in inv["envoy"]  # /dev/stdout, the default (a single mapping)
    assert inv["upstreams"]["service_lede"] == {
        "endpoints": ["127.0.0.1:81"],
        "connect_timeout": "0.25s",
    }
    assert inv["upstreams"]["home_assistant"]["tls"] == {
        "sni": "homeassistant.lan",
        "verify": False,
    }
    router, lan = inv["http"]
    assert router["domains"] == ["router.example.com"] and router["redirect_to_https"]
    assert router["tls"] == "router"
    assert lan["domains"] == ["*"]
    assert {"prefix": "/ha/", "upstream": "home_assistant", "websocket": True} in lan["routes"]
    assert inv["tcp"] == [{"port": 4450, "upstream": "smb", "families": ["ipv4"]}]
    # No noise: lb_policy round_robin is ROUND_ROBIN, clusters without a type are STATIC.
    assert not [n for n in result.notes if "lb_policy" in n.line() or "STATIC" in n.line()]


@pytest.mark.envoy
@pytest.mark.parametrize("case", ["v3", "v2"])
def test_drafts_render_to_configs_envoy_accepts(tmp_path: Path, case: str) -> None:
    out = tmp_path / "draft.yaml"
    import_to(pair(case), str(out))
    model = load_model(str(out), config_dir=str(tmp_path / "config"))
    check_with_envoy(model, render(model), envoy_binary(), stand_ins=True)


@pytest.mark.parametrize(
    # patches: Envoy config the draft carries as patches (import writes them: work in hand)
    "inventory",
    [EXAMPLE, *(g for g in GOLDEN if g.parent.name != "patches")],
    ids=lambda p: p.parent.name,
)
def test_round_trip_import_of_a_render_renders_the_same(tmp_path: Path, inventory: Path) -> None:
    files = render(load_model(str(inventory)))
    config = tmp_path / "config"
    write_plain(str(config), files)
    result, _ = import_to(
        [str(config / "lds.yaml"), str(config / "cds.yaml")], str(tmp_path / "draft.yaml")
    )
    assert result.equivalent, lines(result)
    assert result.notes == []
    # What xdsgen renders (checks, ejection, retries, compression, ...) reads back into
    # keys: nothing of it is patched.
    assert result.patches == []
    again = render(load_model(str(tmp_path / "draft.yaml")))
    assert again.files == files.files


def test_single_mappings_and_lower_case_enums_import_without_noise() -> None:
    case = CASES / "single-mapping"
    result = import_files([str(case / "cds.yaml"), str(case / "lds.yaml")])  # either order
    # The one note: the draft never cuts an idle WebSocket (xdsgen's streaming-safe default).
    assert result.equivalent and [n.message for n in result.notes] == [
        "the draft never cuts this route's silent streams (WebSocket, long polling); the "
        "original's 5-minute stream idle timeout did"
    ], lines(result)
    assert result.inventory["http"][0]["routes"] == [
        {"prefix": "/", "upstream": "web", "websocket": True}
    ]


def test_wildcard_server_names_keep_their_own_certificates(tmp_path: Path) -> None:
    result = import_files(copied("wildcard-sni", tmp_path))
    assert result.equivalent, lines(result)
    tls = {tuple(v["domains"]): v["tls"] for v in result.inventory["http"]}
    certificates = result.inventory["certificates"]
    assert certificates[tls[("*.a.example",)]]["cert"] == "/etc/ssl/a.crt"
    assert certificates[tls[("*.b.example",)]]["cert"] == "/etc/ssl/b.crt"


def test_tls_is_known_by_its_type_not_its_name(tmp_path: Path) -> None:
    result = import_files(copied("tls-by-type", tmp_path))
    assert result.equivalent, lines(result)
    assert result.inventory["listen"]["ipv4"] == {"address": "0.0.0.0", "https": 443}
    assert result.inventory["http"][0]["domains"] == ["secure.example"]
    assert "tls" in result.inventory["http"][0]


def test_connection_manager_websockets_reach_every_route() -> None:
    result = import_files(pair("hcm-websocket"))
    assert result.equivalent, lines(result)
    assert all(r["websocket"] for r in result.inventory["http"][0]["routes"])


def test_a_catch_all_https_redirect_becomes_redirect_to_https(tmp_path: Path) -> None:
    result = import_files(copied("https-redirect", tmp_path))
    assert result.equivalent, lines(result)
    (app,) = result.inventory["http"]
    assert app["redirect_to_https"] is True and app["domains"] == ["app.example"]


def test_a_deny_route_left_out_is_a_loud_access_difference() -> None:
    result = import_files(pair("direct-response"))
    (loud,) = [d for d in result.differences if d.loud]
    assert loud.topic == "access"
    assert loud.line().startswith("DIFFERENCE (access): ")
    assert "prefix /admin: the original answers 403 itself; the draft proxies to 'web'" in (
        loud.message
    )
    # A patch later needs the generated resource and the original fragment.
    assert loud.resource is not None and loud.resource.kind == "route"
    assert loud.resource.name == "vhost0_any/0"
    assert loud.fragment == {"match": {"prefix": "/admin"}, "direct_response": {"status": 403}}


def test_a_second_http_port_is_a_loud_ports_difference() -> None:
    result = import_files(pair("second-http-port"))
    assert result.inventory["listen"]["ipv4"]["http"] == 80
    (loud,) = [d for d in result.differences if d.loud]
    assert loud.topic == "ports" and "ipv4 TCP port 8080" in loud.message
    assert "an inventory has one http port per family" in loud.message
    assert loud.resource is not None and loud.resource.kind == "listener"


def test_loud_differences_come_first_and_every_one_names_its_resource() -> None:
    result = import_files(pair("v3"))
    louds = [d.loud for d in result.differences]
    assert louds == sorted(louds, reverse=True)
    assert all(d.resource is not None for d in result.differences)


def test_route_config_headers_are_named_on_each_route_they_change() -> None:
    """A route configuration's header changes apply to every route; one an inventory cannot
    say (appending to the backend's own header) is named on the routes it changes."""
    result = import_files(pair("route-headers"), patches=False)
    (difference,) = result.differences
    assert difference.topic == "headers" and not difference.loud
    assert "the original appends content-security-policy" in difference.message
    assert difference.resource is not None and difference.resource.kind == "route"
    assert difference.resource.name == "vhost0_any/0"


def test_route_config_headers_are_carried_as_a_patch() -> None:
    """The header no key says is carried at the level it was set, after the draft's own
    headers there (a merge patch replaces a list: xdsgen's client headers stay)."""
    result = import_files(pair("route-headers"))
    assert result.equivalent, lines(result)
    (patch,) = result.patches
    assert patch.line() == "patched: route config http_ipv4: response_headers_to_add"
    assert result.inventory["patches"] == [
        {
            "route_config": "http_ipv4",
            "merge": {
                "response_headers_to_add": [
                    {"header": {"key": "content-security-policy", "value": "default-src 'self'"}}
                ]
            },
        }
    ]


def test_eds_files_are_followed(tmp_path: Path) -> None:
    result = import_files(pair("eds-file"))
    assert result.equivalent, lines(result)
    assert result.inventory["upstreams"]["web"]["endpoints"] == ["127.0.0.1:9999"]
    assert any("EDS endpoints read from" in n.line() for n in result.notes)


def test_a_bootstrap_is_read_directly_json_too() -> None:
    result = import_files([str(CASES / "json-bootstrap" / "envoy.json")])
    assert result.equivalent, lines(result)
    assert result.inventory["envoy"]["admin"] == "127.0.0.1:9901"
    assert [r.get("path", r.get("prefix")) for r in result.inventory["http"][0]["routes"]] == [
        "/health",
        "/",
    ]


def test_a_bootstrap_with_dynamic_resources_follows_its_files(tmp_path: Path) -> None:
    write(tmp_path, lds_yaml=http_lds([_route("/", "web")]), cds_yaml=cds("web"))
    (tmp_path / "envoy.yaml").write_text(
        yaml.safe_dump(
            {
                "admin": {"address": {"socket_address": {"address": "0.0.0.0", "port_value": 9}}},
                "dynamic_resources": {
                    "lds_config": {"path_config_source": {"path": "/etc/envoy/lds.yaml"}},
                    "cds_config": {"path": "/etc/envoy/cds.yaml"},
                },
            }
        )
    )
    result = import_files([str(tmp_path / "envoy.yaml")])
    assert result.inventory["upstreams"] == {"web": {"endpoints": ["127.0.0.1:3000"]}} or (
        result.inventory["upstreams"]["web"]["endpoints"] == ["127.0.0.1:3000"]
    )
    # An admin interface open to the network is a difference (the draft keeps it on loopback).
    (admin,) = result.differences
    assert admin.topic == "admin" and "0.0.0.0:9" in admin.message
    assert "admin" not in result.inventory["envoy"]


def _route(prefix: str, cluster: str, **action: Any) -> dict[str, Any]:
    return {"match": {"prefix": prefix}, "route": {"cluster": cluster, **action}}


def test_missing_rds_file_is_a_difference(tmp_path: Path) -> None:
    shutil.copy(CASES / "v3" / "lds.yaml", tmp_path / "lds.yaml")
    shutil.copy(CASES / "v3" / "cds.yaml", tmp_path / "cds.yaml")
    result = import_files([str(tmp_path / "lds.yaml"), str(tmp_path / "cds.yaml")])
    assert with_text(result, "RDS file /etc/envoy/rds.yaml not found")
    assert [v["domains"] for v in result.inventory["http"]] == [["app.example.com"]]


def test_an_lds_alone_says_where_the_clusters_are(tmp_path: Path) -> None:
    (lds,) = write(tmp_path, lds_yaml=http_lds([_route("/", "web")]))
    result = import_files([lds])
    assert any("add the CDS file" in n.line() for n in result.notes)
    assert with_text(result, "the original answers 503 (cluster 'web' is not in the files given)")
    assert result.problems == []


def test_duplicate_keys_are_read_as_envoy_does(tmp_path: Path) -> None:
    text = yaml.safe_dump(cds("web"), default_flow_style=False)
    assert "port_value: 3000\n" in text
    indent = text.split("port_value: 3000")[0].rsplit("\n", 1)[1]
    text = text.replace("port_value: 3000\n", f"port_value: 3000\n{indent}port_value: 3001\n")
    (path,) = write(tmp_path, cds_yaml=text)
    result = import_files([path])
    assert result.inventory["upstreams"]["web"]["endpoints"] == ["127.0.0.1:3001"]
    assert any("duplicate key 'port_value'" in n.line() for n in result.notes)


def test_unused_clusters_the_draft_cannot_have_are_notes(tmp_path: Path) -> None:
    doc = cds("web")
    doc["resources"].append({"@type": CLUSTER, "name": "odd", "type": "ORIGINAL_DST"})
    (path,) = write(tmp_path, cds_yaml=doc)
    result = import_files([path])
    assert result.equivalent
    assert any("cluster 'odd': not in the draft" in n.line() for n in result.notes)


def test_messages_are_one_visible_line(tmp_path: Path) -> None:
    routes = [
        {"match": {"prefix": "/a\nb\x1b[31m"}, "direct_response": {"status": 403}},
        _route("/", "web"),
    ]
    lds, cds_path = write(tmp_path, lds_yaml=http_lds(routes), cds_yaml=cds("web"))
    out = tmp_path / "draft.yaml"
    result, text = import_to([lds, cds_path], str(out))
    (loud,) = [line for line in lines(result) if line.startswith("DIFFERENCE")]
    assert "\n" not in loud and "\x1b" not in loud and "\\u000a" in loud
    load_model(str(out))  # the header stayed comments: the draft is valid
    assert yaml.safe_load(text)["version"] == 1


def test_durations() -> None:
    assert duration_text("0.25s") == "0.25s"
    assert duration_text({"seconds": 1, "nanos": 500000000}) == "1.5s"
    assert duration_text({"seconds": 30}) == "30s"
    assert duration_text(None) is None
    assert duration_text("-1s") is None and duration_text("soon") is None


# --------------------------------------------------------------------------- CLI


def test_cli_exit_codes_and_output(tmp_path: Path) -> None:
    runner = CliRunner()
    same = runner.invoke(main, ["import", *pair("v2")])
    assert same.exit_code == 0, same.output
    assert "upstreams:" in same.stdout
    assert "note: v2 names" in same.stderr
    assert "the draft behaves like the original" in same.stderr
    differs = runner.invoke(main, ["import", *pair("direct-response")])
    assert differs.exit_code == 7, differs.output
    first = differs.stderr.splitlines()[0]
    assert first.startswith("DIFFERENCE (access): ")
    assert "1 difference, 1 about who can reach what" in differs.stderr
    out = tmp_path / "inventory.yaml"
    assert runner.invoke(main, ["import", *pair("v2"), "-o", str(out)]).exit_code == 0
    assert oct(os.stat(out).st_mode & 0o777) == "0o644"
    again = runner.invoke(main, ["import", *pair("v2"), "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.stderr
    assert runner.invoke(main, ["import", *pair("v2"), "-o", str(out), "--force"]).exit_code == 0
    missing = runner.invoke(main, ["import", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "file not found" in missing.stderr
    assert "Traceback" not in missing.output


# --------------------------------------------------------------------------- hostile files

HOSTILE = {
    "billion-laughs": "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    + "resources: *i\n",
    "deep-yaml": "resources: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-json": '{"resources": ' + "[" * 100000 + "]" * 100000 + "}",
    "recursive-alias": "resources: &r [*r]\n",
    "merge-key": "base: &b {name: x}\nresources:\n- <<: *b\n",
    "tag": "resources: !ignore [1]\n",
    "binary": "resources:\x00\x01",
    "empty": "",
    "not-envoy": "- 1\n- 2\n",
    "syntax": "resources: [\n",
}
HOSTILE_MESSAGES = {
    "billion-laughs": "expands to more than",
    "deep-yaml": "nest",
    "deep-json": "nested too deeply",
    "recursive-alias": "recursive YAML alias",
    "merge-key": "merge keys",
    "tag": "unsupported YAML tag",
    "binary": "NUL",
    "empty": "empty",
    "not-envoy": "no listeners and no clusters",
    "syntax": "YAML syntax error",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_quickly_with_a_message(tmp_path: Path, name: str) -> None:
    path = tmp_path / (name + (".json" if "json" in name else ".yaml"))
    path.write_text(HOSTILE[name])
    started = time.monotonic()
    result = CliRunner().invoke(main, ["import", str(path)])
    assert time.monotonic() - started < 10
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert HOSTILE_MESSAGES[name] in result.stderr, result.stderr


def test_huge_files_fifos_and_directories_are_refused_before_reading(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: nothing to read, but 200 MB big
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    runner = CliRunner()
    for path, message in (
        (huge, "is at most"),
        (fifo, "not a regular file"),
        (tmp_path, "directory"),
    ):
        started = time.monotonic()
        result = runner.invoke(main, ["import", str(path)])
        assert time.monotonic() - started < 5
        assert result.exit_code == 1 and message in result.stderr, result.stderr


def test_a_hostile_referenced_file_is_refused_by_name(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "rds.yaml")
    lds = http_lds([])
    hcm = lds["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    del hcm["route_config"]
    hcm["rds"] = {"route_config_name": "r", "config_source": {"path": "/etc/envoy/rds.yaml"}}
    paths = write(tmp_path, lds_yaml=lds, cds_yaml=cds("web"))
    result = CliRunner().invoke(main, ["import", *paths])
    assert result.exit_code == 1
    assert "rds.yaml: error: is not a regular file" in result.stderr


def test_the_readme_shows_real_import_sessions(tmp_path: Path, monkeypatch: Any) -> None:
    readme = (HERE.parent / "README.md").read_text()
    section = readme.split("## Coming from a hand-written config", 1)[1].split("\n## ", 1)[0]
    sessions = section.split("    $ xdsgen import ")[1:]
    cases = ("v2", "patch-route", "v3", "v3")
    assert len(sessions) == len(cases)
    for index, (case, session) in enumerate(zip(cases, sessions)):
        command, _, rest = session.partition("\n")
        shown, _, code = rest.partition("    $ echo $?\n")
        work = tmp_path / f"{index}-{case}"
        shutil.copytree(CASES / case, work)
        monkeypatch.chdir(work)
        result = CliRunner().invoke(main, ["import", *command.split()])
        assert result.exit_code == int(code.split()[0])
        expected = [line[4:] for line in shown.splitlines()]
        assert result.stderr.splitlines() == expected
        if case == "patch-route":  # the end of its draft, as shown
            draft = section.split("The end of its draft:\n\n```yaml\n", 1)[1].split("```", 1)[0]
            assert (work / "inventory.yaml").read_text().endswith(draft)
