"""Which topic each Envoy field the inventory cannot say belongs to, and which fields change
nothing a client sees. One table per message kind; the readers look fields up here, so
that how loud a left-out field is gets decided in one place. Anything not listed is a
difference of topic "other" (or "access" for filters, which may refuse requests).
"""

from __future__ import annotations

# ---------------------------------------------------------------- http

# HTTP filters by message name: the topic of their difference (unknown ones: access, since
# a filter may refuse requests).
HTTP_FILTERS = {
    "RBAC": "access",
    "ExtAuthz": "auth",
    "BasicAuth": "auth",
    "JwtAuthentication": "auth",
    "OAuth2": "auth",
    "CSRFPolicy": "access",
    "Lua": "access",
    "Wasm": "access",
    "Cors": "headers",
    "HeaderMutation": "headers",
    "Gzip": "other",
    "Compressor": "other",
    "Decompressor": "other",
    "GrpcWeb": "other",
    "GrpcJsonTranscoder": "other",
    "GrpcStats": "other",
    "GrpcHttp1Bridge": "other",
    "HealthCheck": "responses",
    "CustomResponse": "responses",
    "LocalRateLimit": "tuning",
    "RateLimit": "tuning",
    "Buffer": "tuning",
    "AdaptiveConcurrency": "tuning",
    "AdmissionControl": "tuning",
    "Fault": "other",
    "HeaderToMetadata": "other",
    "IpTagging": "other",
    "Cache": "other",
    "SetMetadata": "other",
    "FilterConfig": "routing",  # dynamic forward proxy
}
# The same by package, for filters whose message is just Config (header_to_metadata.v3.Config).
HTTP_FILTER_PACKAGES = {
    "header_to_metadata": "other",
    "dynamic_forward_proxy": "routing",
    "grpc_web": "other",
    "compressor": "other",
    "cors": "headers",
    "health_check": "responses",
    "buffer": "tuning",
    "fault": "other",
    "local_ratelimit": "tuning",
    "ratelimit": "tuning",
    "header_mutation": "headers",
    "rbac": "access",
    "ext_authz": "auth",
    "basic_auth": "auth",
    "jwt_authn": "auth",
    "oauth2": "auth",
    "lua": "access",
    "wasm": "access",
}
# Connection manager keys xdsgen's own defaults cover, or that change nothing a request sees.
HCM_QUIET = {
    "@type",
    "stat_prefix",
    "codec_type",
    "route_config",
    "rds",
    "http_filters",
    "access_log",
    "use_remote_address",
    "strip_any_host_port",
    "strip_matching_host_port",
    "normalize_path",
    "merge_slashes",
    "path_with_escaped_slashes_action",
    "upgrade_configs",
    "generate_request_id",
    "skip_xff_append",
    "stream_error_on_invalid_http_message",
    "access_log_options",
}
HCM_TOPICS = {
    "tracing": "tracing",
    "server_name": "headers",
    "server_header_transformation": "headers",
    "via": "headers",
    "add_user_agent": "headers",
    "forward_client_cert_details": "headers",
    "set_current_client_cert_details": "headers",
    "preserve_external_request_id": "headers",
    "always_set_request_id_in_response": "headers",
    "xff_num_trusted_hops": "headers",
    "internal_address_config": "headers",
    "original_ip_detection_extensions": "headers",
    "local_reply_config": "responses",
    "stream_idle_timeout": "timeouts",
    "request_timeout": "timeouts",
    "request_headers_timeout": "timeouts",
    "drain_timeout": "timeouts",
    "delayed_close_timeout": "timeouts",
    "common_http_protocol_options": "timeouts",
    "max_request_headers_kb": "tuning",
    "http_protocol_options": "tuning",
    "http2_protocol_options": "tuning",
    "http3_protocol_options": "tuning",
}
ROUTE_ACTION_READ = {"cluster", "prefix_rewrite", "timeout", "upgrade_configs", "use_websocket"}
ROUTE_ACTION_TOPICS = {
    "host_rewrite_literal": "headers",
    "host_rewrite": "headers",
    "auto_host_rewrite": "headers",
    "host_rewrite_header": "headers",
    "host_rewrite_path_regex": "headers",
    "append_x_forwarded_host": "headers",
    "cors": "headers",
    "regex_rewrite": "routing",
    "path_rewrite_policy": "routing",
    "retry_policy": "routing",
    "retry_policy_typed_config": "routing",
    "hedge_policy": "routing",
    "hash_policy": "routing",
    "metadata_match": "routing",
    "internal_redirect_policy": "routing",
    "idle_timeout": "timeouts",
    "max_stream_duration": "timeouts",
    "max_grpc_timeout": "timeouts",
    "grpc_timeout_offset": "timeouts",
    "rate_limits": "tuning",
    "include_vh_rate_limits": "tuning",
    "priority": "tuning",
    "cluster_not_found_response_code": "responses",
}
HEADER_KEYS = {
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
    "include_request_attempt_count",
    "include_attempt_count_in_response",
    "cors",
    "internal_only_headers",
}
# ---------------------------------------------------------------- listeners

