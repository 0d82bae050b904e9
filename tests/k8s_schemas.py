"""Validate Kubernetes objects without a cluster, against the vendored official schemas.

- Gateway API v1.6.1 CRDs (standard and experimental channel) and Envoy Gateway v1.9.0 CRDs
  (tests/data/*/): each served version's openAPIV3Schema;
- Kubernetes v1.35 core objects (tests/data/kubernetes-v1.35/definitions.json): the
  official OpenAPI v3 definitions, matched by x-kubernetes-group-version-kind.

As the API server would: an unknown apiVersion/kind is an error, an unknown field is an
error (kubectl's default strict field validation; the schemas set no additionalProperties,
so it is added wherever an object lists its properties and does not preserve unknown
fields), `metadata` is ObjectMeta. The `x-kubernetes-*` keys are ignored by jsonschema;
the CEL rules (x-kubernetes-validations) are not evaluated, so `semantic_problems` checks
the ones that matter for what xdsgen writes, and the references between objects.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Optional

import yaml

DATA = Path(__file__).resolve().parent / "data"
GATEWAY_API = DATA / "gateway-api-v1.6.1"
ENVOY_GATEWAY = DATA / "envoy-gateway-v1.9.0"
KUBERNETES = DATA / "kubernetes-v1.35" / "definitions.json"
OBJECT_META = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
CHANNELS = ("standard", "experimental")


def _strict(node: Any) -> Any:
    """Copy of a schema where every object that lists properties refuses other keys."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _core_components() -> dict[str, Any]:
    doc = json.loads(KUBERNETES.read_text())
    return {name: _strict(schema) for name, schema in doc["components"]["schemas"].items()}


def _crd_documents(path: Path) -> list[dict[str, Any]]:
    # Envoy Gateway's files are Helm templates: only the {{- if }} / {{- end }} lines.
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("{{"))
    return [doc for doc in yaml.safe_load_all(text) if doc]


@cache
def schemas(channel: str = "standard") -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON schema (with its own copy of the core components)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    components = _core_components()
    for name, schema in components.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            api = gvk["version"] if not gvk["group"] else f"{gvk['group']}/{gvk['version']}"
            found[(api, gvk["kind"])] = {
                "$ref": f"#/components/schemas/{name}",
                "components": {"schemas": components},
            }
    crd_files = sorted((GATEWAY_API / channel).glob("*.yaml")) + sorted(
        ENVOY_GATEWAY.glob("*.yaml")
    )
    for path in crd_files:
        for crd in _crd_documents(path):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served"):
                    continue
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schema["properties"]["metadata"] = {"$ref": OBJECT_META}
                schema["components"] = {"schemas": components}
                found[(f"{group}/{version['name']}", kind)] = schema
    return found


def schema_errors(obj: Any, channel: str = "standard") -> list[str]:
    import jsonschema

    if not isinstance(obj, dict):
        return [f"not an object: {obj!r:.80}"]
    key = (obj.get("apiVersion"), obj.get("kind"))
    schema = schemas(channel).get(key)  # type: ignore[arg-type]
    if schema is None:
        return [f"no schema for apiVersion {key[0]!r} kind {key[1]!r} ({channel})"]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{key[1]} {obj.get('metadata', {}).get('name')}: "
        f"{'.'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message:.300}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]


# --------------------------------------------------------------------------- server-side rules

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PATH_CHARS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")


def _object_problems(obj: dict[str, Any]) -> list[str]:
    kind, meta = obj.get("kind"), obj.get("metadata") or {}
    name = meta.get("name", "")
    where = f"{kind} {name}"
    problems = []
    if not (len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
        problems.append(f"{where}: name is not a DNS subdomain")
    if kind in ("Service",) and not (len(name) <= 63 and _DNS_LABEL.match(name)):
        problems.append(f"{where}: a Service name must be a DNS label")
    for key, value in (meta.get("labels") or {}).items():
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(f"{where}: label {key}={value!r} is not a valid label value")
    if kind in ("ConfigMap", "Secret"):
        data = obj.get("data") or {}
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in data.items())
        if size > 1024 * 1024:
            problems.append(f"{where}: data is {size} bytes, over 1 MiB")
        problems += [f"{where}: bad data key {k!r}" for k in data if not _CONFIG_KEY.match(k)]
    tls_keys = {"tls.crt", "tls.key"}
    if (
        kind == "Secret"
        and obj.get("type") == "kubernetes.io/tls"
        and not tls_keys <= set(obj.get("data") or {})
    ):
        problems.append(f"{where}: a kubernetes.io/tls Secret needs tls.crt and tls.key")
    if kind in ("Deployment", "DaemonSet"):
        problems += _pod_problems(where, obj)
    problems += _enum_problems(where, obj)
    if kind == "Service":
        ports = obj["spec"].get("ports", [])
        names = [p.get("name") for p in ports]
        if len(ports) > 1 and (None in names or len(set(names)) != len(names)):
            problems.append(f"{where}: several ports need unique names")
    if kind == "Gateway":
        problems += _gateway_problems(where, obj)
    if kind == "HTTPRoute":
        problems += _http_route_problems(where, obj)
    if obj.get("apiVersion") == "gateway.envoyproxy.io/v1alpha1":
        problems += _envoy_gateway_problems(where, obj)
    return problems


