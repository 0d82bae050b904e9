"""Response compression per vhost: brotli or gzip, whichever the client prefers.

The connection manager of a listener gets the compressor filters (disabled) as soon as one
vhost of its route table compresses; each such vhost enables them in the route file. So
switching compression on or off for a vhost is a route change, never a listener drain
(only the first vhost of a listener adds the filters).

What Envoy compresses (its defaults, kept): responses of 30 bytes or more whose type is
text/html, text/plain, text/css, text/xml, application/javascript, application/json,
application/xhtml+xml or image/svg+xml, to clients that accept the encoding. Nothing else:
a WebSocket upgrade has no body to compress, event streams (text/event-stream), gRPC and
responses the backend already encoded pass as they are.
"""

from __future__ import annotations

from dataclasses import replace

from xdsgen.model.ir import Compressor, FilterChain, Listener, RouteConfig, map_chains
from xdsgen.spec import Spec

# Envoy 1.40's official builds have both; brotli first: smaller text, and the filters pick
# by the client's Accept-Encoding preferences anyway.
COMPRESSORS = (
    Compressor(
        "envoy.filters.http.compressor.brotli",
        "type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli",
    ),
    Compressor(
        "envoy.filters.http.compressor.gzip",
        "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip",
    ),
)
FILTER_NAMES = tuple(c.filter for c in COMPRESSORS)


def apply(spec: Spec, route_configs: list[RouteConfig]) -> list[RouteConfig]:
    compressed = {vhost.index for vhost in spec.http if vhost.compress}
    if not compressed:
        return route_configs
    return [
        replace(
            rc,
            virtual_hosts=tuple(
                replace(vh, compressors=FILTER_NAMES) if vh.index in compressed else vh
                for vh in rc.virtual_hosts
            ),
        )
        for rc in route_configs
    ]


def filters(listeners: list[Listener], route_configs: list[RouteConfig]) -> list[Listener]:
    """Each connection manager with the compressor filters its route table needs."""
    needed = {rc.name for rc in route_configs if any(vh.compressors for vh in rc.virtual_hosts)}

    def change(chain: FilterChain) -> FilterChain:
        if chain.http is None or chain.http.route_config not in needed:
            return chain
        return replace(chain, http=replace(chain.http, compressors=COMPRESSORS))

    return map_chains(listeners, change)