LISTENER_QUIET = {
    "@type",
    "name",
    "address",
    "filter_chains",
    "default_filter_chain",
    "listener_filters",
    "stat_prefix",
    "traffic_direction",
    "udp_listener_config",
    "metadata",
    "drain_type",
    "enable_reuse_port",
    "reuse_port",
    "access_log",
    "continue_on_listener_filters_timeout",
    "listener_filters_timeout",
    "bind_to_port",
}
LISTENER_TOPICS = {
    "per_connection_buffer_limit_bytes": "tuning",
    "socket_options": "tuning",
    "tcp_backlog_size": "tuning",
    "connection_balance_config": "tuning",
    "enable_mptcp": "tuning",
    "ignore_global_conn_limit": "tuning",
    "max_connections_to_accept_per_socket_event": "tuning",
    "tcp_fast_open_queue_length": "tuning",
    "transparent": "other",
    "freebind": "other",
    "use_original_dst": "routing",
    "additional_addresses": "ports",
}
# Listener filters that change nothing the draft does differently.
LISTENER_FILTERS_QUIET = {"TlsInspector", "HttpInspector"}
LISTENER_FILTER_TOPICS = {"ProxyProtocol": "access", "OriginalDst": "routing"}
NETWORK_FILTERS = {
    "RBAC": "access",
    "ExtAuthz": "auth",
    "ClientSSLAuth": "auth",
    "LocalRateLimit": "tuning",
    "RateLimit": "tuning",
    "ConnectionLimit": "tuning",
    "MySQLProxy": "other",
    "PostgresProxy": "other",
    "MongoProxy": "other",
    "KafkaBroker": "other",
    "ZooKeeperProxy": "other",
}
# Filter chain keys read, or that change nothing a client sees (use_proxy_proto: v2's PROXY
# protocol, is not among them).
CHAIN_READ = {
    "filter_chain_match",
    "transport_socket",
    "tls_context",
    "filters",
    "name",
    "metadata",
    "transport_socket_connect_timeout",
}
MATCH_READ = {"server_names", "sni_domains", "transport_protocol"}
TLS_QUIET = {"@type", "common_tls_context", "require_sni", "full_scan_certs_on_sni_mismatch"}
TLS_TOPICS = {
    "require_client_certificate": "access",
    "session_ticket_keys": "tuning",
    "session_ticket_keys_sds_secret_config": "tuning",
    "disable_stateless_session_resumption": "tuning",
    "disable_stateful_session_resumption": "tuning",
    "session_timeout": "tuning",
    "ocsp_staple_policy": "tuning",
    "prefer_client_ciphers": "tls",
}
COMMON_QUIET = {"tls_certificates", "tls_certificate_sds_secret_configs", "alpn_protocols"}

# ---------------------------------------------------------------- clusters

# Keys read here, or that change nothing a request sees.
CLUSTER_READ = {
    "@type",
    "name",
    "type",
    "connect_timeout",
    "lb_policy",
    "load_assignment",
    "hosts",
    "dns_lookup_family",
    "transport_socket",
    "tls_context",
    "eds_cluster_config",
    "alt_stat_name",
    "metadata",
    "track_cluster_stats",
    "track_timeout_budgets",
    "respect_dns_ttl",
    "dns_refresh_rate",
    "dns_failure_refresh_rate",
    "cleanup_interval",
    "ring_hash_lb_config",
    "maglev_lb_config",
    "least_request_lb_config",
    "round_robin_lb_config",
    "original_dst_lb_config",
    "wait_for_warm_on_init",
    "close_connections_on_host_health_failure",
    "ignore_health_on_host_removal",
}
CLUSTER_TOPICS = {
    "health_checks": ("health-checks", "active health checks are not carried over"),
    "outlier_detection": ("health-checks", "outlier detection is not carried over"),
    "circuit_breakers": ("tuning", "circuit breakers are not carried over"),
    "http2_protocol_options": ("upstream", "it speaks HTTP/2 to the upstream; the draft HTTP/1.1"),
    "upstream_http_protocol_options": ("upstream", "upstream HTTP options are not carried over"),
    "common_http_protocol_options": ("tuning", "HTTP timeouts/limits are not carried over"),
    "http_protocol_options": ("tuning", "HTTP/1 options are not carried over"),
    "upstream_connection_options": ("tuning", "TCP keepalive options are not carried over"),
    "per_connection_buffer_limit_bytes": ("tuning", "the buffer limit is not carried over"),
    "common_lb_config": ("tuning", "load-balancing options are not carried over"),
    "max_requests_per_connection": ("tuning", "max requests per connection are not carried over"),
    "lb_subset_config": ("routing", "subset load balancing is not carried over"),
    "dns_resolvers": ("upstream", "its own DNS resolvers are not carried over"),
    "typed_dns_resolver_config": ("upstream", "its own DNS resolver is not carried over"),
    "dns_resolution_config": ("upstream", "its own DNS resolver is not carried over"),
    "use_tcp_for_dns_lookups": ("upstream", "DNS over TCP is not carried over"),
    "upstream_bind_config": ("upstream", "the upstream source address is not carried over"),
    "protocol_selection": ("upstream", "USE_DOWNSTREAM_PROTOCOL is not carried over"),
    "transport_socket_matches": ("upstream", "per-endpoint transport sockets not carried over"),
    "preconnect_policy": ("tuning", "preconnecting is not carried over"),
}