# The Envoy Gateway v1.9.0 CEL rules (x-kubernetes-validations) that bear on what the
# export writes, checked in code: kinds a policy may target, one of each union, bodies.
_POLICY_TARGETS = {
    "BackendTrafficPolicy": {
        "Gateway",
        "ListenerSet",
        "HTTPRoute",
        "GRPCRoute",
        "UDPRoute",
        "TCPRoute",
        "TLSRoute",
    },
    "ClientTrafficPolicy": {"Gateway", "ListenerSet"},
    "SecurityPolicy": {"Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "TCPRoute"},
}


def _envoy_gateway_problems(where: str, obj: dict[str, Any]) -> list[str]:
    kind, spec = obj["kind"], obj.get("spec") or {}
    problems = []
    for ref in spec.get("targetRefs", []) if kind in _POLICY_TARGETS else []:
        if (
            ref.get("group") != "gateway.networking.k8s.io"
            or ref.get("kind") not in (_POLICY_TARGETS[kind])
        ):
            problems.append(f"{where}: a {kind} cannot target {ref.get('kind')}")
    if "compression" in spec and "compressor" in spec:
        problems.append(f"{where}: either compression or compressor can be set, not both")
    active = (spec.get("healthCheck") or {}).get("active")
    if active is not None:
        for checker in ("http", "tcp"):
            if (active["type"] == checker.upper()) != (checker in active):
                problems.append(
                    f"{where}: If Health Checker type is {checker.upper()}, {checker} field "
                    "needs to be set."
                )
    for override in spec.get("responseOverride", []):
        if ("response" in override) == ("redirect" in override):
            problems.append(f"{where}: exactly one of response or redirect must be specified")
        for match in override["match"].get("statusCodes", []):
            if match.get("type", "Value") == "Value" and "value" not in match:
                problems.append(f"{where}: value must be set for type Value")
        problems += _body_problems(where, (override.get("response") or {}).get("body"))
    problems += _body_problems(where, (spec.get("directResponse") or {}).get("body"))
    for rule in (spec.get("authorization") or {}).get("rules", []):
        if "principal" not in rule and "cel" not in rule:
            problems.append(f"{where}: at least one of principal or cel must be specified")
    ext_auth = spec.get("extAuth")
    if ext_auth is not None:
        if ("grpc" in ext_auth) == ("http" in ext_auth):
            problems.append(f"{where}: only one of grpc or http can be specified")
        for service in (ext_auth.get("http"), ext_auth.get("grpc")):
            refs = (service or {}).get("backendRefs", [])
            if service is not None and not refs and "backendRef" not in service:
                problems.append(f"{where}: backendRef or backendRefs needs to be set")
            for ref in refs:
                if ref.get("kind") not in ("Service", "ServiceImport", "Backend"):
                    problems.append(f"{where}: BackendRefs only supports Service and Backend")
    if kind == "SecurityPolicy" and any(
        ref.get("kind") == "TCPRoute" for ref in spec.get("targetRefs", [])
    ):
        others = sorted(set(spec) - {"targetRefs", "authorization"})
        if others:
            problems.append(f"{where}: a TCPRoute takes only authorization, not {others}")
    return problems


def _body_problems(where: str, body: Optional[dict[str, Any]]) -> list[str]:
    if body is None:
        return []
    if body.get("type", "Inline") == "Inline":
        return [] if "inline" in body else [f"{where}: inline must be set for type Inline"]
    if "valueRef" not in body:
        return [f"{where}: valueRef must be set for type ValueRef"]
    if body["valueRef"].get("kind") != "ConfigMap":
        return [f"{where}: only ConfigMap is supported for ValueRef"]
    return []


# Enumerations the API server checks in code: the official OpenAPI documents of core
# objects give them only in descriptions. (field name, allowed values), wherever it occurs.
_CORE_ENUMS = {
    "protocol": {"TCP", "UDP", "SCTP"},
    "dnsPolicy": {"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"},
    "imagePullPolicy": {"Always", "Never", "IfNotPresent"},
    "ipFamilyPolicy": {"SingleStack", "PreferDualStack", "RequireDualStack"},
    "type": {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"},
}


def _enum_problems(where: str, obj: dict[str, Any]) -> list[str]:
    if obj.get("apiVersion") not in ("v1", "apps/v1"):
        return []
    found = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                allowed = _CORE_ENUMS.get(key)
                in_service = key != "type" or (path == ".spec" and obj["kind"] == "Service")
                if allowed and isinstance(value, str) and in_service and value not in allowed:
                    found.append(
                        f"{where}: {path}.{key}: {value!r} is not one of {sorted(allowed)}"
                    )
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)
            if path.endswith("ipFamilies"):
                found.extend(
                    f"{where}: ipFamilies: {item!r}"
                    for item in node
                    if item not in ("IPv4", "IPv6")
                )

    walk(obj, "")
    return found


def _pod_problems(where: str, obj: dict[str, Any]) -> list[str]:
    spec = obj["spec"]
    problems = []
    template_labels = spec["template"]["metadata"].get("labels", {})
    for key, value in spec["selector"].get("matchLabels", {}).items():
        if template_labels.get(key) != value:
            problems.append(f"{where}: the selector does not select the pod template")
    pod = spec["template"]["spec"]
    volumes = {v["name"] for v in pod.get("volumes", [])}
    if len(volumes) != len(pod.get("volumes", [])):
        problems.append(f"{where}: volume names repeat")
    for container in pod["containers"]:
        if not _DNS_LABEL.match(container["name"]):
            problems.append(f"{where}: container name {container['name']!r} is not a DNS label")
        seen = set()
        for port in container.get("ports", []):
            key = (port["containerPort"], port.get("protocol", "TCP"))
            if key in seen:
                problems.append(f"{where}: container port {key} twice")
            seen.add(key)
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"{where}: volumeMount {mount['name']} has no volume")
            if "subPath" in mount or "subPathExpr" in mount:
                problems.append(f"{where}: subPath mounts never update (kubernetes#50345)")
    return problems


