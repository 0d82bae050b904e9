"""`xdsgen import` carries what the inventory cannot say over as `patches`, only where that
makes the draft do what the original does; what it cannot carry stays a difference, as
loud as it was. (tests/test_import_equivalence.py runs the patched drafts in real Envoy.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from xdsgen.cli import main
from xdsgen.importer import import_files, import_to
from xdsgen.pipeline import load_model

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
RBAC = {
    "name": "envoy.filters.http.rbac",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {
            "action": "DENY",
            "policies": {
                "admin": {
                    "permissions": [{"url_path": {"path": {"prefix": "/admin"}}}],
                    "principals": [{"any": True}],
                }
            },
        },
    },
}
TLS_INSPECTOR = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3."
        "TlsInspector"
    },
}


def hcm(filters: list[Any], domains: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM,
            "stat_prefix": "http",
            "http_filters": filters,
            "route_config": {
                "virtual_hosts": [
                    {
                        "name": domains[0],
                        "domains": domains,
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "web"}}],
                    }
                ]
            },
            **extra,
        },
    }


def http_listener(filters: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "@type": LISTENER,
        "name": "http",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
        "filter_chains": [{"filters": [hcm(filters, ["*"], **extra)]}],
    }


def tls_chain(name: str, filters: list[Any]) -> dict[str, Any]:
    return {
        "filter_chain_match": {"server_names": [name]},
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                "DownstreamTlsContext",
                "common_tls_context": {
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": f"/etc/ssl/{name}.crt"},
                            "private_key": {"filename": f"/etc/ssl/{name}.key"},
                        }
                    ]
                },
            },
        },
        "filters": [hcm(filters, [name])],
    }


def cluster(name: str = "web", **extra: Any) -> dict[str, Any]:
    endpoints = extra.pop("endpoints", [{"address": "127.0.0.1", "port_value": 3000}])
    return {
        "@type": CLUSTER,
        "name": name,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": e}}} for e in endpoints
                    ]
                }
            ],
        },
        **extra,
    }


def write(tmp_path: Path, listeners: list[Any], clusters: list[Any]) -> list[str]:
    lds, cds = tmp_path / "lds.yaml", tmp_path / "cds.yaml"
    lds.write_text(yaml.safe_dump({"resources": listeners}))
    cds.write_text(yaml.safe_dump({"resources": clusters}))
    return [str(lds), str(cds)]


def lines(result: Any) -> list[str]:
    return [d.line() for d in result.differences]


# --------------------------------------------------------------------------- access


def test_an_access_filter_is_carried_whole_with_its_router(tmp_path: Path) -> None:
    paths = write(tmp_path, [http_listener([RBAC, ROUTER])], [cluster()])
    result = import_files(paths)
    assert result.equivalent, lines(result)
    (patch,) = result.patches
    assert patch.line() == "patched: connection manager http_ipv4: http_filters"
    assert patch.merge == {"http_filters": [RBAC, ROUTER]}


def test_an_access_filter_of_one_of_two_tls_chains_stays_loud(tmp_path: Path) -> None:
    """The draft's two certificates share one connection manager per listener: a patch
    there would refuse /admin on the other host too, so none is written."""
    https = {
        "@type": LISTENER,
        "name": "https",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 443}},
        "listener_filters": [TLS_INSPECTOR],
        "filter_chains": [tls_chain("a.example", [RBAC, ROUTER]), tls_chain("b.example", [ROUTER])],
    }
    result = import_files(write(tmp_path, [https], [cluster()]))
    assert result.patches == []
    (loud,) = [d for d in result.differences if d.loud]
    assert loud.line().startswith("DIFFERENCE (access): ")
    assert (
        "HTTP filter envoy.filters.http.rbac (http_filters[0]) is not carried over" in loud.line()
    )
    # The same filter on both chains is carried.
    same = {
        **https,
        "filter_chains": [tls_chain(n, [RBAC, ROUTER]) for n in ("a.example", "b.example")],
    }
    result = import_files(write(tmp_path, [same], [cluster()]))
    assert result.equivalent, lines(result)
    assert [p.line() for p in result.patches] == [
        "patched: connection manager https_ipv4: http_filters"
    ]


def test_a_filter_naming_a_cluster_the_draft_has_not_is_not_carried(tmp_path: Path) -> None:
    authz = {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}},
        },
    }
    result = import_files(write(tmp_path, [http_listener([authz, ROUTER])], [cluster()]))
    assert result.patches == []
    assert [d.topic for d in result.differences] == ["auth"]
    # With its cluster in the draft (an HTTP/2 one, for gRPC) it is carried.
    grpc = {
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                "HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    }
    paths = write(tmp_path, [http_listener([authz, ROUTER])], [cluster(), cluster("authz", **grpc)])
    result = import_files(paths)
    assert result.equivalent, lines(result)
    # The cluster's HTTP/2 is said by its key (h2), the filter by a patch.
    assert result.inventory["upstreams"]["authz"]["h2"] is True
    assert [p.line() for p in result.patches] == [
        "patched: connection manager http_ipv4: http_filters",
    ]


# --------------------------------------------------------------------------- shapes


def test_a_v2_filter_config_is_not_carried(tmp_path: Path) -> None:
    v2 = {"name": "envoy.cors", "config": {}}
    result = import_files(write(tmp_path, [http_listener([v2, ROUTER])], [cluster()]))
    assert result.patches == []
    assert any("HTTP filter envoy.cors" in line for line in lines(result))


def test_v2_router_names_become_their_v3_form(tmp_path: Path) -> None:
    paths = write(tmp_path, [http_listener([RBAC, {"name": "envoy.router"}])], [cluster()])
    result = import_files(paths)
    assert result.equivalent, lines(result)
    assert result.patches[0].merge["http_filters"][1] == ROUTER


def test_envoy_refusing_a_field_leaves_only_that_field_out(tmp_path: Path) -> None:
    paths = write(
        tmp_path,
        [http_listener([ROUTER], server_name="edge", stream_idle_timeout="not a duration")],
        [cluster()],
    )
    result = import_files(paths)
    assert [p.line() for p in result.patches] == [
        "patched: connection manager http_ipv4: server_name"
    ]
    (left,) = lines(result)
    assert "http_connection_manager.stream_idle_timeout is not carried over" in left
    (note,) = [n.line() for n in result.notes if "Envoy refuses it" in n.line()]
    assert note.startswith(
        "note: stream_idle_timeout is not patched into connection manager http_ipv4: Envoy "
        "refuses it: "
    )
    assert "\n" not in note and "{" not in note.split("Envoy refuses it: ", 1)[1]


def test_without_envoy_the_patches_are_written_with_a_note(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr("xdsgen.envoycheck.find_envoy", lambda: None)
    paths = write(tmp_path, [http_listener([ROUTER], server_name="edge")], [cluster()])
    result = import_files(paths)
    assert result.equivalent and len(result.patches) == 1
    assert any(
        "not checked by Envoy here (no envoy binary found)" in n.line() for n in result.notes
    )


# --------------------------------------------------------------------------- clusters


def test_endpoint_priorities_weights_and_hostnames_go_over_as_the_whole_list(
    tmp_path: Path,
) -> None:
    endpoints = [
        {
            "locality": {"zone": "a"},
            "load_balancing_weight": 50,
            "lb_endpoints": [
                {
                    "endpoint": {
                        "address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}},
                        "hostname": "one.lan",
                    }
                }
            ],
        },
        {
            "locality": {"zone": "b"},
            "load_balancing_weight": 25,
            "priority": 1,
            "lb_endpoints": [
                {
                    "endpoint": {
                        "address": {"socket_address": {"address": "10.0.0.2", "port_value": 80}}
                    }
                }
            ],
        },
        # Priority 1 is the draft's backup; no inventory key says a priority 2.
        {
            "locality": {"zone": "c"},
            "priority": 2,
            "lb_endpoints": [
                {
                    "endpoint": {
                        "address": {"socket_address": {"address": "10.0.0.3", "port_value": 80}}
                    }
                }
            ],
        },
    ]
    web = cluster()
    web["load_assignment"]["endpoints"] = endpoints
    result = import_files(write(tmp_path, [http_listener([ROUTER])], [web]))
    assert result.equivalent, lines(result)
    assert result.inventory["upstreams"]["web"]["backup"] == ["10.0.0.2:80"]
    (patch,) = result.patches
    # The list replaces the draft's; the spill-over factor and the ejection xdsgen adds for
    # a backup are removed (the original has neither).
    assert patch.merge == {
        "load_assignment": {"endpoints": endpoints, "policy": {"overprovisioning_factor": None}},
        "outlier_detection": None,
    }
    # The locality weights travel with the list: no note says they do not.
    assert not any("locality weights" in n.line() for n in result.notes)
    bare = import_files(write(tmp_path, [http_listener([ROUTER])], [web]), patches=False)
    assert any("locality weights are not carried over" in n.line() for n in bare.notes)
    assert {d.message.split(":")[0] for d in bare.differences} >= {
        "endpoints of priority 2 only take over when the others fail; the draft balances over all "
        "endpoints",
    }


def test_upstream_tls_fields_merge_into_the_drafts_tls_socket(tmp_path: Path) -> None:
    secured = cluster(
        transport_socket={
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                "UpstreamTlsContext",
                "sni": "app.lan",
                "allow_renegotiation": True,
            },
        }
    )
    result = import_files(write(tmp_path, [http_listener([ROUTER])], [secured]))
    assert result.equivalent, lines(result)
    assert result.patches[0].merge == {
        "transport_socket": {"typed_config": {"allow_renegotiation": True}}
    }


# --------------------------------------------------------------------------- the draft


def test_the_draft_says_where_each_patch_came_from(tmp_path: Path) -> None:
    paths = write(
        tmp_path,
        [http_listener([RBAC, ROUTER])],
        [cluster(circuit_breakers={"thresholds": [{"max_connections": 8}]})],
    )
    out = tmp_path / "inventory.yaml"
    result, text = import_to(paths, str(out))
    assert result.equivalent
    assert "# 2 patches at the end carry over what the inventory cannot say." in text
    tail = text.split("\npatches:\n", 1)[1]
    assert tail.startswith(
        f"# from {paths[1]}: cluster 'web'\n- cluster: web\n  merge:\n    circuit_breakers:"
    )
    assert f"# from {paths[0]}: listener 'http' filter_chains[0]\n- connection_manager: " in tail
    assert "they carry no other safety promise" in text
    load_model(str(out))


def test_cli_lists_each_patch_and_no_patches_leaves_them_out(tmp_path: Path) -> None:
    paths = write(tmp_path, [http_listener([RBAC, ROUTER])], [cluster()])
    runner = CliRunner()
    patched = runner.invoke(main, ["import", *paths, "-o", str(tmp_path / "a.yaml")])
    assert patched.exit_code == 0, patched.output
    assert "patched: connection manager http_ipv4: http_filters" in patched.stderr.splitlines()
    assert patched.stderr.splitlines()[-1] == "the draft behaves like the original (with 1 patch)"
    clean = runner.invoke(main, ["import", *paths, "-o", str(tmp_path / "b.yaml"), "--no-patches"])
    assert clean.exit_code == 7, clean.output
    assert "patched:" not in clean.stderr
    assert clean.stderr.startswith("DIFFERENCE (access): ")
    assert "patches" not in yaml.safe_load((tmp_path / "b.yaml").read_text())


def test_patch_values_may_hold_lines_other_values_may_not(tmp_path: Path) -> None:
    base = (
        "version: 1\nenvoy: {config_dir: /tmp/x}\nlisten:\n  ipv4: {address: 0.0.0.0, http: 80}\n"
        "upstreams: {web: 127.0.0.1:3000}\n"
        'http:\n  - domains: ["a.example"]\n    routes: [{prefix: /, upstream: web}]\n'
    )
    lua = (
        "patches:\n  - connection_manager: http_ipv4\n    merge:\n      server_name: "
        '"line one\\nline two"\n'
    )
    good = tmp_path / "good.yaml"
    good.write_text(base + lua)
    load_model(str(good))
    bad = tmp_path / "bad.yaml"
    bad.write_text(base.replace('["a.example"]', '["a.example\\nb"]'))
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code == 1 and "U+000A" in result.output


def test_patches_that_change_other_answers_are_blamed_by_resource() -> None:
    from xdsgen.importer.differences import Report, Resource
    from xdsgen.importer.patches import Evaluation, _Candidate, _changed_behaviour

    before, after = Report(), Report()
    for report in (before, after):
        report.differ("routing", "lds.yaml: listener 'http'", "an answer both drafts give")
    candidates = {
        ("listener", "https_ipv4", "listener_filters"): _Candidate({}),
        ("route", "vhost0_a.example/0", "route.retry_policy"): _Candidate({}),
    }
    same = _changed_behaviour(Evaluation(before, []), Evaluation(after, []), candidates)
    assert same == set()
    after.differ(
        "tls",
        "lds.yaml: listener 'https'",
        "TLS for a.example: the original serves HTTP; the draft refuses the connection",
        resource=Resource("listener", "https_ipv4"),
    )
    blamed = _changed_behaviour(Evaluation(before, []), Evaluation(after, []), candidates)
    assert blamed == {("listener", "https_ipv4", "listener_filters")}
    after.differ("routing", "rds.yaml", "an answer no patch names")
    blamed = _changed_behaviour(Evaluation(before, []), Evaluation(after, []), candidates)
    assert blamed == {("listener", "https_ipv4", "listener_filters")}
    anonymous = Report()
    anonymous.differ("routing", "rds.yaml", "an answer no patch names")
    blamed = _changed_behaviour(Evaluation(before, []), Evaluation(anonymous, []), candidates)
    assert blamed == set(candidates)
