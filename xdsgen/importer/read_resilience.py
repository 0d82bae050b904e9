"""The edge features an inventory can say (issue 15), read from a hand-written config:
active health checks, outlier detection, backup endpoints (priority 1), HTTP/2 to the
upstream, retry policies, stream idle timeouts of routes, response compression.

Each is read into a normalised value (Envoy's defaults filled in) so that the comparer
sees the original and the draft's render alike: a difference is left only where the two
really behave otherwise. The values read are also the objects' extras (carrying.py): a
patch that replaces xdsgen's field with the original's is proven by the same value read
back. What cannot be read at all stays a difference here, carried as it is.
"""

from __future__ import annotations

from typing import Any, Optional

from xdsgen.importer.carrying import carry, filter_list
from xdsgen.importer.inputs import Context
from xdsgen.importer.semantics import Cluster, Hcm, HealthCheck, Retry, Vhost
from xdsgen.importer.shapes import (
    as_list,
    as_map,
    duration_ns,
    enum,
    extension,
    integer,
    maps,
    message_name,
    text,
    texts,
    type_url,
    unwrap,
)

_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
PANIC_KEY = "healthy_panic_threshold"
_PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
_SECOND = 10**9
# Envoy's defaults (health_check.proto, outlier_detection.proto, route_components.proto).
_NO_TRAFFIC_INTERVAL = 60 * _SECOND
# The extras keys (and patch fields) of the cluster settings read here.
PANIC = "common_lb_config.healthy_panic_threshold"
OVERPROVISIONING = "load_assignment.policy.overprovisioning_factor"
RETRY = "route.retry_policy"
IDLE_TIMEOUT = "route.idle_timeout"
_OUTLIER_DEFAULTS = {
    "consecutive_5xx": 5,
    "enforcing_consecutive_5xx": 100,
    "consecutive_gateway_failure": 5,
    "enforcing_consecutive_gateway_failure": 0,
    "enforcing_success_rate": 100,
    "max_ejection_percent": 10,
}
_OUTLIER_TIMES = {"interval": 10 * _SECOND, "base_ejection_time": 30 * _SECOND}
_HC_READ = {
    "timeout",
    "interval",
    "no_traffic_interval",
    "unhealthy_threshold",
    "healthy_threshold",
    "http_health_check",
    "tcp_health_check",
}
_RETRY_READ = {
    "retry_on",
    "num_retries",
    "retry_host_predicate",
    "host_selection_retry_max_attempts",
}


# --------------------------------------------------------------------------- clusters


def read_cluster(ctx: Context, cluster: Cluster, data: dict[str, Any]) -> set[str]:
    """Fill the cluster's edge features; returns the cluster keys read (the caller reports
    the others)."""
    read = set()
    checks = maps(data.get("health_checks"))
    if len(checks) == 1:
        cluster.health = _health_check(ctx, cluster, checks[0])
        read.add("health_checks")
    elif not checks and "health_checks" in data:
        read.add("health_checks")
    if isinstance(data.get("outlier_detection"), dict):
        cluster.outlier = _outlier(data["outlier_detection"])
        read.add("outlier_detection")
    lb = as_map(data.get("common_lb_config"))
    # A threshold without a value is 0% (a Percent's default), none at all is Envoy's 50%.
    panic = as_map(lb.get(PANIC_KEY)).get("value", 0) if PANIC_KEY in lb else None
    if isinstance(panic, (int, float)) and not isinstance(panic, bool):
        cluster.panic_threshold = float(panic)
    if set(lb) <= {PANIC_KEY} and "common_lb_config" in data:
        read.add("common_lb_config")  # the rest is carried as it is (unread_part)
    # Known by the message's type: the key (its name) may have been read as camelCase.
    options = list(as_map(data.get("typed_extension_protocol_options")).values())
    if len(options) == 1 and type_url(unwrap(options[0])) == _HTTP_OPTIONS:
        explicit = as_map(unwrap(options[0]).get("explicit_http_config"))
        extra = set(unwrap(options[0])) - {"@type", "explicit_http_config"}
        if set(explicit) == {"http2_protocol_options"} and not extra:
            cluster.http2 = True
            read.add("typed_extension_protocol_options")
    if isinstance(data.get("http2_protocol_options"), dict):  # the deprecated cluster field
        cluster.http2 = True
        read.add("http2_protocol_options")
    # What xdsgen renders itself, as read: the same value is the same behaviour however
    # each side says it (carrying.py). A field read otherwise (two checks) is carried by
    # the caller, which records it over this.
    cluster.extras.update(
        {
            ("cluster", "health_checks"): cluster.health,
            ("cluster", "outlier_detection"): cluster.outlier,
            ("cluster", PANIC): cluster.panic_threshold,
            ("cluster", OVERPROVISIONING): cluster.overprovisioning,
        }
    )
    return read


