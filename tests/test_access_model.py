"""The access part of the model (issue 14) without Envoy: what each setting becomes, the
checks with their messages, and what cannot be said. Envoy's own behaviour is shown in
test_access_envoy.py; these pin the decisions that lead to it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from harness import write_inventory

from xdsgen.errors import InventoryError
from xdsgen.model import access as access_part
from xdsgen.model.auth import htpasswd_problems
from xdsgen.model.ir import Model
from xdsgen.passwd import set_password, sha_entry
from xdsgen.pipeline import load_model, render

BASE: dict[str, Any] = {
    "version": 1,
    "envoy": {"access_log": "off"},
    "listen": {
        "ipv4": {"address": "0.0.0.0", "http": 80, "https": 443},
        "ipv6": {"address": "::", "http": 80, "https": 443},
    },
    "upstreams": {"app": "127.0.0.1:3000", "ssh": "192.168.1.2:22"},
    "certificates": {"site": {"cert": "/etc/ssl/site.pem", "key": "/etc/ssl/site.key"}},
}


def model(tmp_path: Path, **sections: Any) -> Model:
    return load_model(str(write_inventory(tmp_path / "i.yaml", {**BASE, **sections})))


def problems(tmp_path: Path, **sections: Any) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        model(tmp_path, **sections)
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


def warnings(found: Model) -> list[str]:
    return [f"{p.path}: {p.message}" for p in found.warnings]


def route_of(found: Model, rc: str, vhost: int = 0, route: int = 0) -> Any:
    config = next(r for r in found.route_configs if r.name == rc)
    return config.virtual_hosts[vhost].routes[route]


def vhost(**extra: Any) -> dict[str, Any]:
    return {"domains": ["app.example.com"], "routes": [{"prefix": "/", "upstream": "app"}], **extra}


def test_a_route_merges_its_vhost_and_replaces_allow_and_auth(tmp_path: Path) -> None:
    users = tmp_path / "users"
    set_password(str(users), "alice", "x")
    found = model(
        tmp_path,
        networks={"lan": ["192.168.1.0/24", "fd00::/8"]},
        auth={"family": {"basic": str(users)}},
        http=[
            {
                "domains": ["app.example.com"],
                "allow": ["lan"],
                "auth": "family",
                "routes": [
                    {
                        "prefix": "/open/",
                        "upstream": "app",
                        "allow": ["0.0.0.0/0", "::/0"],
                        "auth": "none",
                    },
                    {"prefix": "/", "upstream": "app"},
                ],
            }
        ],
    )
    open_route, main_route = route_of(found, "http_ipv4"), route_of(found, "http_ipv4", 0, 1)
    assert [(f.kind, [str(c) for c in f.cidrs]) for f in open_route.filters] == [
        ("allow", ["0.0.0.0/0", "::/0"])
    ]
    kinds = {f.kind: f for f in main_route.filters}
    assert [str(c) for c in kinds["allow"].cidrs] == ["192.168.1.0/24", "fd00::/8"]
    assert kinds["allow"].principal == "direct_remote_ip"
    assert kinds["basic"].users == str(users) and len(kinds["basic"].users_version) == 16
    (http,) = [item for item in found.listeners if item.name == "http_ipv4"]
    (manager,) = [c.http for c in http.filter_chains if c.http]
    assert [(f.kind, f.name) for f in manager.filters] == [
        ("rbac", "envoy.filters.http.rbac"),
        ("basic", "envoy.filters.http.basic_auth"),
    ]
    assert found.secret_files() >= {str(users)}  # apply --watch sees it change


def test_an_edited_htpasswd_file_changes_the_route_configuration(tmp_path: Path) -> None:
    users = tmp_path / "users"
    set_password(str(users), "alice", "x")
    sections = {
        "auth": {"family": {"basic": str(users)}},
        "http": [vhost(auth="family")],
    }
    before = render(model(tmp_path, **sections)).files
    set_password(str(users), "alice", "y")
    after = render(model(tmp_path, **sections)).files
    assert before["rds_http_ipv4.yaml"] != after["rds_http_ipv4.yaml"]
    assert before["lds.yaml"] == after["lds.yaml"]  # no listener drained
    assert "{SHA}" not in after["rds_http_ipv4.yaml"]  # the hashes stay in the file


def test_htpasswd_entries_envoy_would_refuse(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(
        "# family\n"
        + sha_entry("alice", "x")
        + "\nbob:$2y$05$abcdefghijklmnopqrstuv\n"
        + sha_entry("alice", "y")
        + "\ncarol:{SHA}short\nnocolon\n"
    )
    os.chmod(users, 0o644)
    found = problems(tmp_path, auth={"family": {"basic": str(users)}}, http=[vhost(auth="family")])
    assert found == [
        f"auth.family.basic: {users} line 3: user 'bob': Envoy reads only {{SHA}} hashes "
        "(not bcrypt, MD5 or crypt)",
        f"auth.family.basic: {users} line 4: user 'alice' is listed twice",
        f"auth.family.basic: {users} line 5: user 'carol': a {{SHA}} hash is 28 base64 characters",
        f"auth.family.basic: {users} line 6: expected USER:{{SHA}}HASH",
    ]


def test_htpasswd_warnings_missing_readable_and_in_clear(tmp_path: Path) -> None:
    users = tmp_path / "users"
    set_password(str(users), "alice", "x")
    os.chmod(users, 0o644)
    found = warnings(
        model(tmp_path, auth={"family": {"basic": str(users)}}, http=[vhost(auth="family")])
    )
    assert any("is readable by every user" in w for w in found)
    assert any("basic auth on plain http (ipv4, ipv6)" in w for w in found)
    missing = model(
        tmp_path,
        auth={"family": {"basic": str(tmp_path / "nope")}},
        http=[vhost(auth="family", tls="site", redirect_to_https=True)],
    )
    assert any("does not exist" in w for w in warnings(missing))
    assert not any("plain http" in w for w in warnings(missing))  # redirected to https
    with pytest.raises(InventoryError):  # apply: Envoy would refuse the routes
        load_model(
            str(
                write_inventory(
                    tmp_path / "j.yaml",
                    {
                        **BASE,
                        "auth": {"f": {"basic": str(tmp_path / "nope")}},
                        "http": [vhost(auth="f")],
                    },
                )
            ),
            check_files=True,
        )


def test_allow_without_a_network_of_a_family_is_said(tmp_path: Path) -> None:
    found = model(
        tmp_path,
        tcp=[{"port": 2222, "upstream": "ssh", "allow": ["192.168.1.0/24"]}],
        http=[vhost()],
    )
    assert "tcp[0].allow: allow names no IPv6 network: every ipv6 client is refused" in warnings(
        found
    )


def test_forward_auth_cluster_and_filter(tmp_path: Path) -> None:
    found = model(
        tmp_path,
        auth={
            "sso": {
                "forward": {
                    "url": "https://auth.example.com/api/verify/",
                    "headers_to_upstream": ["Remote-User", "Remote-Groups"],
                }
            }
        },
        http=[vhost(auth="sso", tls="site")],
    )
    (cluster,) = [c for c in found.clusters if c.name == "sso_auth"]
    assert cluster.derived_from == "auth.sso" and cluster.discovery == "STRICT_DNS"
    assert cluster.tls is not None and cluster.tls.sni == "auth.example.com"
    (https,) = [item for item in found.listeners if item.name == "https_ipv4"]
    (chain,) = https.filter_chains
    assert chain.http is not None
    (forward,) = [f for f in chain.http.filters if f.kind == "forward"]
    assert forward.scheme == "https" and forward.forward is not None
    assert forward.forward.path_prefix == "/api/verify"
    assert forward.forward.headers_to_upstream == ("remote-groups", "remote-user")
    strip = route_of(found, "https_ipv4").filters[0]
    assert strip.kind == "strip" and strip.headers == ("remote-groups", "remote-user")


def test_derived_cluster_names_must_not_clash_with_upstreams(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        upstreams={**BASE["upstreams"], "ssh_proxy_v2": "127.0.0.1:23", "sso_auth": "127.0.0.1:24"},
        auth={"sso": {"forward": {"url": "http://127.0.0.1:9091/"}}},
        http=[vhost(auth="sso")],
        tcp=[
            {"port": 2222, "upstream": "ssh", "proxy_protocol": "v2"},
            {"port": 2223, "upstream": "ssh_proxy_v2"},
            {"port": 2224, "upstream": "sso_auth"},
        ],
    )
    assert any(
        "an upstream has that name" in p and p.startswith("tcp[0].proxy_protocol") for p in found
    )
    assert any("an upstream has that name" in p and p.startswith("auth.sso") for p in found)


def test_proxy_protocol_keeps_the_shared_cluster_plain(tmp_path: Path) -> None:
    found = model(
        tmp_path,
        tcp=[
            {"port": 2222, "upstream": "ssh", "proxy_protocol": "v2"},
            {"port": 2223, "upstream": "ssh"},
        ],
    )
    clusters = {c.name: c for c in found.clusters}
    assert clusters["ssh"].proxy_protocol is None
    assert clusters["ssh_proxy_v2"].proxy_protocol == "V2"
    assert clusters["ssh_proxy_v2"].endpoints == clusters["ssh"].endpoints
    by_port = {
        item.port: item.filter_chains[0].tcp.cluster
        for item in found.listeners
        if item.kind == "tcp"
    }
    assert by_port == {2222: "ssh_proxy_v2", 2223: "ssh"}
    tls = problems(
        tmp_path,
        upstreams={"nas": {"endpoints": ["192.168.1.5:443"], "tls": {"sni": "nas.lan"}}},
        tcp=[{"port": 4443, "upstream": "nas", "proxy_protocol": "v1"}],
    )
    assert any("speaks TLS" in p for p in tls)


def test_trusted_proxies_turn_to_the_forwarded_client(tmp_path: Path) -> None:
    found = model(
        tmp_path,
        trusted_proxies=["173.245.48.0/20"],
        networks={"office": ["198.51.100.0/24"]},
        http=[vhost(allow=["office"])],
    )
    (http,) = [item for item in found.listeners if item.name == "http_ipv4"]
    manager = http.filter_chains[0].http
    assert manager is not None and dict(manager.settings)["use_remote_address"] is False
    assert [str(c) for c in manager.trusted_proxies] == ["173.245.48.0/20"]
    assert route_of(found, "http_ipv4").filters[0].principal == "remote_ip"


def test_header_changes_merge_with_the_route_winning(tmp_path: Path) -> None:
    found = model(
        tmp_path,
        http=[
            {
                "domains": ["app.example.com"],
                "tls": "site",
                "hsts": 600,
                "security_headers": True,
                "headers": {
                    "request": {"set": {"X-Note": "50% off"}, "remove": ["X-Debug"]},
                    "response": {"set": {"X-Robots-Tag": "noindex"}, "remove": ["Server"]},
                },
                "routes": [
                    {
                        "prefix": "/embed/",
                        "upstream": "app",
                        "headers": {
                            "request": {"set": {"X-Debug": "1"}},
                            "response": {
                                "set": {"X-Frame-Options": "ALLOWALL", "Server": "x"},
                                "remove": ["X-Robots-Tag"],
                            },
                        },
                    },
                    {"prefix": "/", "upstream": "app"},
                ],
            }
        ],
    )
    embed, main = route_of(found, "https_ipv4"), route_of(found, "https_ipv4", 0, 1)
    assert {h.key: (h.value, h.action) for h in main.headers.request_add} == {
        "x-note": ("50%% off", "OVERWRITE_IF_EXISTS_OR_ADD")  # a literal % for Envoy
    }
    assert main.headers.request_remove == ("x-debug",)
    response = {h.key: (h.value, h.action) for h in main.headers.response_add}
    assert response["strict-transport-security"] == ("max-age=600", "OVERWRITE_IF_EXISTS_OR_ADD")
    assert response["x-frame-options"] == ("SAMEORIGIN", "ADD_IF_ABSENT")
    assert response["x-robots-tag"] == ("noindex", "OVERWRITE_IF_EXISTS_OR_ADD")
    assert main.headers.response_remove == ("server",)
    assert embed.headers.request_remove == () and {h.key for h in embed.headers.request_add} == {
        "x-note",
        "x-debug",
    }
    embed_response = {h.key: (h.value, h.action) for h in embed.headers.response_add}
    assert embed_response["x-frame-options"] == ("ALLOWALL", "OVERWRITE_IF_EXISTS_OR_ADD")
    assert embed_response["server"][0] == "x"
    assert "x-robots-tag" not in embed_response and embed.headers.response_remove == (
        "x-robots-tag",
    )
    # HSTS on the TLS listener only.
    plain = {h.key for h in route_of(found, "http_ipv4", 0, 1).headers.response_add}
    assert "strict-transport-security" not in plain and "x-frame-options" in plain


def test_cidrs_are_parsed_and_refused_with_the_network_they_meant() -> None:
    assert str(access_part.parse_cidr("10.0.0.5")) == "10.0.0.5/32"
    assert str(access_part.parse_cidr("fd00::/8")) == "fd00::/8"
    assert (
        access_part.parse_cidr("10.0.0.1/8")
        == "'10.0.0.1/8' has host bits set: the network is 10.0.0.0/8"
    )
    assert "not an IP network" in str(access_part.parse_cidr("lan"))


def test_passwd_keeps_other_users_and_the_file_mode(tmp_path: Path) -> None:
    users = tmp_path / "users"
    assert set_password(str(users), "alice", "one") == "added"
    assert oct(users.stat().st_mode & 0o777) == "0o640"
    os.chmod(users, 0o600)
    assert set_password(str(users), "bob", "two") == "added"
    assert set_password(str(users), "alice", "three") == "changed"
    lines = users.read_text().splitlines()
    assert lines == [sha_entry("alice", "three"), sha_entry("bob", "two")]
    assert oct(users.stat().st_mode & 0o777) == "0o600"  # kept
    assert htpasswd_problems(users.read_bytes()) == []


@pytest.mark.parametrize(
    ("file_name", "old", "new"),
    [
        ("lds.yaml", 'address_prefix: "192.168.1.0"', 'address_prefix: "0.0.0.0"'),  # a chain
        ("rds_http_ipv4.yaml", "prefix_len: 24", "prefix_len: 16"),  # a route's allow
        ("lds.yaml", "failure_mode_allow: false", "failure_mode_allow: true"),
        ("cds.yaml", "version: V2", "version: V1"),
        ("rds_http_ipv4.yaml", "ADD_IF_ABSENT", "OVERWRITE_IF_EXISTS_OR_ADD"),
    ],
)
def test_verify_refuses_a_render_that_says_other_access(
    tmp_path: Path, file_name: str, old: str, new: str
) -> None:
    """render.verify reads access back from every file: a template that printed it wrong
    would be an xdsgen bug, never written."""
    from xdsgen.errors import RenderError
    from xdsgen.render import Rendered, verify

    found = model(
        tmp_path,
        networks={"lan": ["192.168.1.0/24"]},
        auth={"sso": {"forward": {"url": "http://127.0.0.1:9091/"}}},
        http=[vhost(allow=["lan"], auth="sso", security_headers=True)],
        tcp=[{"port": 2222, "upstream": "ssh", "allow": ["lan"], "proxy_protocol": "v2"}],
    )
    files = dict(render(found).files)
    assert old in files[file_name]
    files[file_name] = files[file_name].replace(old, new, 1)
    with pytest.raises(RenderError, match="xdsgen bug"):
        verify(found, Rendered(files))