def _gateway_problems(where: str, obj: dict[str, Any]) -> list[str]:
    problems = []
    listeners = obj["spec"]["listeners"]
    names = [item["name"] for item in listeners]
    if len(set(names)) != len(names):
        problems.append(f"{where}: Listener name must be unique within the Gateway")
    combos = [(item["port"], item["protocol"], item.get("hostname")) for item in listeners]
    if len(set(combos)) != len(combos):
        problems.append(f"{where}: Combination of port, protocol and hostname must be unique")
    for item in listeners:
        protocol, tls = item["protocol"], item.get("tls")
        if protocol in ("HTTP", "TCP", "UDP") and tls is not None:
            problems.append(f"{where}: {item['name']}: tls must not be specified for {protocol}")
        if protocol in ("TCP", "UDP") and "hostname" in item:
            problems.append(f"{where}: {item['name']}: hostname must not be set for {protocol}")
        if protocol == "HTTPS" and (
            not tls or tls.get("mode", "Terminate") != "Terminate" or not tls.get("certificateRefs")
        ):
            problems.append(f"{where}: {item['name']}: HTTPS needs Terminate and certificateRefs")
        if protocol == "TLS" and (not tls or "mode" not in tls):
            problems.append(f"{where}: {item['name']}: tls mode must be set for protocol TLS")
    return problems


def _http_route_problems(where: str, obj: dict[str, Any]) -> list[str]:
    problems = []
    spec = obj["spec"]
    parents = [(p.get("name"), p.get("sectionName")) for p in spec.get("parentRefs", [])]
    if len(set(parents)) != len(parents) or (
        len(parents) > 1 and any(section is None for _, section in parents)
    ):
        problems.append(f"{where}: sectionName must be set and unique for repeated parents")
    for rule in spec.get("rules", []):
        filters = [f["type"] for f in rule.get("filters", [])]
        if "RequestRedirect" in filters and rule.get("backendRefs"):
            problems.append(f"{where}: RequestRedirect filter must not be used with backendRefs")
        for match in rule.get("matches", []):
            path = match.get("path") or {}
            value = path.get("value", "/")
            if path.get("type", "PathPrefix") in ("Exact", "PathPrefix"):
                bad = any(s in value for s in ("//", "/./", "/../", "%2f", "%2F", "#"))
                if bad or not value.startswith("/") or not _PATH_CHARS.match(value):
                    problems.append(f"{where}: path {value!r} is refused by the CRD's rules")
        rewrite = next((f for f in rule.get("filters", []) if f["type"] == "URLRewrite"), None)
        if rewrite and rewrite["urlRewrite"]["path"]["type"] == "ReplacePrefixMatch":
            types = [m.get("path", {}).get("type") for m in rule.get("matches", [])]
            if types != ["PathPrefix"]:
                problems.append(f"{where}: replacePrefixMatch needs exactly one PathPrefix match")
    return problems


