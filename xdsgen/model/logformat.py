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
from typing import Any, Optional

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


def recognise(log_format: Any) -> Optional[str]:
    """combined or json when an access logger's log_format is xdsgen's (for import), else
    None. The listener name in it may be any."""
    if not isinstance(log_format, dict):
        return None
    source = log_format.get("text_format_source")
    text = source.get("inline_string") if isinstance(source, dict) else None
    if isinstance(text, str):
        head, _, tail = _COMBINED.partition("{name}")
        if text.startswith(head) and text.endswith(tail) and text != head + tail:
            name = text[len(head) : len(text) - len(tail)]
            return "combined" if name.replace("_", "").isalnum() else None
    fields = log_format.get("json_format")
    if isinstance(fields, dict) and isinstance(fields.get("listener"), str):
        rest = {k: v for k, v in fields.items() if k != "listener"}
        return "json" if rest == dict(_JSON) else None
    return None
