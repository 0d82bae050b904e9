"""Fuzz `xdsgen import`: random and mutated Envoy configs never crash it.

Every input either is refused with an xdsgen error (a message and exit 1) or gives a
result whose draft is a valid inventory (`xdsgen validate` passes on the written text).
Nothing else may escape: no traceback, whatever the file holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from harness import envoy_binary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdsgen.cli import main
from xdsgen.envoycheck import check_with_envoy
from xdsgen.errors import XdsgenError
from xdsgen.importer import import_to
from xdsgen.pipeline import load_model, render

# Hypothesis describes the nested Envoy-shaped strategies in a long repr: harmless.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
CASES = Path(__file__).resolve().parent / "import_cases"
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KEYS = [
    "resources",
    "static_resources",
    "dynamic_resources",
    "listeners",
    "clusters",
    "secrets",
    "admin",
    "name",
    "address",
    "socket_address",
    "port_value",
    "ipv4_compat",
    "protocol",
    "filter_chains",
    "default_filter_chain",
    "filter_chain_match",
    "server_names",
    "transport_protocol",
    "listener_filters",
    "filters",
    "typed_config",
    "config",
    "@type",
    "transport_socket",
    "tls_context",
    "common_tls_context",
    "tls_certificates",
    "certificate_chain",
    "private_key",
    "filename",
    "tls_certificate_sds_secret_configs",
    "tls_certificate",
    "sds_config",
    "path_config_source",
    "path",
    "rds",
    "config_source",
    "route_config_name",
    "route_config",
    "virtual_hosts",
    "domains",
    "routes",
    "match",
    "prefix",
    "safe_regex",
    "headers",
    "case_sensitive",
    "route",
    "cluster",
    "weighted_clusters",
    "prefix_rewrite",
    "timeout",
    "upgrade_configs",
    "upgrade_type",
    "enabled",
    "use_websocket",
    "redirect",
    "https_redirect",
    "port_redirect",
    "direct_response",
    "status",
    "require_tls",
    "http_filters",
    "access_log",
    "load_assignment",
    "cluster_name",
    "endpoints",
    "lb_endpoints",
    "endpoint",
    "hosts",
    "type",
    "lb_policy",
    "connect_timeout",
    "eds_cluster_config",
    "eds_config",
    "service_name",
    "sni",
    "validation_context",
    "trusted_ca",
    "udp_listener_config",
    "matcher",
    "on_no_match",
    "action",
    "priority",
    "load_balancing_weight",
    "health_status",
    "strip_any_host_port",
    "codec_type",
    "lds_config",
    "cds_config",
    "dns_lookup_family",
]
TYPES = [
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager",
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig",
    "type.googleapis.com/envoy.api.v2.Listener",
    "type.googleapis.com/udpa.type.v1.TypedStruct",
]
SCALARS = st.one_of(
    st.sampled_from(
        [
            "*",
            "/",
            "/a",
            "0.0.0.0",
            "::",
            "127.0.0.1",
            "::1",
            "a.example",
            "*.a.example",
            "web",
            "tls",
            "STATIC",
            "strict_dns",
            "EDS",
            "UDP",
            "1s",
            "0.25s",
            "-1s",
            "443",
            "ALL",
            "websocket",
            "https",
            "/etc/envoy/rds.yaml",
            "x:y",
            "",
            "a b\n\x1b",
            "envoy.filters.network.http_connection_manager",
            "envoy.router",
            *TYPES,
        ]
    ),
    st.integers(min_value=-3, max_value=70000),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=40,
)


def _message(required: dict[str, Any], optional: dict[str, Any]) -> Any:
    """A mapping shaped like an Envoy message, any field of it possibly junk."""
    junk = {k: st.one_of(v, VALUES) for k, v in optional.items()}
    return st.fixed_dictionaries(required, optional=junk)


def _documents() -> Any:
    """Envoy-shaped documents: listeners and clusters with junk anywhere in them."""
    SOCKET = _message(
        {},
        {
            "socket_address": _message(
                {},
                {
                    "address": st.sampled_from(
                        ["0.0.0.0", "::", "127.0.0.1", "x", "::ffff:1.2.3.4"]
                    ),
                    "port_value": st.one_of(st.integers(0, 70000), st.just("80")),
                    "ipv4_compat": st.booleans(),
                    "protocol": st.sampled_from(["TCP", "udp", "UDP"]),
                },
            )
        },
    )
    ROUTE = _message(
        {"match": _message({}, {"prefix": st.sampled_from(["/", "/a", "a", ""]), "path": SCALARS})},
        {
            "route": _message(
                {},
                {
                    "cluster": st.sampled_from(["web", "api", "missing"]),
                    "prefix_rewrite": SCALARS,
                    "timeout": st.sampled_from(["0s", "15s", "1.5s", "x"]),
                    "upgrade_configs": VALUES,
                },
            ),
            "redirect": _message({}, {"https_redirect": st.booleans(), "port_redirect": SCALARS}),
            "direct_response": _message({}, {"status": SCALARS}),
        },
    )
    HCM = _message(
        {"@type": st.just(TYPES[5])},
        {
            "route_config": _message(
                {},
                {
                    "virtual_hosts": st.lists(
                        _message(
                            {"domains": st.lists(SCALARS, max_size=3)},
                            {"routes": st.lists(ROUTE, max_size=3), "require_tls": SCALARS},
                        ),
                        max_size=3,
                    )
                },
            ),
            "http_filters": VALUES,
            "upgrade_configs": VALUES,
            "rds": VALUES,
        },
    )
    CHAIN = _message(
        {
            "filters": st.lists(
                _message({"typed_config": st.one_of(HCM, VALUES)}, {"name": SCALARS})
            )
        },
        {
            "filter_chain_match": _message({}, {"server_names": st.lists(SCALARS, max_size=3)}),
            "transport_socket": _message({}, {"typed_config": VALUES, "name": SCALARS}),
        },
    )
    LISTENER = _message(
        {"@type": st.just(TYPES[0]), "address": SOCKET},
        {"name": SCALARS, "filter_chains": st.lists(CHAIN, max_size=3), "listener_filters": VALUES},
    )
    CLUSTER = _message(
        {"@type": st.just(TYPES[1]), "name": st.sampled_from(["web", "api", "a b", "WEB"])},
        {
            "type": SCALARS,
            "connect_timeout": SCALARS,
            "load_assignment": _message(
                {},
                {
                    "endpoints": st.lists(
                        _message(
                            {},
                            {
                                "lb_endpoints": st.lists(
                                    _message({}, {"endpoint": _message({}, {"address": SOCKET})})
                                )
                            },
                        )
                    )
                },
            ),
            "transport_socket": VALUES,
        },
    )
    return st.one_of(
        st.fixed_dictionaries({"resources": st.lists(st.one_of(LISTENER, CLUSTER), max_size=4)}),
        st.fixed_dictionaries({"resources": st.lists(VALUES, max_size=4)}),
        st.fixed_dictionaries({"static_resources": VALUES}),
        VALUES,
    )


DOCUMENTS = st.deferred(_documents)


def _originals() -> list[tuple[str, Any]]:
    docs = []
    for case in sorted(CASES.iterdir()):
        for path in sorted(case.iterdir()):
            if path.name == "case.yaml":
                continue
            text = path.read_text()
            docs.append(
                (path.name, json.loads(text) if path.suffix == ".json" else yaml.safe_load(text))
            )
    return docs


ORIGINALS = _originals()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _mutate(doc: Any, data: st.DataObject) -> Any:
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return data.draw(VALUES)
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        operation = data.draw(st.sampled_from(["delete", "replace", "wrap", "unwrap", "text"]))
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = data.draw(VALUES)
        elif operation == "wrap":
            parent[key] = [parent[key]]
        elif operation == "unwrap" and isinstance(parent[key], list) and parent[key]:
            parent[key] = parent[key][0]
        elif operation == "text":
            parent[key] = json.dumps(parent[key])
    return doc


def _import(tmp_path: Path, docs: dict[str, Any]) -> Any:
    paths = []
    for name, doc in docs.items():
        path = tmp_path / name
        path.write_text(json.dumps(doc) if name.endswith(".json") else yaml.safe_dump(doc))
        paths.append(str(path))
    out = tmp_path / "draft.yaml"
    try:
        result, _ = import_to(paths, str(out), force=True)
    except XdsgenError:
        return None
    assert result.problems == [], [p.format() for p in result.problems]
    model = load_model(str(out))  # the written draft, header included, is a valid inventory
    if result.patches:
        # Patches are the original's own config: Envoy must accept the patched render.
        check_with_envoy(model, render(model), envoy_binary(), stand_ins=True)
    return result


@SETTINGS
@given(DOCUMENTS, DOCUMENTS)
def test_random_envoy_shaped_documents_never_crash(
    tmp_path_factory: Any, lds: Any, cds: Any
) -> None:
    _import(tmp_path_factory.mktemp("fuzz"), {"lds.yaml": lds, "cds.yaml": cds})


@SETTINGS
@given(st.data())
def test_mutated_real_configs_never_crash(tmp_path_factory: Any, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(ORIGINALS) - 1))
    name, doc = ORIGINALS[index]
    mutated = _mutate(json.loads(json.dumps(doc)), data)
    files = {name: mutated}
    if name == "lds.yaml":  # with its clusters, as a user would give them
        for other, other_doc in ORIGINALS:
            if other == "cds.yaml" and ORIGINALS.index((other, other_doc)) in (
                index - 1,
                index + 1,
            ):
                files["cds.yaml"] = other_doc
                break
    _import(tmp_path_factory.mktemp("fuzz"), files)


# The feature cases whose import writes patches.
PATCH_CASES = [
    (case.name, path.name, yaml.safe_load(path.read_text()))
    for case in sorted(CASES.iterdir())
    if (case / "case.yaml").is_file()
    and "patched" in yaml.safe_load((case / "case.yaml").read_text())
    for path in sorted(case.glob("*.yaml"))
    if path.name != "case.yaml"
]


@pytest.mark.parametrize("case", sorted({name for name, _, _ in PATCH_CASES}))
def test_patch_cases_write_patches_envoy_accepts(tmp_path: Path, case: str) -> None:
    docs = {name: doc for found, name, doc in PATCH_CASES if found == case}
    result = _import(tmp_path, docs)
    assert result is not None and result.patches


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data())
def test_mutated_patch_cases_never_crash_and_keep_valid_patches(
    tmp_path_factory: Any, data: st.DataObject
) -> None:
    case = data.draw(st.sampled_from(sorted({name for name, _, _ in PATCH_CASES})))
    docs = {name: json.loads(json.dumps(doc)) for found, name, doc in PATCH_CASES if found == case}
    name = data.draw(st.sampled_from(sorted(docs)))
    docs[name] = _mutate(docs[name], data)
    _import(tmp_path_factory.mktemp("fuzz"), docs)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=400))
def test_random_bytes_never_print_a_traceback(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "lds.yaml"
    path.write_bytes(data)
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code in (0, 1, 7), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