def unread_part(key: str, value: Any) -> Any:
    """What a patch carries of a cluster field read only in part: common_lb_config
    without its panic threshold (read, and carried by its own patch)."""
    if key == "common_lb_config" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != PANIC_KEY}
    return value


def _health_check(ctx: Context, cluster: Cluster, data: dict[str, Any]) -> HealthCheck:
    http = data.get("http_health_check")
    extra = sorted(set(data) - _HC_READ)
    path = host = None
    any_2xx = http2 = False
    if isinstance(http, dict):
        path = text(http.get("path")) or "/"
        host = text(http.get("host"))
        ranges = [
            (integer(r.get("start")), integer(r.get("end")))
            for r in maps(http.get("expected_statuses"))
        ]
        any_2xx = ranges == [(200, 300)]
        http2 = enum(http.get("codec_client_type"), "HTTP1") in ("HTTP2", "1")
        extra += sorted(
            f"http_health_check.{k}"
            for k in set(http) - {"path", "host", "expected_statuses", "codec_client_type"}
        )
    elif not isinstance(data.get("tcp_health_check"), dict) or data["tcp_health_check"]:
        extra.append("a check other than HTTP GET or TCP connect")
    interval = duration_ns(data.get("interval")) or 0
    return HealthCheck(
        http_path=path,
        host=host,
        interval=interval,
        timeout=duration_ns(data.get("timeout")) or 0,
        no_traffic_interval=duration_ns(data.get("no_traffic_interval")) or _NO_TRAFFIC_INTERVAL,
        unhealthy_threshold=integer(data.get("unhealthy_threshold")) or 0,
        healthy_threshold=integer(data.get("healthy_threshold")) or 0,
        any_2xx=any_2xx,
        http2=http2,
        extra=tuple(extra),
    )


def _outlier(data: dict[str, Any]) -> tuple[Any, ...]:
    values: list[Any] = [integer(data.get(k, d)) for k, d in sorted(_OUTLIER_DEFAULTS.items())]
    values += [duration_ns(data[k]) if k in data else d for k, d in sorted(_OUTLIER_TIMES.items())]
    values.append(tuple(sorted(set(data) - set(_OUTLIER_DEFAULTS) - set(_OUTLIER_TIMES))))
    return tuple(values)


def describe_outlier(outlier: Optional[tuple[Any, ...]]) -> str:
    if outlier is None:
        return "ejects no endpoint"
    named = dict(zip([*sorted(_OUTLIER_DEFAULTS), *sorted(_OUTLIER_TIMES)], outlier))
    rules = []
    if named["enforcing_consecutive_gateway_failure"]:
        rules.append(f"{named['consecutive_gateway_failure']} gateway failures in a row")
    if named["enforcing_consecutive_5xx"]:
        rules.append(f"{named['consecutive_5xx']} 5xx in a row")
    if named["enforcing_success_rate"]:
        rules.append("a low success rate")
    text_ = f"ejects an endpoint after {' or '.join(rules) or 'nothing'}"
    text_ += f" (at most {named['max_ejection_percent']}% of them)"
    return text_ + (f", with {', '.join(outlier[-1])}" if outlier[-1] else "")


def priority_group(priority: int, cluster: Cluster, endpoints: list[str]) -> bool:
    """Take the endpoints of a priority 1 group as the backup; False for other levels."""
    if priority != 1:
        return False
    cluster.backup = tuple(dict.fromkeys((*cluster.backup, *endpoints)))
    return True


# --------------------------------------------------------------------------- routes


def read_retry(policy: Any) -> Optional[Retry]:
    policy = as_map(policy)
    if not policy:
        return None
    on = tuple(
        sorted(
            {c.strip() for t in texts(policy.get("retry_on")) for c in t.split(",") if c.strip()}
        )
    )
    predicates = [text(p.get("name")) or "" for p in maps(policy.get("retry_host_predicate"))]
    extra = sorted(set(policy) - _RETRY_READ)
    extra += [f"retry_host_predicate {p}" for p in predicates if p != _PREVIOUS_HOSTS]
    retries = integer(policy.get("num_retries"))
    return Retry(
        retries=1 if retries is None else retries,  # Envoy's default: 1
        on=on,
        other_hosts=_PREVIOUS_HOSTS in predicates,
        extra=tuple(extra),
    )


# --------------------------------------------------------------------------- compression

XDSGEN_COMPRESSION = ("brotli", "gzip")  # the libraries xdsgen's compression uses, in order


def compressor_filter(entry: Any) -> Optional[tuple[str, str, bool, list[str]]]:
    """(filter name, library, disabled by default, other settings) of a compressor
    filter; None for any other filter."""
    kind, config, _ = extension(entry)
    if kind != "Compressor":
        return None
    library = as_map(config.get("compressor_library"))
    name = message_name(type_url(unwrap(library.get("typed_config")))).lower()
    settings = sorted(set(config) - {"@type", "compressor_library"})
    response = as_map(config.get("response_direction_config"))
    if "response_direction_config" in config and not response:
        settings.remove("response_direction_config")
    if set(unwrap(library.get("typed_config"))) - {"@type"}:
        settings.append(f"{name} settings")
    return (
        text(as_map(entry).get("name")) or "",
        name,
        as_map(entry).get("disabled") is True,
        settings,
    )


