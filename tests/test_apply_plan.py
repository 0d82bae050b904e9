"""The plan and the make-before-break steps, from rendered files (no Envoy needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Certs, write_inventory

from xdsgen.conventions import file_version
from xdsgen.live.certs import CertReload, certificate_serial
from xdsgen.live.confirm import subscriptions
from xdsgen.live.plan import Change, compute_plan, plan_steps, union_cds
from xdsgen.parsed import resources_of
from xdsgen.pipeline import load_model, render


def rendered(tmp_path: Path, name: str, **sections: Any) -> dict[str, str]:
    data = {
        "version": 1,
        "envoy": {"config_dir": str(tmp_path / "config"), "admin": "127.0.0.1:15001"},
        "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
        **sections,
    }
    inventory = write_inventory(tmp_path / f"{name}.yaml", data)
    return render(load_model(str(inventory))).files


BASE = {
    "upstreams": {"app": "127.0.0.1:3000", "old_nas": "127.0.0.1:5000"},
    "http": [
        {
            "domains": ["*"],
            "routes": [
                {"prefix": "/nas/", "upstream": "old_nas"},
                {"prefix": "/", "upstream": "app"},
            ],
        }
    ],
}


def test_plan_lists_each_resource_with_its_action(tmp_path: Path) -> None:
    old = rendered(tmp_path, "old", **BASE)
    new = rendered(
        tmp_path,
        "new",
        upstreams={"app": "127.0.0.1:3001", "grafana": "127.0.0.1:3000"},
        http=[
            {
                "domains": ["*"],
                "routes": [
                    {"prefix": "/grafana/", "upstream": "grafana"},
                    {"prefix": "/", "upstream": "app"},
                ],
            }
        ],
        tcp=[{"port": 4450, "upstream": "app"}],
    )
    plan = compute_plan(old, new)
    assert [(c.action, c.kind, c.name) for c in plan.changes] == [
        ("~", "cluster", "app"),
        ("+", "cluster", "grafana"),
        ("-", "cluster", "old_nas"),
        ("~", "route", "http_ipv4"),
        ("+", "listener", "tcp_4450_ipv4"),
    ]
    assert "load_assignment" in plan.changes[0].detail
    assert plan.lines()[2] == "- cluster old_nas"
    assert plan.totals() == "2 to add, 2 to change, 1 to remove"
    assert not plan.empty
    assert plan.as_dict()["writes"] == ["cds.yaml", "lds.yaml", "rds_http_ipv4.yaml"]
    diff = plan.diff()
    assert "--- a/cds.yaml" in diff and "+++ b/cds.yaml" in diff
    assert '-  name: "old_nas"' in diff and '+  name: "grafana"' in diff


def test_identical_files_make_an_empty_plan(tmp_path: Path) -> None:
    files = rendered(tmp_path, "same", **BASE)
    plan = compute_plan(dict(files), dict(files))
    assert plan.empty and plan.changes == () and plan.diff() == ""


def test_files_that_are_not_xds_are_ignored(tmp_path: Path) -> None:
    files = rendered(tmp_path, "same", **BASE)
    plan = compute_plan({**files, "bootstrap.yaml": "x", "notes.txt": "y"}, files)
    assert plan.empty


def test_removed_cluster_stays_until_the_routes_no_longer_use_it(tmp_path: Path) -> None:
    old = rendered(tmp_path, "old", **BASE)
    new = rendered(
        tmp_path,
        "new",
        upstreams={"app": "127.0.0.1:3000"},
        http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
    )
    steps = plan_steps(old, new)
    assert [s.what for s in steps] == ["clusters (old and new)", "routes", "clusters"]
    union = dict(steps[0].writes)["cds.yaml"]
    names = [r["name"] for r in resources_of(union) or []]
    assert names == ["app", "old_nas"]
    # Its own version: Envoy's confirmation of this step cannot be mistaken for another.
    assert file_version(union) not in (file_version(old["cds.yaml"]), file_version(new["cds.yaml"]))
    assert dict(steps[-1].writes)["cds.yaml"] == new["cds.yaml"]


def test_added_cluster_needs_no_union_step(tmp_path: Path) -> None:
    old = rendered(tmp_path, "old", **BASE)
    new = rendered(
        tmp_path, "new", upstreams={**BASE["upstreams"], "extra": "127.0.0.1:1"}, http=BASE["http"]
    )
    assert union_cds(old["cds.yaml"], new["cds.yaml"]) is None
    assert [s.what for s in plan_steps(old, new)] == ["clusters"]


def test_new_listener_gets_its_route_and_secret_files_before_lds(tmp_path: Path) -> None:
    certs = Certs(tmp_path / "certs")
    cert, key = certs.issue("site", "site.example.com")
    old = rendered(tmp_path, "old", **BASE)
    data = dict(BASE)
    data["listen"] = {"ipv4": {"address": "127.0.0.1", "http": 8080, "https": 8443}}
    data["certificates"] = {"site": {"cert": str(cert), "key": str(key)}}
    data["http"] = [
        {
            "domains": ["site.example.com"],
            "tls": "site",
            "routes": [{"prefix": "/", "upstream": "app"}],
        },
        *BASE["http"],
    ]
    new = rendered(tmp_path, "new", **data)
    steps = plan_steps(old, new)
    order = [(s.what, sorted(n for n, _ in s.writes)) for s in steps]
    assert order == [
        ("secrets", ["sds_site.yaml"]),
        ("routes", ["rds_http_ipv4.yaml", "rds_https_ipv4.yaml"]),
        ("listeners", ["lds.yaml"]),
    ]
    assert steps[-1].final
    # Going back removes the files the restored LDS no longer names, after the LDS.
    back = plan_steps(new, old)
    assert [s.what for s in back] == ["routes", "listeners", "unused files"]
    assert back[-1].removes == ("rds_https_ipv4.yaml", "sds_site.yaml")


def test_rolling_back_to_no_files_writes_empty_resources(tmp_path: Path) -> None:
    new = rendered(tmp_path, "new", **BASE)
    steps = plan_steps(new, {})
    written = {n: t for s in steps for n, t in s.writes}
    assert resources_of(written["cds.yaml"]) == [] and resources_of(written["lds.yaml"]) == []
    assert {n for s in steps for n in s.removes} == {"rds_http_ipv4.yaml"}


def test_certificate_reload_is_planned_only_when_its_sds_file_is_unchanged(tmp_path: Path) -> None:
    files = rendered(tmp_path, "same", **BASE)
    reload = CertReload("site", "/c.pem", "/k.pem", "f1")
    plan = compute_plan(files, files, (reload,))
    assert not plan.empty
    assert plan.changes == (Change("~", "secret", "site", "certificate files changed"),)
    assert [s.what for s in plan_steps(files, files, plan.cert_reloads)] == ["certificates"]


def test_unparseable_file_on_disk_is_replaced(tmp_path: Path) -> None:
    new = rendered(tmp_path, "new", **BASE)
    old = {**new, "cds.yaml": "resources: [unclosed\n"}
    plan = compute_plan(old, new)
    assert [(c.action, c.kind) for c in plan.changes] == [("~", "cluster"), ("~", "cluster")]
    assert [s.what for s in plan_steps(old, new)] == ["clusters"]


def test_subscriptions_name_envoys_stat_prefixes(tmp_path: Path) -> None:
    certs = Certs(tmp_path / "certs")
    cert, key = certs.issue("site", "site.example.com")
    data = dict(BASE)
    data["listen"] = {"ipv4": {"address": "127.0.0.1", "http": 8080, "https": 8443}}
    data["certificates"] = {"site": {"cert": str(cert), "key": str(key)}}
    data["http"] = [
        {
            "domains": ["site.example.com"],
            "tls": "site",
            "routes": [{"prefix": "/", "upstream": "app"}],
        }
    ]
    files = rendered(tmp_path, "tls", **data)
    assert subscriptions(files["lds.yaml"]) == {
        "rds_http_ipv4.yaml": "http.http_ipv4.rds.http_ipv4",
        "rds_https_ipv4.yaml": "http.https_ipv4.rds.https_ipv4",
        "sds_site.yaml": "sds.site",
    }


def test_certificate_serial_matches_cryptography(tmp_path: Path) -> None:
    from cryptography import x509

    certs = Certs(tmp_path / "certs")
    for index in range(5):
        cert, _ = certs.issue(f"c{index}", f"c{index}.example.com")
        expected = format(x509.load_pem_x509_certificate(cert.read_bytes()).serial_number, "x")
        assert certificate_serial(str(cert)) == expected
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert certificate_serial(str(tmp_path / "junk.pem")) is None
    assert certificate_serial(str(tmp_path / "missing.pem")) is None


def test_union_cds_is_valid_yaml_with_both_sets(tmp_path: Path) -> None:
    old = rendered(tmp_path, "old", **BASE)
    new = rendered(
        tmp_path,
        "new",
        upstreams={"yes": "127.0.0.1:1"},
        http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "yes"}]}],
    )
    union = union_cds(old["cds.yaml"], new["cds.yaml"])
    assert union is not None
    doc = yaml.safe_load(union)
    assert [r["name"] for r in doc["resources"]] == ["yes", "app", "old_nas"]
    assert doc["version_info"] == file_version(union)
    # A name YAML 1.1 reads as a boolean stays a string.
    assert isinstance(doc["resources"][0]["name"], str)


@pytest.mark.parametrize(
    "text, version",
    [
        ('version_info: "abc"\nresources: []\n', "abc"),
        ("resources: []\n", None),
        ("", None),
    ],
)
def test_file_version(text: str, version: Any) -> None:
    assert file_version(text) == version


def test_file_envoy_does_not_run_is_written_again(tmp_path: Path) -> None:
    files = rendered(tmp_path, "same", **BASE)
    plan = compute_plan(files, files, stale={"rds_http_ipv4.yaml": "0123", "cds.yaml": ""})
    assert [c.line() for c in plan.changes] == [
        "~ cluster app (Envoy runs version nothing, not the file's)",
        "~ cluster old_nas (Envoy runs version nothing, not the file's)",
        "~ route http_ipv4 (Envoy runs version 0123, not the file's)",
    ]
    assert sorted(plan.writes) == ["cds.yaml", "rds_http_ipv4.yaml"]
    steps = plan_steps(files, files, stale=plan.stale)
    assert [(s.what, [n for n, _ in s.writes]) for s in steps] == [
        ("clusters", ["cds.yaml"]),
        ("routes", ["rds_http_ipv4.yaml"]),
    ]
    # A file whose content changes anyway is listed once, as a change.
    other = rendered(
        tmp_path,
        "other",
        upstreams={"app": "127.0.0.1:3001", "old_nas": "127.0.0.1:5000"},
        http=BASE["http"],
    )
    plan = compute_plan(files, other, stale={"cds.yaml": "x"})
    assert [c.line() for c in plan.changes] == ["~ cluster app (load_assignment)"]
