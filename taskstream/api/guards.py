"""An ASGI middleware that refuses request targets the app could not use: a path or query
string with a NUL or another C0 control character (``?type=%00`` reached PostgreSQL, a 500) or
that is not UTF-8 once percent-decoded. 400 ``invalid_parameter``, problem+json.

Cheap on the usual request: a target with no ``%`` and only ASCII needs one regex search over
its bytes; only percent-encoded targets are decoded (~0.5 µs for a short one)."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from .problems import problem_bytes

_CONTROL = re.compile(rb"[\x00-\x1f]")


def bad_target(target: bytes) -> str | None:
    """Why this raw path or query string is refused, or None."""
    decoded = unquote_to_bytes(target) if b"%" in target else target
    if _CONTROL.search(decoded):
        return "control characters (such as NUL)"
    if not decoded.isascii():
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes that are not UTF-8"
    return None


class TargetGuard:
    """Wraps an ASGI app; HTTP requests with a bad path or query string never reach it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            why = bad_target(raw_path) or bad_target(scope.get("query_string", b""))
            if why is not None:
                await _refuse(send, f"the request's path or query string contains {why}")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, detail: str) -> None:
    body = problem_bytes(400, "invalid_parameter", detail)
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
