"""Error pages and maintenance in the Gateway API export: each vhost's page in a ConfigMap
(key `response.body`, which Envoy Gateway reads), used by

- maintenance: an Envoy Gateway HTTPRouteFilter with a direct response (503, the page,
  its content type), referenced from the vhost's one rule by an ExtensionRef filter;
- error_page: a BackendTrafficPolicy responseOverride (policies_backend.py) for the 502,
  503 and 504 Envoy answers itself (source: Local, so a backend's own 503 is left alone,
  as xdsgen's via_upstream check does).

Envoy Gateway gives both bodies to Envoy as a format string (body_format), where % starts
a command: the ConfigMap holds the page with every % written %%, which Envoy prints as %.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xdsgen.export.features import Page

if TYPE_CHECKING:
    from xdsgen.export.context import Context
    from xdsgen.export.source import Route, VirtualHost

EG_GROUP = "gateway.envoyproxy.io"
EG_API = f"{EG_GROUP}/v1alpha1"
BODY_KEY = "response.body"


def format_body(text: str) -> str:
    """A page as an Envoy format string that prints exactly `text`."""
    return text.replace("%", "%%")


def page_ref(ctx: Context, vh: VirtualHost, page: Page) -> dict[str, Any]:
    """The ConfigMap that holds the vhost's page (made once, by page_objects)."""
    ctx.pages.setdefault(vh.key, page)
    return {"group": "", "kind": "ConfigMap", "name": _config_map_name(ctx, vh.key)}


def maintenance_filter(ctx: Context, vh: VirtualHost, route: Route) -> dict[str, Any]:
    """The ExtensionRef filter of a maintenance rule (its HTTPRouteFilter: page_objects)."""
    content_type = dict(route.headers.response_set if route.headers else ()).get(
        "content-type", "text/plain"
    )
    page_ref(ctx, vh, Page(route.direct_body or "", content_type, "(maintenance)"))
    ctx.maintenance[vh.key] = int(route.direct_status or 503)
    return {
        "type": "ExtensionRef",
        "extensionRef": {
            "group": EG_GROUP,
            "kind": "HTTPRouteFilter",
            "name": _filter_name(ctx, vh.key),
        },
    }


def page_objects(ctx: Context) -> list[dict[str, Any]]:
    """The pages' ConfigMaps, and the maintenance HTTPRouteFilters."""
    objects = []
    for key in sorted(ctx.maintenance):
        page = ctx.pages[key]
        objects.append(
            {
                "apiVersion": EG_API,
                "kind": "HTTPRouteFilter",
                "metadata": ctx.meta(_filter_name(ctx, key)),
                "spec": {
                    "directResponse": {
                        "contentType": page.content_type,
                        "body": {
                            "type": "ValueRef",
                            "valueRef": {
                                "group": "",
                                "kind": "ConfigMap",
                                "name": _config_map_name(ctx, key),
                            },
                        },
                        "statusCode": ctx.maintenance[key],
                    }
                },
            }
        )
    for key, page in sorted(ctx.pages.items()):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": ctx.meta(_config_map_name(ctx, key)),
                "data": {BODY_KEY: format_body(page.body)},
            }
        )
    return objects


def _config_map_name(ctx: Context, vhost_key: str) -> str:
    return ctx.object_names(f"{ctx.gateway}-page-{vhost_key.replace('_', '-')}")


def _filter_name(ctx: Context, vhost_key: str) -> str:
    return ctx.object_names(f"{ctx.gateway}-maintenance-{vhost_key.replace('_', '-')}")
