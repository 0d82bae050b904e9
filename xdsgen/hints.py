"""Words for the mistakes people make most when they write an inventory by hand.

People come from Caddy, Traefik and Nginx Proxy Manager, where an upstream is a URL and
can be written inline in a route. The checks stay where they are (the schema, the model);
these small functions only choose what to say, so that the same mistake gets the same
message wherever it is made.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Optional

ENDPOINT_HINT = "write HOST:PORT, IPv6 as [addr]:port"
ADMIN_HINT = "write HOST:PORT, e.g. 127.0.0.1:15001"

_URL_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)$")
_TRAILING_PORT_RE = re.compile(r":(?P<port>[0-9]+)$")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def port_out_of_range(port: object) -> str:
    """The one message for a port outside 1-65535, in a listener, a map or an endpoint."""
    return f"port {port} is outside 1-65535"


def _out_of_range_port(text: str) -> Optional[int]:
    match = _TRAILING_PORT_RE.search(text)
    if match is None:
        return None
    port = int(match.group("port"))
    return None if 1 <= port <= 65535 else port


def endpoint_mistake(text: str) -> Optional[str]:
    """A message for HOST:PORT text written as a URL, with a path, or with a port out of
    range; None when the text is none of these (the caller's own checks follow)."""
    url = _URL_RE.match(text)
    if url:
        authority = url.group("authority").rsplit("@", 1)[-1]
        scheme = url.group("scheme").lower()
        if authority and not _TRAILING_PORT_RE.search(authority) and scheme in _DEFAULT_PORTS:
            authority += f":{_DEFAULT_PORTS[scheme]}"
        message = f"no scheme: write HOST:PORT ({authority or 'e.g. 127.0.0.1:3000'}), not a URL"
        if url.group("rest") not in ("", "/"):
            message += f"; a path ({url.group('rest')}) belongs in a route's prefix or rewrite"
        return message
    if "/" in text:
        host_port, _, path = text.partition("/")
        return (
            f"no path: write HOST:PORT ({host_port}); an upstream cannot have a path "
            f"(/{path}): match it with a route's prefix, change it with rewrite"
        )
    port = _out_of_range_port(text)
    if port is not None:
        return port_out_of_range(port)
    return None


def endpoint_hint(text: str, default: str = ENDPOINT_HINT) -> Optional[str]:
    """The hint that goes with a message about `text` as HOST:PORT."""
    if _out_of_range_port(text) is not None and not _URL_RE.match(text):
        return None  # the message says it all, as it does for a listener's port
    url = _URL_RE.match(text)
    if url and url.group("scheme").lower() in ("https", "wss"):
        host = url.group("authority").rsplit("@", 1)[-1]
        host = _TRAILING_PORT_RE.sub("", host).strip("[]")
        # Envoy checks the certificate against tls.sni; a host name is that name already.
        tls = "{sni: NAME_IN_ITS_CERTIFICATE}" if looks_like_address(host) else "{}"
        return f"to speak TLS to it, use the mapping form: {{endpoints: [HOST:PORT], tls: {tls}}}"
    if url or "/" in text:
        return None  # the message already says what to write
    return default


def looks_like_address(name: str) -> bool:
    """Whether a name written where an upstream's name belongs is really an address."""
    if ":" in name or "/" in name:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def inline_upstream_hint(name: str) -> Optional[str]:
    """For `upstream: 127.0.0.1:13000` in a route or map: upstreams are named, not inline."""
    if not looks_like_address(name):
        return None
    example = name if _TRAILING_PORT_RE.search(name) else f"{name}:PORT"
    url = _URL_RE.match(name)
    if url:
        example = url.group("authority") or example
    return (
        "name an upstream and define it under upstreams, "
        f"e.g. upstreams: {{myapp: {example}}}, then upstream: myapp"
    )


def tls_value_message(
    value: object, written: Optional[str], certificates: list[str]
) -> tuple[str, str]:
    """(message, hint) for `tls: true` (or yes, false, a number) on a vhost; `written` is
    the text in the file, when YAML turned it into something else."""
    if written is None:
        written = str(value).lower() if isinstance(value, bool) else str(value)
    message = f"tls takes the name of a certificate, not {written}"
    if value is False:
        return message, "leave tls out to serve this vhost without TLS"
    if certificates:
        return message, "write tls: NAME with a name from certificates: " + ", ".join(certificates)
    return (
        message,
        "define one under certificates (e.g. router: {cert: /etc/ssl/router/fullchain.pem, "
        "key: /etc/ssl/router/privkey.pem}), then write tls: router",
    )
