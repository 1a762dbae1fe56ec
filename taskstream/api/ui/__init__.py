"""The web dashboard at ``/ui``: server-rendered pages (Jinja, autoescaped), a stylesheet and a
small script served from this package; no CDN, no build step.

    pages.py    GET pages: queues, tasks, a task, dead letters, schedules, workers
    actions.py  sign-in and the POSTs: sign out, replay, pause / resume
    session.py  the session cookie, the key check on every request, cross-site defences
    views.py    rows shaped for the templates, and the template filters
    errors.py   errors as pages (or the sign-in page)

``routers()`` and ``templates()`` are what the app registers (``api/app.py``). Nothing here is in
the OpenAPI document: these are pages for people, not the JSON API.
"""

from __future__ import annotations

from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import Router
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from .actions import ACTIONS
from .errors import EXCEPTION_HANDLERS
from .pages import PAGES
from .views import FILTERS

# Only this origin's files run or style the pages; nothing may frame them.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show a tenant's data: never kept by a shared cache
}


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader(__package__, "templates"),
        autoescape=True,  # every template, whatever its name: nothing is ever shown raw
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals["asset_version"] = version("taskstream")  # a new release, fresh static files
    return env


def templates() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(_environment()))


def routers() -> list[Router]:
    """The pages and the static files, made anew for each app (a router belongs to one)."""
    return [
        Router(
            "/ui",
            route_handlers=[*PAGES, *ACTIONS],
            exception_handlers=EXCEPTION_HANDLERS,
            response_headers=[ResponseHeader(name=k, value=v) for k, v in SECURITY_HEADERS.items()],
            include_in_schema=False,
        ),
        create_static_files_router(
            "/ui/static",
            directories=[Path(str(files(__package__) / "static"))],
            cache_control=CacheControlHeader(max_age=3600, public=True),
            name="ui.static",
            include_in_schema=False,
        ),
    ]


__all__ = ["routers", "templates"]
