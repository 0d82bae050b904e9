"""What the Gateway API export writes for Envoy Gateway, read by a real Envoy the way
Envoy Gateway v1.9.0 hands it over (no cluster here; egctl is not installed):

- a page from its ConfigMap becomes a body_format: text_format_source with inline_bytes
  for a direct response (internal/xds/translator/route.go buildXdsDirectResponseAction:
  maintenance) and text_format in a custom response's LocalResponsePolicy
  (custom_response.go buildResponseAction: error_page). Both are format strings, so the
  export writes every % as %%: Envoy must answer the page exactly as the file has it;
- a header value of a ResponseHeaderModifier goes unchanged into response_headers_to_add
  (route.go buildXdsAddedHeaders), also a format: "100%% proxied" must arrive as
  "100% proxied", and an HTTPRouteFilter's contentType becomes the Content-Type header.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Envoy, free_ports, http_get

from xdsgen.export.gateway import GatewayOptions, export_gateway_api
from xdsgen.export.source import load

pytestmark = pytest.mark.envoy

CASES = Path(__file__).parent / "export_cases"


def _objects(case: str) -> dict[str, dict[str, Any]]:
    result = export_gateway_api(load(str(CASES / case / "inventory.yaml")), GatewayOptions())
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(result.text)}


def _bootstrap(admin: int, port: int, dead: int, routes: list[Any], page: dict[str, Any]) -> Any:
    """Envoy with the export's pages and headers placed as Envoy Gateway places them."""
    error_page = {
        "name": "envoy.filters.http.custom_response",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.custom_response.v3."
            "CustomResponse",
            "custom_response_matcher": {
                "matcher_list": {
                    "matchers": [
                        {
                            "predicate": {
                                "single_predicate": {
                                    "input": {
                                        "name": "status",
                                        "typed_config": {
                                            "@type": "type.googleapis.com/envoy.type.matcher.v3."
                                            "HttpResponseStatusCodeMatchInput"
                                        },
                                    },
                                    "value_match": {"exact": "503"},
                                }
                            },
                            "on_match": {"action": page},
                        }
                    ]
                }
            },
        },
    }
    manager = {
        "stat_prefix": "eg",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
        "http_filters": [
            error_page,
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "http",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters."
                                        "network.http_connection_manager.v3.HttpConnectionManager",
                                        **manager,
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "down",
                    "connect_timeout": "0.5s",
                    "load_assignment": {
                        "cluster_name": "down",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": dead,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        },
    }


@contextlib.contextmanager
def _envoy(tmp_path: Path, routes: list[Any], page: dict[str, Any]) -> Iterator[int]:
    admin, port, dead = free_ports(3)
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(yaml.safe_dump(_bootstrap(admin, port, dead, routes, page)))
    envoy = Envoy(bootstrap, admin, tmp_path / "envoy.log").start()
    try:
        yield port
    finally:
        envoy.stop()


def test_pages_and_header_values_reach_clients_as_written(tmp_path: Path) -> None:
    pages = _objects("pages")
    access = _objects("access")
    maintenance = pages["HTTPRouteFilter/xdsgen-maintenance-vhost1-wiki.example.com"]["spec"]
    direct = maintenance["directResponse"]
    wiki_body = pages["ConfigMap/xdsgen-page-vhost1-wiki.example.com"]["data"]["response.body"]
    override = pages["BackendTrafficPolicy/xdsgen-http-vhost0-app.example.com-route-0"]["spec"][
        "responseOverride"
    ][0]["response"]
    app_body = pages["ConfigMap/xdsgen-page-vhost0-app.example.com"]["data"]["response.body"]
    grafana = access["HTTPRoute/xdsgen-https-vhost1-grafana.example.com"]["spec"]["rules"][1]
    modifier = next(f for f in grafana["filters"] if f["type"] == "RequestHeaderModifier")
    sets = modifier["requestHeaderModifier"]["set"]
    note = next(e for e in sets if e["name"] == "x-scheme-note")
    # What xdsgen's route configurations tell every backend, ahead of the vhost's own.
    assert [e["name"] for e in sets[:2]] == ["x-real-ip", "x-forwarded-port"]
    assert "%%" in wiki_body and "%%" in app_body and note["value"] == "100%% proxied"
    routes = [
        {
            "match": {"prefix": "/maintenance"},
            "direct_response": {
                "status": direct["statusCode"],
                "body_format": {
                    "text_format_source": {
                        "inline_bytes": base64.b64encode(wiki_body.encode()).decode()
                    }
                },
            },
            # Envoy Gateway turns the custom response filter on only where a policy has
            # a responseOverride (custom_response.go patchRoute).
            "typed_per_filter_config": {
                "envoy.filters.http.custom_response": {
                    "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                    "disabled": True,
                }
            },
            "response_headers_to_add": [
                {
                    "header": {"key": "Content-Type", "value": direct["contentType"]},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
                {
                    "header": {"key": note["name"], "value": note["value"]},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
            ],
        },
        {"match": {"prefix": "/"}, "route": {"cluster": "down"}},
    ]
    page = {
        "name": "error_page",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.custom_response."
            "local_response_policy.v3.LocalResponsePolicy",
            "body_format": {"text_format": app_body},
            "response_headers_to_add": [
                {
                    "header": {"key": "Content-Type", "value": override["contentType"]},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ],
        },
    }
    with _envoy(tmp_path, routes, page) as port:
        status, headers, body = http_get("127.0.0.1", port, "/maintenance/x")
        assert status == 503
        assert body == (CASES / "pages" / "maintenance.txt").read_bytes()
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert headers["x-scheme-note"] == "100% proxied"
        status, headers, body = http_get("127.0.0.1", port, "/app")
        assert status == 503  # Envoy's own: the upstream refuses the connection
        assert body == (CASES / "pages" / "down.html").read_bytes()
        assert headers["content-type"] == "text/html; charset=utf-8"
