"""Access-log line formats: Envoy's default, `combined` or `json`.

combined is the Apache/Nginx combined format with the Host first and the listener (or
port map) last:

  HOST CLIENT - - [29/Nov/2026:13:38:08 +0000] "GET /a HTTP/1.1" 200 512 "REF" "AGENT" https_ipv4

CrowdSec's nginx and apache2 parsers read a leading host as target_fqdn and ignore what
follows the user agent; GoAccess reads it with
--log-format='%v %h %^[%d:%t %^] "%r" %s %b "%R" "%u" %^' --date-format=%d/%b/%Y
--time-format=%T. json is one object per line with the same facts and a few more.
"""

from __future__ import annotations

from dataclasses import replace

from xdsgen.model.ir import AccessLogFormat, FilterChain, Listener, map_chains

FORMATS = ("default", "combined", "json")
_COMBINED = (
    "%REQ(:AUTHORITY)% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% - - "
    "[%START_TIME(%d/%b/%Y:%H:%M:%S %z)%] "
    '"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    '%RESPONSE_CODE% %BYTES_SENT% "%REQ(REFERER)%" "%REQ(USER-AGENT)%" {name}\n'
)
_JSON = (
    ("time", "%START_TIME%"),
    ("client", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
    ("host", "%REQ(:AUTHORITY)%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("status", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration_ms", "%DURATION%"),
    ("upstream", "%UPSTREAM_CLUSTER%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("referer", "%REQ(REFERER)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
)


def log_format(kind: str, name: str) -> AccessLogFormat:
    """The format of one filter's lines; `name` (its stat prefix) names the listener, the
    passthrough or the port map in every line. Names are xdsgen's own (no %)."""
    if kind == "combined":
        return AccessLogFormat(text=_COMBINED.format(name=name))
    return AccessLogFormat(json=(*_JSON, ("listener", name)))


def apply(kind: str, listeners: list[Listener]) -> list[Listener]:
    if kind == "default":
        return listeners

    def change(chain: FilterChain) -> FilterChain:
        if chain.tcp is not None:
            tcp = replace(chain.tcp, log_format=log_format(kind, chain.tcp.stat_prefix))
            chain = replace(chain, tcp=tcp)
        if chain.http is not None:
            http = replace(chain.http, log_format=log_format(kind, chain.http.stat_prefix))
            chain = replace(chain, http=http)
        return chain

    return map_chains(listeners, change)
