"""Errors under ``/ui`` become pages, not problem+json: the same classification as
``api/problems.py`` (the client's mistakes 4xx, outages 503 with Retry-After, bugs 500 logged
once), shown to a person. A request without a live session goes to the sign-in page."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap

from ...core.errors import ProblemError, Unauthenticated, Unavailable
from .pages import LIVE_HEADER
from .session import COOKIE, signed_out

log = structlog.get_logger("taskstream.api")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _page(status: int, detail: str, headers: dict[str, str] | None = None) -> Template:
    return Template(
        template_name="error.html",
        context={"status": status, "title": _phrase(status), "detail": detail},
        status_code=status,
        headers=headers,
    )


def _to_sign_in(request: Request[Any, Any, Any], exc: Unauthenticated) -> Response[Any]:
    """Back to the sign-in page, the session cookie cleared; a live refresh gets a bare 401
    (``ui.js`` reloads the page, which then comes here and says why)."""
    if request.headers.get(LIVE_HEADER) == "1":  # the cookie stays for the reload to explain
        return Response(exc.detail, status_code=401, media_type="text/plain")
    had_session = COOKIE in request.cookies
    cookies = [signed_out(request)] if had_session else []
    query = {"next": request.url.path} if request.method == "GET" else {}
    if had_session:
        query["reason"] = "expired"
    return Redirect(f"/ui/sign-in?{urlencode(query)}", status_code=303, cookies=cookies)


def handle_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Any]:
    if isinstance(exc, Unauthenticated):
        return _to_sign_in(request, exc)
    headers = None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    return _page(exc.status, exc.detail, headers)


def handle_unavailable(_: Request[Any, Any, Any], exc: Unavailable) -> Response[Any]:
    detail = f"{exc}. Try again in a few seconds."
    return _page(503, detail, {"Retry-After": str(exc.retry_after_s)})


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:  # Litestar's own 5xx (a bug or a misconfiguration): logged once
        log.error("server error", path=request.url.path, status=status, detail=exc.detail)
    return _page(status, exc.detail or _phrase(status), dict(exc.headers or {}) or None)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", path=request.url.path, error=type(exc).__name__)
    return _page(500, "Something went wrong on our side; it has been logged.")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ProblemError: handle_problem,
    Unavailable: handle_unavailable,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