def read_compressor(ctx: Context, entry: Any, where: str, hcm: Hcm, config: dict[str, Any]) -> bool:
    """Record a compressor filter on its connection manager (False: not one). Settings
    beyond Envoy's defaults are carried with the whole filter list (a patch replaces it)."""
    compressor = compressor_filter(entry)
    if compressor is None:
        return False
    name, library, disabled, settings = compressor
    hcm.compressors.append((name, library, disabled))
    if settings:
        whole = filter_list(as_list(config.get("http_filters")))
        carry(
            ctx,
            hcm,
            "tuning",
            where,
            f"compressor {name or library} settings ({', '.join(settings)}) are not carried "
            "over: the draft compresses with Envoy's defaults",
            "connection_manager",
            "http_filters",
            None if whole is None else {"http_filters": whole},
            entry,
            config,
        )
    return True


def vhost_compression(hcm: Hcm, vhost: Vhost, data: dict[str, Any]) -> tuple[str, ...]:
    """The libraries a vhost's responses get: the manager's compressors, less the ones
    disabled by default and not enabled here (typed_per_filter_config)."""
    per_filter = as_map(data.get("typed_per_filter_config"))
    found = []
    for name, library, disabled in hcm_compressors(hcm):
        config = per_filter.get(name)
        if config is None:
            on = not disabled
        else:
            kind = type_url(config).rsplit(".", 1)[-1]
            inner = (
                unwrap(as_map(config).get("config")) if kind == "FilterConfig" else as_map(config)
            )
            off = as_map(config).get("disabled") is True or as_map(inner).get("disabled") is True
            on = not off
        if on:
            found.append(library)
    return tuple(found)


def offer_compressors(ctx: Context, config: dict[str, Any], where: str, hcm: Hcm) -> None:
    """Compression with other libraries than xdsgen's (the comparer names what each vhost
    gets): the filter list is offered as a patch, which the draft's vhosts then use."""
    libraries = tuple(library for _, library, _ in hcm.compressors)
    compressing = any(vhost.compression for vhost in hcm.vhosts or [])
    if not compressing or libraries == XDSGEN_COMPRESSION:
        return
    whole = filter_list(as_list(config.get("http_filters")))
    merge = None if whole is None else {"http_filters": whole}
    kind = "connection_manager"
    carry(ctx, hcm, "responses", where, "", kind, "http_filters", merge, None, config, quiet=True)


def other_filter_configs(hcm: Hcm, configs: dict[str, Any]) -> dict[str, Any]:
    """Per-filter configs but for the compressors' (read as compression); a compressor's
    override without its filter in the chain does nothing."""
    compressors = {name for name, _, _ in hcm.compressors}
    return {
        name: config
        for name, config in configs.items()
        if name not in compressors and not _compressor_override(config)
    }


def _compressor_override(config: Any) -> bool:
    """Whether a vhost's typed_per_filter_config entry is a compressor's (per route)."""
    kind = message_name(type_url(config))
    inner = unwrap(as_map(config).get("config")) if kind == "FilterConfig" else as_map(config)
    return message_name(type_url(inner)) == "CompressorPerRoute"


def hcm_compressors(hcm: Hcm) -> list[tuple[str, str, bool]]:
    return list(hcm.compressors)


# --------------------------------------------------------------------------- the draft

MAX_RETRIES = 10  # the inventory's limit
_MAX_THRESHOLD = 100


def upstream_extras(cluster: Cluster) -> dict[str, Any]:
    """The inventory keys of an upstream's edge features: backup, health_check, h2. What
    they cannot say exactly (a check's extra settings) the comparer names."""
    from xdsgen.importer.shapes import nanos_text

    spec: dict[str, Any] = {}
    if cluster.backup:
        spec["backup"] = list(cluster.backup)
    check = cluster.health
    if check is not None and check.interval > 0 and check.timeout > 0:
        entry: dict[str, Any] = (
            {"path": check.http_path} if check.http_path is not None else {"tcp": True}
        )
        if check.host is not None and check.http_path is not None:
            entry["host"] = check.host
        entry["interval"] = nanos_text(check.interval)
        entry["timeout"] = nanos_text(check.timeout)
        if 1 <= check.unhealthy_threshold <= _MAX_THRESHOLD:
            entry["unhealthy_threshold"] = check.unhealthy_threshold
        if 1 <= check.healthy_threshold <= _MAX_THRESHOLD:
            entry["healthy_threshold"] = check.healthy_threshold
        spec["health_check"] = entry
    if cluster.http2:
        spec["h2"] = True
    return spec
