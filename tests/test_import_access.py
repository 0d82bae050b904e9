"""Import of access (issue 14) from hand-written configs: what an inventory can say is
carried over and its difference dropped only when the draft behaves alike; what it cannot
say stays a difference, as loud as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from test_import import cds, http_lds, lines, write

from xdsgen.importer import import_files

RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
RBAC_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
EXT_AUTHZ = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
BASIC = "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def allow_rules(*cidrs: str, principal: str = "remote_ip") -> dict[str, Any]:
    ranges = []
    for text in cidrs:
        address, length = text.split("/")
        ranges.append({principal: {"address_prefix": address, "prefix_len": int(length)}})
    return {
        "action": "ALLOW",
        "policies": {"lan": {"permissions": [{"any": True}], "principals": ranges}},
    }


def imported(
    tmp_path: Path, filters: list[Any], routes: Any = None, patches: bool = True, **extra: Any
) -> Any:
    lds = http_lds(routes or [{"match": {"prefix": "/"}, "route": {"cluster": "web"}}])
    hcm = lds["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [*filters, ROUTER]
    clusters = cds("web", *extra.pop("clusters", ()))
    return import_files(write(tmp_path, lds_yaml=lds, cds_yaml=clusters), patches)


def carried_as_the_filter_list(result: Any) -> bool:
    """What no key says, carried by a patch of the whole HTTP filter list (import patches)."""
    lines_ = [p.line() for p in result.patches]
    return result.equivalent and lines_ == ["patched: connection manager http_ipv4: http_filters"]


def test_an_rbac_allow_list_on_source_addresses_becomes_allow(tmp_path: Path) -> None:
    result = imported(
        tmp_path,
        [
            {
                "name": "rbac",
                "typed_config": {"@type": RBAC, "rules": allow_rules("192.168.1.0/24", "fd00::/8")},
            }
        ],
    )
    assert result.equivalent, lines(result)
    (vhost,) = result.inventory["http"]
    assert vhost["allow"] == ["192.168.1.0/24", "fd00::/8"]


def test_a_per_route_rbac_override_is_carried_over(tmp_path: Path) -> None:
    routes = [
        {
            "match": {"prefix": "/public/"},
            "route": {"cluster": "web"},
            "typed_per_filter_config": {"rbac": {"@type": RBAC_PER_ROUTE}},
        },
        {"match": {"prefix": "/"}, "route": {"cluster": "web"}},
    ]
    result = imported(
        tmp_path,
        [{"name": "rbac", "typed_config": {"@type": RBAC, "rules": allow_rules("10.0.0.0/8")}}],
        routes,
    )
    assert result.equivalent, lines(result)
    (vhost,) = result.inventory["http"]
    assert "allow" not in vhost and "allow" not in vhost["routes"][0]  # everyone
    assert vhost["routes"][1]["allow"] == ["10.0.0.0/8"]


def test_rbac_on_anything_but_the_source_stays_a_loud_difference(tmp_path: Path) -> None:
    rules = allow_rules("10.0.0.0/8")
    rules["policies"]["lan"]["permissions"] = [
        {"header": {"name": ":method", "exact_match": "GET"}}
    ]
    rbac = {"name": "rbac", "typed_config": {"@type": RBAC, "rules": rules}}
    result = imported(tmp_path, [rbac], patches=False)
    assert [d.topic for d in result.differences] == ["access"]
    assert "requests it refused reach the routes" in result.differences[0].message
    assert "allow" not in result.inventory["http"][0]
    assert carried_as_the_filter_list(imported(tmp_path, [rbac])), lines(result)


def test_authelias_envoy_guide_becomes_a_forward_authenticator(tmp_path: Path) -> None:
    """Authelia's guide (integration/proxies/envoy): uri without a scheme, a path prefix
    with a trailing slash, upstream headers by prefix."""
    authz = {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": EXT_AUTHZ,
            "transport_api_version": "v3",
            "allowed_headers": {"patterns": [{"exact": "Cookie"}, {"exact": "Authorization"}]},
            "http_service": {
                "path_prefix": "/api/authz/ext-authz/",
                "server_uri": {"uri": "authelia:9091", "cluster": "authelia", "timeout": "0.25s"},
                "authorization_request": {
                    "headers_to_add": [{"key": "X-Forwarded-Proto", "value": "%REQ(:SCHEME)%"}]
                },
                "authorization_response": {
                    "allowed_upstream_headers": {
                        "patterns": [{"exact": "Remote-User"}, {"prefix": "remote-"}]
                    },
                    "allowed_client_headers": {"patterns": [{"exact": "set-cookie"}]},
                },
            },
            "failure_mode_allow": False,
        },
    }
    result = imported(tmp_path, [authz], clusters=("authelia",))
    assert result.inventory["auth"] == {
        "authelia": {
            "forward": {
                "url": "http://127.0.0.1:3000/api/authz/ext-authz",
                "headers_to_upstream": ["remote-user"],
            }
        }
    }
    (vhost,) = result.inventory["http"]
    assert vhost["auth"] == "authelia"
    assert "authelia" not in result.inventory["upstreams"]  # the auth service, not a backend
    # What the draft cannot say is named: headers copied by prefix.
    assert [d.topic for d in result.differences] == ["auth"], lines(result)
    assert "matching {'prefix': 'remote-'}" in result.differences[0].message


def test_an_auth_service_that_fails_open_stays_a_difference(tmp_path: Path) -> None:
    authz = {
        "name": "authz",
        "typed_config": {
            "@type": EXT_AUTHZ,
            "failure_mode_allow": True,
            "http_service": {
                "server_uri": {"uri": "http://a:1", "cluster": "authelia", "timeout": "1s"}
            },
        },
    }
    result = imported(tmp_path, [authz], clusters=("authelia",), patches=False)
    assert "auth" not in result.inventory
    assert any(d.topic == "auth" and d.loud for d in result.differences), lines(result)
    result = imported(tmp_path, [authz], clusters=("authelia",))
    assert "auth" not in result.inventory and carried_as_the_filter_list(result)


def test_basic_auth_with_inline_users_stays_a_difference(tmp_path: Path) -> None:
    inline = {
        "name": "basic",
        "typed_config": {"@type": BASIC, "users": {"inline_string": "a:{SHA}" + "x" * 27 + "="}},
    }
    result = imported(tmp_path, [inline], patches=False)
    assert "auth" not in result.inventory
    assert [d.topic for d in result.differences] == ["auth"]
    result = imported(tmp_path, [inline])
    assert "auth" not in result.inventory and carried_as_the_filter_list(result)
    by_file = {
        "name": "basic",
        "typed_config": {"@type": BASIC, "users": {"filename": "/etc/envoy/users"}},
    }
    result = imported(tmp_path, [by_file])
    assert result.inventory["auth"] == {"users": {"basic": "/etc/envoy/users"}}
    assert result.inventory["http"][0]["auth"] == "users"
    assert result.equivalent, lines(result)


def test_a_network_rbac_before_a_tcp_proxy_becomes_allow_with_a_note(tmp_path: Path) -> None:
    lds = {
        "resources": [
            {
                "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                "name": "ssh",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": 2222}},
                "filter_chains": [
                    {
                        "filters": [
                            {
                                "name": "envoy.filters.network.rbac",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters."
                                    "network.rbac.v3.RBAC",
                                    "stat_prefix": "ssh",
                                    "rules": allow_rules(
                                        "192.168.1.0/24", principal="direct_remote_ip"
                                    ),
                                },
                            },
                            {
                                "name": "envoy.filters.network.tcp_proxy",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters."
                                    "network.tcp_proxy.v3.TcpProxy",
                                    "stat_prefix": "ssh",
                                    "cluster": "web",
                                },
                            },
                        ]
                    }
                ],
            }
        ]
    }
    result = import_files(write(tmp_path, lds_yaml=lds, cds_yaml=cds("web")))
    assert result.equivalent, lines(result)
    assert result.inventory["tcp"] == [
        {"port": 2222, "upstream": "web", "allow": ["192.168.1.0/24"]}
    ]
    assert any("first byte" in n.message for n in result.notes)


def test_a_wrong_allow_in_the_draft_would_be_named(tmp_path: Path) -> None:
    """The comparer reads who may reach a route from both sides: a draft that allows more
    than the original is a loud difference (checked by comparing a render with itself
    after changing one side)."""
    from xdsgen.importer.compare import Comparer
    from xdsgen.importer.differences import Report
    from xdsgen.importer.drafts import read_render
    from xdsgen.pipeline import load_model, render

    def config(allow: Any) -> Any:
        inventory = {
            "version": 1,
            "listen": {"ipv4": {"address": "0.0.0.0", "http": 80}},
            "upstreams": {"web": "127.0.0.1:3000"},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "web", **allow}]}],
        }
        path = tmp_path / "i.yaml"
        path.write_text(yaml.safe_dump(inventory))
        return read_render(dict(render(load_model(str(path))).files))

    original, draft = config({"allow": ["10.0.0.0/8"]}), config({})
    report = Report()
    Comparer(original, draft, {"web": "web"}, report).run()
    (difference,) = report.differences
    assert difference.topic == "access" and difference.loud
    assert "the original allows only 10.0.0.0/8; the draft everyone" in difference.message


def test_header_changes_no_key_says_are_patched_after_the_drafts_own(tmp_path: Path) -> None:
    """A value set goes to `headers`; one appended (Envoy's default action) cannot, and is
    carried at the level it was made, after what the draft renders there itself (a merge
    patch replaces a list)."""
    routes = [
        {
            "match": {"prefix": "/"},
            "route": {"cluster": "web"},
            "response_headers_to_add": [
                {
                    "header": {"key": "x-set", "value": "1"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
                {"header": {"key": "x-appended", "value": "2"}},
            ],
        }
    ]
    bare = imported(tmp_path, [], routes, patches=False)
    assert bare.inventory["http"][0]["headers"] == {"response": {"set": {"x-set": "1"}}}
    assert [d.topic for d in bare.differences] == ["headers"], lines(bare)
    assert "the original appends x-appended: 2" in bare.differences[0].message
    result = imported(tmp_path, [], routes)
    assert result.equivalent, lines(result)
    assert result.inventory["http"][0]["headers"] == {"response": {"set": {"x-set": "1"}}}
    (patch,) = result.patches
    assert patch.line() == "patched: route vhost0_any/0: response_headers_to_add"
    own, carried = patch.merge["response_headers_to_add"]
    assert own["header"] == {"key": "x-set", "value": "1"}  # what xdsgen renders for the key
    assert carried == {"header": {"key": "x-appended", "value": "2"}}
