"""envoycheck: the real `envoy --mode validate` accepts what xdsgen renders and explains refusals.

Validate mode ignores the contents of file-based xDS, so these tests also prove that the
rendered files really are looked at: a broken cds.yaml must be refused.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from harness import EXAMPLE, Certs, envoy_binary, write_inventory

from xdsgen.envoycheck import check_with_envoy, find_envoy
from xdsgen.errors import EXIT_ENVOY, EnvoyRefused, IOProblem
from xdsgen.pipeline import load_model, render
from xdsgen.render import Rendered

pytestmark = pytest.mark.envoy

CASES = Path(__file__).parent / "cases"
INVENTORIES = {
    p.name: p / "inventory.yaml"
    for p in sorted(CASES.iterdir())
    if (p / "inventory.yaml").is_file()
}
INVENTORIES["example"] = EXAMPLE


def _minimal(tmp_path: Path, **envoy: object) -> Path:
    return write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "config"), **envoy},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 18080}},
            "upstreams": {"app": "127.0.0.1:3000"},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        },
    )


def _tls(tmp_path: Path, cert: Path, key: Path) -> Path:
    return write_inventory(
        tmp_path / "tls.yaml",
        {
            "version": 1,
            "envoy": {"access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "https": 18443}},
            "upstreams": {"app": "127.0.0.1:3000"},
            "certificates": {"site": {"cert": str(cert), "key": str(key)}},
            "http": [
                {
                    "domains": ["site.test"],
                    "tls": "site",
                    "routes": [{"prefix": "/", "upstream": "app"}],
                }
            ],
        },
    )


def test_find_envoy_is_the_packaged_binary() -> None:
    found = find_envoy()
    assert found is not None and os.access(found, os.X_OK)
    assert os.path.realpath(found) == os.path.realpath(envoy_binary())


@pytest.mark.parametrize("name", sorted(INVENTORIES))
def test_envoy_validates_bootstrap_and_files(name: str) -> None:
    """The bootstrap and every rendered file of the example and of each golden case.
    They name certificate files of another machine (/etc/ssl/...): stand-ins replace them."""
    model = load_model(str(INVENTORIES[name]))
    check_with_envoy(model, render(model), envoy_binary(), stand_ins=True)


def test_missing_certificate_is_refused_without_stand_ins() -> None:
    model = load_model(str(CASES / "tls-two-certificates" / "inventory.yaml"))
    with pytest.raises(EnvoyRefused) as info:
        check_with_envoy(model, render(model), envoy_binary())
    assert "/etc/ssl/blog/" in str(info.value)
    assert info.value.exit_code == EXIT_ENVOY


def test_real_certificate_files_pass_and_a_mismatched_key_is_refused(tmp_path: Path) -> None:
    certs = Certs(tmp_path / "certs")
    cert, key = certs.issue("site", "site.test")
    _, other_key = certs.issue("other", "other.test")
    model = load_model(str(_tls(tmp_path, cert, key)), check_files=True)
    check_with_envoy(model, render(model), envoy_binary())

    mismatched = load_model(str(_tls(tmp_path, cert, other_key)), check_files=True)
    with pytest.raises(EnvoyRefused) as info:
        check_with_envoy(mismatched, render(mismatched), envoy_binary())
    assert "KEY_VALUES_MISMATCH" in str(info.value)
    assert str(other_key) in str(info.value)


def test_broken_cluster_file_is_refused_with_envoys_reason(tmp_path: Path) -> None:
    model = load_model(str(_minimal(tmp_path)))
    good = render(model)
    assert 'connect_timeout: "5s"' in good.cds
    bad = Rendered(
        {
            **good.files,
            "cds.yaml": good.cds.replace('connect_timeout: "5s"', 'connect_timeout: "-1s"'),
        }
    )
    with pytest.raises(EnvoyRefused) as info:
        check_with_envoy(model, bad, envoy_binary())
    message = str(info.value)
    assert message.startswith(
        "Envoy refused the rendered files: Invalid duration: Expected positive duration"
    )
    assert "\n" not in message and "[critical]" not in message


def test_unknown_field_names_the_resource_and_file(tmp_path: Path) -> None:
    model = load_model(str(_minimal(tmp_path)))
    good = render(model)
    bad = Rendered(
        {
            **good.files,
            "cds.yaml": good.cds.replace(
                "  lb_policy: ROUND_ROBIN\n", "  lb_policy: ROUND_ROBIN\n  bogus_knob: 1\n"
            ),
        }
    )
    with pytest.raises(EnvoyRefused) as info:
        check_with_envoy(model, bad, envoy_binary())
    message = str(info.value)
    assert "bogus_knob" in message
    assert "clusters[0] is 'app' in cds.yaml" in message


def test_broken_route_file_is_refused(tmp_path: Path) -> None:
    """Proves the rds file's contents reach Envoy (validate mode alone would skip them)."""
    model = load_model(str(_minimal(tmp_path)))
    good = render(model)
    name = "rds_http_ipv4.yaml"
    bad = Rendered(
        {
            **good.files,
            name: good.files[name].replace('prefix: "/"', 'prefix: "/"\n        path: "/x"'),
        }
    )
    with pytest.raises(EnvoyRefused):
        check_with_envoy(model, bad, envoy_binary())


def test_missing_route_file_is_refused(tmp_path: Path) -> None:
    model = load_model(str(_minimal(tmp_path)))
    files = dict(render(model).files)
    del files["rds_http_ipv4.yaml"]
    with pytest.raises(EnvoyRefused, match=r"rds_http_ipv4\.yaml, which is not rendered"):
        check_with_envoy(model, Rendered(files), envoy_binary())


def test_access_log_directory_must_exist_unless_stand_ins(tmp_path: Path) -> None:
    log = tmp_path / "no-such-dir" / "access.log"
    model = load_model(str(_minimal(tmp_path, access_log=str(log))))
    with pytest.raises(EnvoyRefused, match="unable to open file"):
        check_with_envoy(model, render(model), envoy_binary())
    check_with_envoy(model, render(model), envoy_binary(), stand_ins=True)
    assert not log.parent.exists()


def test_envoy_that_cannot_run_is_an_io_problem(tmp_path: Path) -> None:
    model = load_model(str(_minimal(tmp_path)))
    with pytest.raises(IOProblem, match="Envoy not found"):
        check_with_envoy(model, render(model), str(tmp_path / "no-envoy"))


def test_broken_bootstrap_is_refused(tmp_path: Path) -> None:
    """The bootstrap itself is validated: a connection limit of 0 breaks Envoy's own schema
    (the inventory schema stops it earlier; the model is changed behind its back)."""
    model = load_model(str(_minimal(tmp_path)))
    broken = replace(model, envoy=replace(model.envoy, max_connections=0))
    with pytest.raises(EnvoyRefused, match=r"^Envoy refused the bootstrap: "):
        check_with_envoy(broken, render(broken), envoy_binary())
