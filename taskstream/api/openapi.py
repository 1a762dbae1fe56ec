"""What the served OpenAPI says that Litestar cannot read from the handlers, and the docs page.

Litestar describes parameters and typed returns itself. Two things it cannot see:

* **Request bodies.** Bodies are decoded by our own door (``decode_body``: content type, depth,
  duplicate keys and the like), so no handler has a Litestar ``data`` parameter. A handler names
  its body with ``opt=request_body(Kind)``; the JSON render plugin below writes it into the
  served schema, with the Struct's JSON Schema from msgspec itself: the document says exactly
  what the decoder enforces.
* **Errors.** Every error is problem+json (``api/problems.py``); ``problems(...)`` documents
  the statuses a route can give, plus the ones any authenticated route can give.

The docs page at ``/schema`` is one self-contained HTML file (``docs/index.html``): no CDN, so
it works on a machine without internet access.
"""

from __future__ import annotations

from http import HTTPStatus
from importlib.resources import files
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.routes import HTTPRoute

from .problems import MEDIA_TYPE
from .schemas import Problem

SCHEME = "bearer"
BEARER: list[SecurityRequirement] = [{SCHEME: []}]
_BODY = "request_body"  # the key of a handler's ``opt`` that names its body type

# Why each status happens, as the schema tells it.
_WHY = {
    400: "Malformed JSON, a malformed parameter, or a request the door refuses",
    401: "No API key, or an unknown, revoked or expired one",
    403: "The key's role does not allow this action",
    404: "Not found in this tenant (another tenant's ids look the same)",
    409: "Conflicts with the resource's state, or an idempotency key used with another body",
    413: "Request body over the size limit",
    415: "Request body is not application/json",
    422: "The body failed validation (`errors` lists where)",
    429: "Over the tenant's rate limit: retry after `Retry-After` seconds",
    431: "Request headers over the size limit",
    503: "A dependency is unavailable or the tenant's queue is full: retry after `Retry-After`",
}
_ANY_AUTHENTICATED = (400, 401, 429, 431, 503)


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """problem+json responses for ``statuses`` and for what any authenticated route can give."""
    return {
        status: ResponseSpec(
            Problem,
            description=_WHY.get(status, HTTPStatus(status).phrase),
            media_type=MEDIA_TYPE,
            generate_examples=False,
        )
        for status in sorted({*statuses, *_ANY_AUTHENTICATED})
    }


def request_body(kind: type[msgspec.Struct]) -> dict[str, Any]:
    """A handler's ``opt`` that documents ``kind`` as its JSON request body."""
    return {_BODY: kind}


def _add_request_bodies(app: Any, schema: dict[str, Any]) -> None:
    kinds: dict[tuple[str, str], type[msgspec.Struct]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if (kind := handler.opt.get(_BODY)) is not None:
                    for method in handler.http_methods:
                        kinds[(route.path_format, method.lower())] = kind
    if not kinds:
        return
    types = list(dict.fromkeys(kinds.values()))
    refs, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    by_type = dict(zip(types, refs, strict=True))
    for (path, verb), kind in kinds.items():
        schema["paths"][path][verb]["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": by_type[kind]}},
        }
    known = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, component in components.items():
        known.setdefault(name, component)


class SchemaJson(JsonRenderPlugin):
    """``/schema/openapi.json``: Litestar's document with the request bodies added."""

    def __init__(self) -> None:
        super().__init__()
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            _add_request_bodies(request.app, openapi_schema)
            self._rendered = self.render_json(request, openapi_schema)
        return self._rendered


class DocsPage(OpenAPIRenderPlugin):
    """``/schema``: the routes, their bodies and answers, read from the JSON by plain JS."""

    def __init__(self) -> None:
        super().__init__(path="/")
        self._page = (files(__package__) / "docs" / "index.html").read_text("utf-8")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        url = msgspec.json.encode(self.get_openapi_json_route(request)).decode()
        return self._page.replace('"__SCHEMA_URL__"', url).encode()


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="taskstream",
        version=version,
        path="/schema",
        components=Components(
            security_schemes={
                SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key: `Authorization: Bearer <key>`",
                )
            }
        ),
        render_plugins=[DocsPage(), SchemaJson()],
    )
