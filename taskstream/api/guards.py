"""Request targets the app could not use: a path or query string with a NUL or another C0
control character (``?type=%00`` reached PostgreSQL, a 500) or that is not UTF-8 once
percent-decoded. 400 ``invalid_parameter``, problem+json.

The check runs in the HTTP protocol (``server.HeadLimitedProtocol``) when a request's head is
complete, before any ASGI app is called: ``suspect_target`` is one regex search over the raw
target, and only a target it flags (percent-encoded, non-ASCII or control bytes) is decoded and
judged by ``bad_target`` (~0.5 µs for a short one). A refused request is answered by
``refusal``, a small ASGI app, on the same keep-alive connection."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from litestar.types import ASGIApp, Receive, Scope, Send

from .problems import problem_bytes

_CONTROL = re.compile(rb"[\x00-\x1f]")
_SUSPECT = re.compile(rb"[\x00-\x1f%\x7f-\xff]")


def suspect_target(target: bytes) -> bool:
    """Whether ``bad_target`` needs to look at this raw target at all."""
    return _SUSPECT.search(target) is not None


def bad_target(target: bytes) -> str | None:
    """Why this raw request target (path and query string) is refused, or None."""
    decoded = unquote_to_bytes(target) if b"%" in target else target
    if _CONTROL.search(decoded):
        return "control characters (such as NUL)"
    if not decoded.isascii():
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes that are not UTF-8"
    return None


def refusal(detail: str, code: str = "invalid_parameter") -> ASGIApp:
    """An ASGI app that answers every request with 400 ``code``."""
    body = problem_bytes(400, code, detail)
    start = {
        "type": "http.response.start",
        "status": 400,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start)  # type: ignore[arg-type]
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return refuse
