"""Every example and golden inventory exports to manifests that validate, without a cluster,
against the vendored official schemas (tests/data/README.md), and the validation is real:
broken objects fail it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from k8s_schemas import CHANNELS, problems, schemas

from xdsgen.export.gateway import GatewayOptions, export_gateway_api
from xdsgen.export.k8s import Export, K8sOptions, export_k8s
from xdsgen.export.source import load

REPO = Path(__file__).resolve().parent.parent
INVENTORIES = sorted(
    [
        *(REPO / "examples").rglob("*.yaml"),
        *(REPO / "tests" / "cases").glob("*/inventory.yaml"),
        *(REPO / "tests" / "export_cases").glob("*/inventory.yaml"),
    ]
)
INVENTORIES = [p for p in INVENTORIES if "version: 1" in p.read_text()]  # skip compose.yaml
EXPORTS: dict[str, Callable[[Any], Export]] = {
    "k8s": lambda s: export_k8s(s, K8sOptions()),
    "k8s-deployment": lambda s: export_k8s(s, K8sOptions(workload="deployment", namespace="edge")),
    "gateway-api": lambda s: export_gateway_api(s, GatewayOptions()),
}


def documents(result: Export) -> list[dict[str, Any]]:
    docs = list(yaml.safe_load_all(result.text))
    assert all(isinstance(d, dict) for d in docs)
    return docs


def left_out(result: Export) -> set[str]:
    """Objects the export listed as differences instead of writing (unreadable key files)."""
    return {d.resource for d in result.report.items if "not in the output" in d.message}


def test_inventories_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in INVENTORIES}
    assert "examples/home-router.yaml" in names
    assert "examples/docker/inventory.yaml" in names
    assert "tests/cases/home-router/inventory.yaml" in names
    assert len([n for n in names if n.startswith("tests/export_cases/")]) >= 6


@pytest.mark.parametrize("kind", sorted(EXPORTS))
@pytest.mark.parametrize("path", INVENTORIES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_inventory_exports_and_validates(path: Path, kind: str) -> None:
    result = EXPORTS[kind](load(str(path)))
    docs = documents(result)
    assert docs
    for channel in CHANNELS:
        assert problems(docs, channel, left_out(result)) == []


def test_every_kind_exported_is_validated_by_a_schema(
    sample_documents: list[dict[str, Any]],
) -> None:
    """The inventories above (and the sample with real key files) use every kind the
    exporters write, and each has a schema in both channels."""
    kinds = {(d["apiVersion"], d["kind"]) for d in sample_documents}
    for path in INVENTORIES:
        source = load(str(path))
        for export in EXPORTS.values():
            kinds |= {(d["apiVersion"], d["kind"]) for d in documents(export(source))}
    assert kinds == {
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "Deployment"),
        ("gateway.networking.k8s.io/v1", "Gateway"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        ("gateway.networking.k8s.io/v1", "TLSRoute"),
        ("gateway.networking.k8s.io/v1", "TCPRoute"),
        ("gateway.networking.k8s.io/v1", "UDPRoute"),
        ("gateway.networking.k8s.io/v1", "BackendTLSPolicy"),
        ("gateway.envoyproxy.io/v1alpha1", "Backend"),
        ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"),
        ("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy"),
        ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"),
        ("gateway.envoyproxy.io/v1alpha1", "HTTPRouteFilter"),
    }
    for channel in CHANNELS:
        assert kinds <= set(schemas(channel))


# --------------------------------------------------------------------------- broken objects


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _drop(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


LISTENER = ["spec", "listeners", 0]
RULE = ["spec", "rules", 0]
POD = ["spec", "template", "spec"]
CONTAINER = [*POD, "containers", 0]
BROKEN = {
    # kind to break, how, the words the failure must carry
    "gateway: apiVersion v1alpha9": (
        "Gateway",
        _set(["apiVersion"], "gateway.networking.k8s.io/v1alpha9"),
        "no schema",
    ),
    "gateway: kind misspelt": ("Gateway", _set(["kind"], "Gateways"), "no schema"),
    "gateway: listener without port": (
        "Gateway",
        _drop([*LISTENER, "port"]),
        "'port' is a required",
    ),
    "gateway: tls mode not in enum": (
        "Gateway",
        _set([*LISTENER, "tls"], {"mode": "Bogus"}),
        "Bogus",
    ),
    "gateway: port out of range": ("Gateway", _set([*LISTENER, "port"], 70000), "70000"),
    "gateway: unknown field": ("Gateway", _set(["spec", "listenerz"], []), "listenerz"),
    "gateway: two listeners named alike": (
        "Gateway",
        lambda d: d["spec"]["listeners"].append(copy.deepcopy(d["spec"]["listeners"][0])),
        "unique",
    ),
    "gateway: no gatewayClassName": (
        "Gateway",
        _drop(["spec", "gatewayClassName"]),
        "gatewayClassName",
    ),
    "httproute: path type not in enum": (
        "HTTPRoute",
        _set([*RULE, "matches", 0, "path", "type"], "Glob"),
        "Glob",
    ),
    "httproute: redirect status code not in enum": (
        "HTTPRoute",
        _set(
            [*RULE, "filters"],
            [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 305}}],
        ),
        "305",
    ),
    "httproute: path with //": (
        "HTTPRoute",
        _set([*RULE, "matches", 0, "path", "value"], "/a//b"),
        "refused",
    ),
    "httproute: parentRef to a missing listener": (
        "HTTPRoute",
        _set(["spec", "parentRefs", 0, "sectionName"], "nope"),
        "no listener",
    ),
    "httproute: backendRef to a missing Backend": (
        "HTTPRoute",
        _set([*RULE, "backendRefs", 0, "name"], "nope"),
        "not in the output",
    ),
    "httproute: bad timeout": ("HTTPRoute", _set([*RULE, "timeouts"], {"request": "1.5s"}), "1.5s"),
    "backend: endpoint without port": (
        "Backend",
        _drop(["spec", "endpoints", 0, "ip", "port"]),
        "'port' is a required",
    ),
    "backend: not an IP": (
        "Backend",
        _set(["spec", "endpoints", 0, "ip", "address"], "router.lan"),
        "router.lan",
    ),
    "backendtrafficpolicy: load balancer not in enum": (
        "BackendTrafficPolicy",
        _set(["spec", "loadBalancer", "type"], "Fastest"),
        "Fastest",
    ),
    "configmap: apiVersion apps/v1": ("ConfigMap", _set(["apiVersion"], "apps/v1"), "no schema"),
    "configmap: bad key": ("ConfigMap", lambda d: d["data"].update({"a b": "x"}), "bad data key"),
    "configmap: over 1 MiB": (
        "ConfigMap",
        lambda d: d["data"].update({"big": "x" * (1024 * 1024)}),
        "over 1 MiB",
    ),
    "daemonset: container without name": (
        "DaemonSet",
        _drop([*CONTAINER, "name"]),
        "'name' is a required",
    ),
    "daemonset: port protocol not in enum": (
        "DaemonSet",
        _set([*CONTAINER, "ports", 0, "protocol"], "ICMP"),
        "ICMP",
    ),
    "daemonset: port number is a string": (
        "DaemonSet",
        _set([*CONTAINER, "ports", 0, "containerPort"], "80"),
        "'80' is not of type",
    ),
    "daemonset: subPath mount": (
        "DaemonSet",
        _set([*CONTAINER, "volumeMounts", 0, "subPath"], "cds.yaml"),
        "subPath",
    ),
    "daemonset: unknown field": ("DaemonSet", _set([*POD, "hostNetwerk"], True), "hostNetwerk"),
    "daemonset: missing ConfigMap": (
        "DaemonSet",
        _set([*POD, "volumes", 0, "configMap", "name"], "nope"),
        "not in the output",
    ),
    "daemonset: selector misses the pods": (
        "DaemonSet",
        _set(["spec", "selector", "matchLabels", "app.kubernetes.io/name"], "other"),
        "selector",
    ),
    "secret: tls without key": ("Secret", _drop(["data", "tls.key"]), "tls.key"),
    "metadata: name with capitals": (
        "ConfigMap",
        _set(["metadata", "name"], "Envoy"),
        "DNS subdomain",
    ),
    "metadata: unknown field": ("ConfigMap", _set(["metadata", "nmae"], "x"), "nmae"),
    # Envoy Gateway policies (issue 17.3); the fourth item picks the object to break.
    "backendtrafficpolicy: HTTP check without its settings": (
        "BackendTrafficPolicy",
        _drop(["spec", "healthCheck", "active", "http"]),
        "If Health Checker type is HTTP",
        lambda d: "active" in d["spec"].get("healthCheck", {}),
    ),
    "backendtrafficpolicy: retry trigger not in enum": (
        "BackendTrafficPolicy",
        _set(["spec", "retry", "retryOn", "triggers"], ["sometimes"]),
        "sometimes",
        lambda d: "retry" in d["spec"],
    ),
    "backendtrafficpolicy: error page ConfigMap missing": (
        "BackendTrafficPolicy",
        _set(["spec", "responseOverride", 0, "response", "body", "valueRef", "name"], "nope"),
        "not in the output",
        lambda d: "responseOverride" in d["spec"],
    ),
    "backendtrafficpolicy: passive check percent above 100": (
        "BackendTrafficPolicy",
        _set(["spec", "healthCheck", "passive", "maxEjectionPercent"], 101),
        "101",
        lambda d: "passive" in d["spec"].get("healthCheck", {}),
    ),
    "securitypolicy: default action not in enum": (
        "SecurityPolicy",
        _set(["spec", "authorization", "defaultAction"], "Maybe"),
        "Maybe",
        lambda d: "authorization" in d["spec"],
    ),
    "securitypolicy: a network name instead of a CIDR": (
        "SecurityPolicy",
        _set(["spec", "authorization", "rules", 0, "principal", "clientCIDRs"], ["lan"]),
        "'lan' does not match",
        lambda d: "authorization" in d["spec"],
    ),
    "securitypolicy: targets a TLSRoute": (
        "SecurityPolicy",
        _set(["spec", "targetRefs", 0, "kind"], "TLSRoute"),
        "cannot target TLSRoute",
        lambda d: True,
    ),
    "securitypolicy: basic auth users Secret missing": (
        "SecurityPolicy",
        _set(["spec", "basicAuth", "users", "name"], "nope"),
        "not in the output",
        lambda d: "basicAuth" in d["spec"],
    ),
    "securitypolicy: ext auth both grpc and http": (
        "SecurityPolicy",
        lambda d: d["spec"]["extAuth"].update(
            {"grpc": {"backendRefs": d["spec"]["extAuth"]["http"]["backendRefs"]}}
        ),
        "only one of grpc or http",
        lambda d: "extAuth" in d["spec"],
    ),
    "securitypolicy: ext auth Backend missing": (
        "SecurityPolicy",
        _set(["spec", "extAuth", "http", "backendRefs", 0, "name"], "nope"),
        "not in the output",
        lambda d: "extAuth" in d["spec"],
    ),
    "securitypolicy: basic auth on a TCPRoute": (
        "SecurityPolicy",
        lambda d: d["spec"].update({"basicAuth": {"users": {"name": "xdsgen-users-family"}}}),
        "takes only authorization",
        lambda d: d["spec"]["targetRefs"][0]["kind"] == "TCPRoute",
    ),
    "httproutefilter: status code is a string": (
        "HTTPRouteFilter",
        _set(["spec", "directResponse", "statusCode"], "503"),
        "'503' is not of type",
        lambda d: True,
    ),
    "httproutefilter: page ConfigMap missing": (
        "HTTPRouteFilter",
        _set(["spec", "directResponse", "body", "valueRef", "name"], "nope"),
        "not in the output",
        lambda d: True,
    ),
    "httproute: ExtensionRef to a missing filter": (
        "HTTPRoute",
        lambda d: d["spec"]["rules"][0]["filters"][0]["extensionRef"].update({"name": "nope"}),
        "not in the output",
        lambda d: any(
            f["type"] == "ExtensionRef" for f in d["spec"]["rules"][0].get("filters", [])
        ),
    ),
    "httproute: header modifier value empty": (
        "HTTPRoute",
        lambda d: next(
            f for f in d["spec"]["rules"][0]["filters"] if f["type"] == "ResponseHeaderModifier"
        )["responseHeaderModifier"]["set"][0].update({"value": ""}),
        "should be non-empty",
        lambda d: any(
            f["type"] == "ResponseHeaderModifier" and "set" in f["responseHeaderModifier"]
            for f in d["spec"]["rules"][0].get("filters", [])
        ),
    ),
    "clienttrafficpolicy: trusted proxy not a CIDR": (
        "ClientTrafficPolicy",
        _set(["spec", "clientIPDetection", "xForwardedFor", "trustedCIDRs"], ["cloudflare"]),
        "'cloudflare' does not match",
        lambda d: "clientIPDetection" in d["spec"],
    ),
    "backend: fallback is a string": (
        "Backend",
        _set(["spec", "fallback"], "yes"),
        "'yes' is not of type 'boolean'",
        lambda d: "fallback" in d["spec"],
    ),
    "backend: app protocol not in enum": (
        "Backend",
        _set(["spec", "appProtocols"], ["gateway.envoyproxy.io/h3"]),
        "h3",
        lambda d: True,
    ),
}


@pytest.fixture(scope="module")
def sample_documents(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Both exports of an inventory with every kind of object in them (a Secret too)."""
    from harness import Certs

    directory = tmp_path_factory.mktemp("sample")
    certs = Certs(directory / "certs")
    inventory = (REPO / "tests" / "export_cases" / "tls-terminate" / "inventory.yaml").read_text()
    for name in ("site", "shop"):
        cert, key = certs.issue(name, f"{name}.example.com")
        inventory = inventory.replace(f"/nonexistent/{name}/fullchain.pem", str(cert))
        inventory = inventory.replace(f"/nonexistent/{name}/privkey.pem", str(key))
    (directory / "inventory.yaml").write_text(inventory)
    source = load(str(directory / "inventory.yaml"))
    docs = documents(export_k8s(source, K8sOptions()))
    docs += documents(export_gateway_api(source, GatewayOptions()))
    inventory = (REPO / "tests" / "export_cases" / "upstream-tls" / "inventory.yaml").read_text()
    inventory = inventory.replace("/nonexistent/camera-ca.pem", str(certs.ca_path))
    (directory / "upstream-tls.yaml").write_text(inventory)
    upstream_tls = load(str(directory / "upstream-tls.yaml"))
    docs += documents(export_gateway_api(upstream_tls, GatewayOptions(name="other")))
    docs += documents(export_k8s(upstream_tls, K8sOptions(name="other")))
    # Envoy Gateway's policies, with a readable htpasswd file (a users Secret).
    users = directory / "family.htpasswd"
    users.write_text("alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n")
    access = (REPO / "tests" / "export_cases" / "access" / "inventory.yaml").read_text()
    (directory / "access.yaml").write_text(
        access.replace("/nonexistent/family.htpasswd", str(users))
    )
    for name, path in (
        ("access", directory / "access.yaml"),
        ("failover", REPO / "tests" / "export_cases" / "failover" / "inventory.yaml"),
        ("pages", REPO / "tests" / "export_cases" / "pages" / "inventory.yaml"),
    ):
        result = export_gateway_api(load(str(path)), GatewayOptions(name=name))
        docs += documents(result)
    assert problems(docs, missing=left_out_of(docs)) == []
    return docs


def left_out_of(docs: list[dict[str, Any]]) -> set[str]:
    """The certificate Secrets the sample's policies inventories cannot read (their keys are
    in /nonexistent): named by the Gateways, not in the output."""
    present = {f"{d['kind']}/{d['metadata']['name']}" for d in docs}
    named = {
        f"Secret/{ref['name']}"
        for d in docs
        if d["kind"] == "Gateway"
        for listener in d["spec"]["listeners"]
        for ref in (listener.get("tls") or {}).get("certificateRefs", [])
    }
    return named - present


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_objects_fail_validation(case: str, sample_documents: list[dict[str, Any]]) -> None:
    kind, change, words, *pick = BROKEN[case]
    docs = copy.deepcopy(sample_documents)
    # The first object of the kind (an HTTPRoute that forwards, not the https redirect), or
    # the first the case picks.
    target = next(
        d
        for d in docs
        if d["kind"] == kind
        and (
            pick[0](d) if pick else (kind != "HTTPRoute" or "backendRefs" in d["spec"]["rules"][0])
        )
    )
    change(target)
    for channel in CHANNELS:
        found = problems(docs, channel, left_out_of(docs))
        assert found, f"{case}: the broken object passed validation ({channel})"
        assert any(words in p for p in found), found
