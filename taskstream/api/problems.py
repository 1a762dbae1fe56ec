"""The one place errors become HTTP responses (RFC 9457 problem+json with a stable code)."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from ..core.errors import ProblemError, Unavailable
from ..observability.metrics import HTTP_PROBLEMS
from .limits import rate_headers
from .schemas import Problem

log = structlog.get_logger("taskstream.api")
MEDIA_TYPE = "application/problem+json"
_encode = msgspec.json.Encoder().encode

# Litestar's own errors (routing, body size, query parameter types) by status.
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "unavailable",
}


def problem_bytes(
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """The one problem+json shape, encoded; also used where no Litestar response exists (the
    ASGI guard, the HTTP protocol's 431)."""
    HTTP_PROBLEMS.labels(str(status), code).inc()
    body = Problem(
        type=f"https://taskstream.dev/problems/{code}",
        title=code.replace("_", " ").capitalize(),
        status=status,
        detail=detail,
        code=code,
        errors=errors,
        extra=extra or None,
    )
    return _encode(body)


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[bytes]:
    """A problem response; a tenant's request also gets its rate headers (api/limits.py)."""
    body = problem_bytes(status, code, detail, errors=errors, extra=extra)
    rate = rate_headers()
    if rate is not None:
        headers = {**rate, **(headers or {})}
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def handle_problem(_: Request[Any, Any, Any], exc: ProblemError) -> Response[bytes]:
    extra = dict(exc.extra)
    errors = extra.pop("errors", None)
    headers = None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    return problem(exc.status, exc.code, exc.detail, headers=headers, errors=errors, extra=extra)


def handle_unavailable(_: Request[Any, Any, Any], exc: Unavailable) -> Response[bytes]:
    return problem(
        503,
        "unavailable",
        f"{exc}; retry later",
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:  # Litestar's own 5xx (a bug or a misconfiguration): logged once
        log.error("server error", path=request.url.path, status=status, detail=exc.detail)
    code = _HTTP_CODES.get(status, "http_error")
    detail = exc.detail or "request rejected"
    if status == 400 and isinstance(exc.extra, list | dict) and exc.extra:
        return problem(status, "invalid_parameter", detail, errors=_as_list(exc.extra))
    return problem(status, code, detail, headers=dict(exc.headers or {}) or None)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", path=request.url.path, error=type(exc).__name__)
    return problem(500, "internal_error", "an unexpected error occurred; it has been logged")


def _as_list(extra: Any) -> list[dict[str, Any]]:
    items = extra if isinstance(extra, list) else [extra]
    return [i if isinstance(i, dict) else {"message": str(i)} for i in items]


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ProblemError: handle_problem,
    Unavailable: handle_unavailable,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
