"""Which resource of the draft's render a reader's difference belongs to.

The readers record differences against the original's objects (a cluster, a listener, a
route table, a vhost, a route); once the draft is rendered and read back, each is found
in it by asking it what the original object answered (same socket, same server name,
same host, same path), so that a difference can become a patch on that resource later.
"""

from __future__ import annotations

from typing import Any, Optional

from xdsgen.importer.compare import UNKNOWN_HOST, Socket, sockets
from xdsgen.importer.differences import Report, Resource
from xdsgen.importer.semantics import (
    Chain,
    Cluster,
    Config,
    Hcm,
    Listener,
    Route,
    Vhost,
    representative,
)


def resolve(report: Report, original: Config, draft: Config, names: dict[str, str]) -> None:
    """Give the reader's differences the draft resource they belong to."""
    theirs = sockets(draft)
    for difference in report.differences:
        if difference.resource is not None or difference.anchor is None:
            continue
        difference.resource = _resource_for(difference.anchor, theirs, draft, names)


def _resource_for(
    anchor: Any, theirs: dict[Socket, Listener], draft: Config, names: dict[str, str]
) -> Resource:
    if isinstance(anchor, Cluster):
        name = names.get(anchor.name)
        return Resource("cluster", name if name in draft.clusters else None)
    listener = _listener_of(anchor)
    found = (
        theirs.get((listener.families[0], listener.protocol, listener.port)) if listener else None
    )
    if isinstance(anchor, (Listener, Chain)):
        return Resource("listener", found.name if found else None)
    if isinstance(anchor, Hcm):
        chain = anchor.chain
        if found is None or chain is None:
            return Resource("route_config", None)
        probe = representative(chain.server_names[0]) if chain.server_names else None
        theirs_chain = found.chain_for(probe, chain.tls)
        theirs_hcm = theirs_chain.hcm if theirs_chain else None
        return Resource("route_config", theirs_hcm.route_config if theirs_hcm else None)
    vhost = anchor if isinstance(anchor, Vhost) else getattr(anchor, "vhost", None)
    kind = "route" if isinstance(anchor, Route) else "vhost"
    if vhost is None or found is None or vhost.hcm is None or vhost.hcm.chain is None:
        return Resource(kind, None)
    probe = representative(vhost.domains[0]) if vhost.domains else UNKNOWN_HOST
    chain = found.chain_for(probe if vhost.hcm.chain.tls else None, vhost.hcm.chain.tls)
    theirs_vhost = chain.hcm.vhost_for(probe) if chain and chain.hcm else None
    if theirs_vhost is None:
        return Resource(kind, None)
    if isinstance(anchor, Route):
        route = theirs_vhost.route_for(anchor.value)
        return Resource("route", f"{theirs_vhost.name}/{route.name}" if route else None)
    return Resource("vhost", theirs_vhost.name)


def _listener_of(anchor: Any) -> Optional[Listener]:
    if isinstance(anchor, Listener):
        return anchor
    if isinstance(anchor, Chain):
        return anchor.listener
    if isinstance(anchor, Hcm):
        return anchor.chain.listener if anchor.chain else None
    vhost = anchor if isinstance(anchor, Vhost) else getattr(anchor, "vhost", None)
    if isinstance(vhost, Vhost) and vhost.hcm and vhost.hcm.chain:
        return vhost.hcm.chain.listener
    return None
