"""The API's outermost ASGI layer: a correlation id for every request, and its metrics.

The id is the request's ``X-Correlation-Id`` (1-128 printable ASCII characters, no space at
either end; anything else is ``400 invalid_correlation_id``), or one made here. It is bound to
structlog's context for the request (every log line about it carries ``correlation_id``), stored
with the tasks it submits, and echoed on the response. Each
request is counted by route template (never the path: ids would make a series per task), method
and status, and timed. A few microseconds a request: one header scan, a counter and a
histogram observation. With tracing on (``observability/tracing.py``) each request is a server
span, named by its route.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from structlog.contextvars import bind_contextvars, reset_contextvars

from ..observability import tracing
from ..observability.metrics import HTTP_DURATION, HTTP_REQUESTS
from .guards import refusal

HEADER = b"x-correlation-id"
SCOPE_KEY = "taskstream.correlation_id"
VALID = re.compile(rb"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?")
INVALID = "X-Correlation-Id must be 1-128 printable ASCII characters, no space at either end"
UNMATCHED = "unmatched"  # no route: one series for every unknown path


def correlation_id(scope: Any) -> str | None:
    """The request's correlation id (set by :class:`Observe`)."""
    value: str | None = scope.get(SCOPE_KEY)
    return value


class Observe:
    """Typed loosely: Litestar's ASGI types are unions of TypedDicts, this reads one key of a
    few of them."""

    def __init__(self, app: Any, counting: bool = True) -> None:
        self.app = app
        self.counting = counting  # TASKSTREAM_METRICS: count and time requests
        self.refuse = refusal(INVALID, code="invalid_correlation_id")
        # The series of each (route, method, status), looked up once: bounded by the routes.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app = self.app
        given = next((v for k, v in scope["headers"] if k == HEADER), None)
        if given is not None and VALID.fullmatch(given):
            cid = given.decode()
        else:
            cid = os.urandom(8).hex()
            if given is not None:
                app = self.refuse  # answered with the id it is logged under
        scope[SCOPE_KEY] = cid
        echo = (HEADER, cid.encode())
        status = 500  # what an exception that escapes every handler becomes

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A copy: a sender may reuse its message (guards.refusal does).
                message = {**message, "headers": [*message.get("headers", ()), echo]}
            await send(message)

        tokens = bind_contextvars(correlation_id=cid)
        started = time.perf_counter()
        try:
            if tracing.TRACER is None:
                await app(scope, receive, send_with_id)
            else:
                with tracing.request_span(scope) as span:
                    try:
                        await app(scope, receive, send_with_id)
                    finally:
                        tracing.end_request(span, scope.get("path_template", UNMATCHED), status)
        finally:
            reset_contextvars(**tokens)
            if self.counting:
                self._count(scope, status, started)

    def _count(self, scope: Any, status: int, started: float) -> None:
        key = (scope.get("path_template", UNMATCHED), scope["method"], status)
        series = self._series.get(key)
        if series is None:
            route, method, _ = key
            series = self._series[key] = (
                HTTP_REQUESTS.labels(route, method, str(status)),
                HTTP_DURATION.labels(route, method),
            )
        series[0].inc()
        series[1].observe(time.perf_counter() - started)
