"""Error pages and maintenance, per vhost, all in the route files (no listener drain).

- error_page: the vhost's routes get a custom response (Envoy's custom_response filter,
  configured per virtual host in RDS) for the 502, 503 and 504 Envoy itself answers when
  the upstream fails. Envoy marks a backend's own response "via_upstream" (its response
  code details): the matcher leaves those alone, so a page the backend sent is never
  replaced, and the status stays what it was.
- maintenance: the vhost's routes become one direct response, 503 with the page.

The page is read when the inventory is rendered and its text is part of the route file:
a changed page is a change `apply` sees, and Envoy never reads the file itself.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Optional

from xdsgen import conventions as xds
from xdsgen.model.ir import (
    ErrorPage,
    FilterChain,
    HeaderRules,
    HeaderValue,
    Listener,
    Route,
    RouteConfig,
    VirtualHost,
    map_chains,
)
from xdsgen.model.problems import Problems
from xdsgen.spec import Spec, VhostSpec

MAX_PAGE_BYTES = 64 * 1024
# Envoy refuses a larger direct_response body unless the route table raises its limit.
ENVOY_DIRECT_BODY_LIMIT = 4096
MAINTENANCE_STATUS = 503
MAINTENANCE_ROUTE = "maintenance"
BUILTIN_MAINTENANCE = ErrorPage(
    body=(
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>Down for maintenance'
        "</title></head>\n<body><h1>Down for maintenance</h1><p>This site is being worked on "
        "and will be back soon.</p></body></html>\n"
    ),
    content_type="text/html; charset=utf-8",
    source="(built in)",
)
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml",
}


def read(spec: Spec, base_dir: Path, problems: Problems) -> dict[int, ErrorPage]:
    """Each vhost's error page by vhost index; a page that cannot be used is an error."""
    pages: dict[int, ErrorPage] = {}
    for vhost in spec.http:
        if vhost.error_page is not None:
            page = _read_page(vhost, base_dir, problems)
            if page is not None:
                pages[vhost.index] = page
    return pages


def _read_page(vhost: VhostSpec, base_dir: Path, problems: Problems) -> Optional[ErrorPage]:
    path = (*vhost.path, "error_page")
    name = str(vhost.error_page)
    full = name if os.path.isabs(name) else os.path.normpath(os.path.join(base_dir, name))
    try:
        # A FIFO or a device would block or never end: only a regular file is opened.
        if not stat.S_ISREG(os.stat(full).st_mode):
            problems.error(path, f"{full} is not a regular file", "name an HTML or text file")
            return None
        with open(full, "rb") as handle:
            data = handle.read(MAX_PAGE_BYTES + 1)
    except FileNotFoundError:
        problems.error(path, f"error page {full} does not exist", "create it, or fix the path")
        return None
    except OSError as exc:
        problems.error(
            path,
            f"error page {full} cannot be read ({exc.strerror or exc})",
            "xdsgen reads the page when it renders: make it readable by the user running it",
        )
        return None
    if len(data) > MAX_PAGE_BYTES:
        problems.error(
            path,
            f"error page {full} is larger than {MAX_PAGE_BYTES // 1024} KiB",
            "Envoy keeps the page in memory in every route table: link big images and "
            "styles instead of inlining them",
        )
        return None
    if not data.strip():
        problems.error(path, f"error page {full} is empty", "write the page people should see")
        return None
    try:
        body = data.decode("utf-8")
    except UnicodeDecodeError:
        problems.error(path, f"error page {full} is not UTF-8 text", "save it as UTF-8")
        return None
    if "\x00" in body:
        problems.error(path, f"error page {full} holds NUL bytes: it is not a text page")
        return None
    suffix = os.path.splitext(full)[1].lower()
    return ErrorPage(body, _CONTENT_TYPES.get(suffix, _CONTENT_TYPES[".html"]), full)


def apply(
    spec: Spec, pages: dict[int, ErrorPage], route_configs: list[RouteConfig]
) -> list[RouteConfig]:
    """The route tables with each vhost's error page and maintenance switch."""
    by_index = {vhost.index: vhost for vhost in spec.http}
    result = []
    for rc in route_configs:
        vhosts = tuple(
            _vhost(vh, by_index[vh.index], pages.get(vh.index)) if vh.index in by_index else vh
            for vh in rc.virtual_hosts
        )
        largest = max(
            (len((r.direct_body or "").encode("utf-8")) for vh in vhosts for r in vh.routes),
            default=0,
        )
        limit = MAX_PAGE_BYTES if largest > ENVOY_DIRECT_BODY_LIMIT else None
        result.append(replace(rc, virtual_hosts=vhosts, max_direct_response_body=limit))
    return result


def _vhost(vh: VirtualHost, spec: VhostSpec, page: Optional[ErrorPage]) -> VirtualHost:
    if page is not None:
        vh = replace(vh, error_page=page)
    redirect_only = all(r.https_redirect for r in vh.routes)
    if not spec.maintenance or redirect_only:
        return vh
    shown = page or BUILTIN_MAINTENANCE
    return replace(
        vh,
        maintenance=True,
        routes=(
            Route(
                name=MAINTENANCE_ROUTE,
                match="prefix",
                value="/",
                cluster=None,
                direct_status=MAINTENANCE_STATUS,
                direct_body=shown.body,
                # Envoy would say text/plain; model/access.py keeps this over the vhost's.
                headers=HeaderRules(
                    response_add=(HeaderValue("content-type", shown.content_type, xds.OVERWRITE),)
                ),
            ),
        ),
    )


def filters(listeners: list[Listener], route_configs: list[RouteConfig]) -> list[Listener]:
    """Each connection manager with the custom_response filter where a vhost of its route
    table has an error page (the pages themselves are in the route file)."""
    needed = {rc.name for rc in route_configs if rc.error_pages}

    def change(chain: FilterChain) -> FilterChain:
        if chain.http is None or chain.http.route_config not in needed:
            return chain
        return replace(chain, http=replace(chain.http, error_pages=True))

    return map_chains(listeners, change)