def reference_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Every name one object gives for another must be an object of the output (or, for
    Secrets and ConfigMaps listed as differences, `missing` may name it)."""
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    problems = []

    def need(kind: str, name: str, where: str) -> None:
        if name not in by_kind.get(kind, {}):
            problems.append(f"{where}: refers to {kind} {name}, which is not in the output")

    for gateway in by_kind.get("Gateway", {}).values():
        for item in gateway["spec"]["listeners"]:
            for ref in (item.get("tls") or {}).get("certificateRefs", []):
                need(ref.get("kind", "Secret"), ref["name"], f"Gateway listener {item['name']}")
    for kind in ("HTTPRoute", "TLSRoute", "TCPRoute", "UDPRoute"):
        for name, route in by_kind.get(kind, {}).items():
            for parent in route["spec"]["parentRefs"]:
                gateway = by_kind.get("Gateway", {}).get(parent["name"])
                listeners = (
                    {item["name"] for item in gateway["spec"]["listeners"]} if gateway else set()
                )
                if parent.get("sectionName") not in listeners:
                    problems.append(f"{kind} {name}: no listener {parent.get('sectionName')}")
            for rule in route["spec"]["rules"]:
                for ref in rule.get("backendRefs", []):
                    need(ref["kind"], ref["name"], f"{kind} {name}")
    policies = ("BackendTLSPolicy", "BackendTrafficPolicy", "ClientTrafficPolicy", "SecurityPolicy")
    for kind in policies:
        for name, policy in by_kind.get(kind, {}).items():
            for ref in policy["spec"]["targetRefs"]:
                need(ref["kind"], ref["name"], f"{kind} {name}")
                target = by_kind.get(ref["kind"], {}).get(ref["name"])
                if ref.get("sectionName") and target is not None:
                    sections = {
                        r.get("name")
                        for r in target["spec"].get("rules", target["spec"].get("listeners", []))
                    }
                    if ref["sectionName"] not in sections:
                        problems.append(f"{kind} {name}: no rule or listener {ref['sectionName']}")
            for ref in policy["spec"].get("validation", {}).get("caCertificateRefs", []):
                need(ref["kind"], ref["name"], f"{kind} {name}")
            for ref in _policy_refs(policy["spec"]):
                need(ref.get("kind", "Secret"), ref["name"], f"{kind} {name}")
    for name, route in by_kind.get("HTTPRoute", {}).items():
        for rule in route["spec"]["rules"]:
            for item in rule.get("filters", []):
                if item["type"] == "ExtensionRef":
                    ref = item["extensionRef"]
                    need(ref["kind"], ref["name"], f"HTTPRoute {name}")
    for name, item in by_kind.get("HTTPRouteFilter", {}).items():
        body = (item["spec"].get("directResponse") or {}).get("body") or {}
        if "valueRef" in body:
            need(body["valueRef"]["kind"], body["valueRef"]["name"], f"HTTPRouteFilter {name}")
    for kind in ("Deployment", "DaemonSet"):
        for name, workload in by_kind.get(kind, {}).items():
            for volume in workload["spec"]["template"]["spec"].get("volumes", []):
                if "configMap" in volume:
                    need("ConfigMap", volume["configMap"]["name"], f"{kind} {name}")
                if "secret" in volume:
                    need("Secret", volume["secret"]["secretName"], f"{kind} {name}")
    return problems


def _policy_refs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects an Envoy Gateway policy's settings name: pages, users, auth services."""
    refs = []
    for override in spec.get("responseOverride", []):
        body = (override.get("response") or {}).get("body") or {}
        if "valueRef" in body:
            refs.append(body["valueRef"])
    if "basicAuth" in spec:
        refs.append({"kind": "Secret", **spec["basicAuth"]["users"]})
    ext_auth = spec.get("extAuth") or {}
    for service in (ext_auth.get("http"), ext_auth.get("grpc")):
        refs += (service or {}).get("backendRefs", [])
    return refs


def problems(
    documents: list[Any], channel: str = "standard", missing: Optional[set[str]] = None
) -> list[str]:
    """Every schema error, server-side rule and dangling reference of a manifest list.
    `missing`: "Kind/name" objects deliberately left out (listed as differences)."""
    found: list[str] = []
    for doc in documents:
        errors = schema_errors(doc, channel)
        found += errors or _object_problems(doc)
    placeholders = [
        {"apiVersion": "v1", "kind": item.split("/")[0], "metadata": {"name": item.split("/")[1]}}
        for item in sorted(missing or ())
    ]
    found += reference_problems(documents + placeholders)
    return found
