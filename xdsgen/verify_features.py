"""The facts render.verify compares for the edge features (issue 15): health checks,
ejection, backup endpoints, HTTP/2 upstreams, retries, streaming timeouts, error pages,
maintenance, compression, HTTP/3 and access-log formats.

Each pair of functions says the same fact twice: once from the model, once from the
rendered file parsed back. render.py appends them to its own facts, so a template that
prints one of these features wrong is refused before anything is written.
"""

from __future__ import annotations

from typing import Any, Optional

from xdsgen.model.ir import AccessLogFormat, Cluster, FilterChain, HttpManager, Route, VirtualHost


def _endpoint(e: dict[str, Any]) -> tuple[Any, Any]:
    sock = e["endpoint"]["address"]["socket_address"]
    return (sock["address"], sock["port_value"])


def cluster(c: Cluster) -> tuple[Any, ...]:
    check = c.health_check
    return (
        tuple((e.host, e.port) for e in c.backup),
        None
        if check is None
        else (
            check.interval,
            check.timeout,
            check.unhealthy_threshold,
            check.healthy_threshold,
            check.http_path,
            check.host,
            check.http2,
        ),
        None
        if c.outlier is None
        else (
            c.outlier.consecutive_gateway_failure,
            c.outlier.interval,
            c.outlier.base_ejection_time,
            c.outlier.max_ejection_percent,
        ),
        c.http2,
        c.panic_threshold,
        c.overprovisioning_factor,
    )


def parsed_cluster(doc: dict[str, Any]) -> tuple[Any, ...]:
    assignment = doc["load_assignment"]
    backup = tuple(
        _endpoint(e)
        for group in assignment["endpoints"]
        if group.get("priority", 0) == 1
        for e in group["lb_endpoints"]
    )
    checks = doc.get("health_checks") or []
    check = None
    if checks:
        (hc,) = checks
        http = hc.get("http_health_check")
        if hc["no_traffic_interval"] != hc["interval"]:
            return ("no_traffic_interval differs from interval",)
        if http is not None and http["expected_statuses"] != [{"start": 200, "end": 300}]:
            return ("the HTTP check does not take any 2xx",)
        check = (
            hc["interval"],
            hc["timeout"],
            hc["unhealthy_threshold"],
            hc["healthy_threshold"],
            http["path"] if http else None,
            http.get("host") if http else None,
            bool(http) and http.get("codec_client_type") == "HTTP2",
        )
    od = doc.get("outlier_detection")
    outlier = None
    if od is not None:
        outlier = (
            od["consecutive_gateway_failure"],
            od["interval"],
            od["base_ejection_time"],
            od["max_ejection_percent"],
        )
    options = (doc.get("typed_extension_protocol_options") or {}).get(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {}
    )
    panic = (doc.get("common_lb_config") or {}).get("healthy_panic_threshold", {}).get("value")
    return (
        backup,
        check,
        outlier,
        "http2_protocol_options" in options.get("explicit_http_config", {}),
        panic,
        (assignment.get("policy") or {}).get("overprovisioning_factor"),
    )


def route(r: Route) -> tuple[Any, ...]:
    return (r.retries, r.retry_on, r.idle_timeout, r.direct_status, r.direct_body)


def parsed_route(r: dict[str, Any]) -> tuple[Any, ...]:
    action = r.get("route", {})
    policy = action.get("retry_policy", {})
    direct = r.get("direct_response", {})
    return (
        policy.get("num_retries", 0),
        policy.get("retry_on"),
        action.get("idle_timeout"),
        direct.get("status"),
        direct.get("body", {}).get("inline_string") if direct else None,
    )


def vhost(vh: VirtualHost) -> tuple[Any, ...]:
    page = vh.custom_response
    return (None if page is None else (page.body, page.content_type), vh.compressors)


def parsed_vhost(vh: dict[str, Any]) -> tuple[Any, ...]:
    config = vh.get("typed_per_filter_config") or {}
    page = None
    custom = config.get("envoy.filters.http.custom_response")
    if custom is not None:
        (matcher,) = custom["custom_response_matcher"]["matcher_list"]["matchers"]
        policy = matcher["on_match"]["action"]["typed_config"]
        (header,) = policy["response_headers_to_add"]
        page = (policy["body"]["inline_string"], header["header"]["value"])
    compressors = tuple(
        name for name, value in config.items() if "compressor" in name and not value.get("disabled")
    )
    return (page, compressors)


def route_config(response_headers: Any, limit: Optional[int]) -> tuple[Any, ...]:
    return (tuple(tuple(h) for h in response_headers), limit)


def parsed_route_config(rc: dict[str, Any]) -> tuple[Any, ...]:
    headers = tuple(
        (h["header"]["key"], h["header"]["value"]) for h in rc.get("response_headers_to_add", [])
    )
    return (headers, rc.get("max_direct_response_body_size_bytes"))


def _log(log_format: Optional[AccessLogFormat]) -> Any:
    if log_format is None:
        return None
    return (log_format.text, tuple(log_format.json))


def chain(c: FilterChain, manager: Optional[HttpManager]) -> tuple[Any, ...]:
    network = manager or c.tcp
    log = _log(network.log_format) if network is not None else None
    if manager is None:
        return (c.quic, log)
    return (
        c.quic,
        log,
        manager.http3,
        tuple(x.filter for x in manager.compressors),
        manager.error_pages,
    )


def parsed_log(config: dict[str, Any]) -> Any:
    logs = config.get("access_log") or []
    log_format = logs[0]["typed_config"].get("log_format") if logs else None
    if log_format is None:
        return None
    text = log_format.get("text_format_source", {}).get("inline_string")
    return (text, tuple(log_format.get("json_format", {}).items()))


def parsed_chain(chain_doc: dict[str, Any], config: dict[str, Any]) -> tuple[Any, ...]:
    socket = (chain_doc.get("transport_socket") or {}).get("name")
    quic = socket == "envoy.transport_sockets.quic"
    log = parsed_log(config)
    if "rds" not in config:
        return (quic, log)
    filters = [f["name"] for f in config["http_filters"]]
    return (
        quic,
        log,
        config.get("codec_type") == "HTTP3" and "http3_protocol_options" in config,
        tuple(f for f in filters if "compressor" in f),
        "envoy.filters.http.custom_response" in filters,
    )


def chain_secret(chain_doc: dict[str, Any]) -> Optional[str]:
    """The SDS secret a chain terminates TLS with, over TCP or inside QUIC."""
    tls = (chain_doc.get("transport_socket") or {}).get("typed_config", {})
    context = tls.get("downstream_tls_context", tls).get("common_tls_context", {})
    secrets = context.get("tls_certificate_sds_secret_configs", [])
    return secrets[0]["name"] if secrets else None
