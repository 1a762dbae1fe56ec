"""uvicorn's httptools protocol with a limit on the size of a request's head.

httptools keeps a header's value in memory until the header ends, and uvicorn sets no limit:
four 32 MB headers took the API from 355 MB to 951 MB. Here the bytes a connection receives
while a request's head is incomplete are counted as they arrive; past the limit the client gets
431 ``request_header_fields_too_large`` (problem+json) and the connection is closed, so at most
the limit plus one read (256 KiB) is ever buffered.

The count starts at each request (keep-alive, pipelining). The read in which a head begins is
not counted (it may end the previous request's body): a head is refused at the latest one read
past the limit, and a request within the limit is never refused. When a head ends, it is
measured exactly (request target and header fields as parsed) if it could be over the limit: it
spanned reads, or the read it came in was larger than the limit. So a head that arrives whole in
one large read is refused all the same, before the app sees it.

The request target is checked here too, once the head is complete (``guards.bad_target``): a
target with a control character or non-UTF-8 bytes is answered 400 by a small ASGI app in place
of ours, on the same connection. One regex search over the target is all a usual request costs.

Per request this adds a few attribute updates to uvicorn's callbacks, no per-header work: the
head's callbacks are the hot path of every request.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .guards import bad_target, refusal, suspect_target
from .problems import problem_bytes

LINGER_S = 2.0  # how long a refused connection's further bytes are read and dropped
DETAIL = "the request's header fields are larger than the limit of {limit} bytes"


class HeadLimitedProtocol(HttpToolsProtocol):
    """Use through :func:`head_limited`, which sets the limit."""

    max_head_bytes = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = False
        self._head_began = False  # a head began in the read being parsed
        self._read_size = 0  # bytes in the read being parsed
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # reads already queued when the connection was closed
        self._head_began, self._read_size = False, len(data)
        super().data_received(data)
        if self._in_head:
            if not self._head_began:
                self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._in_head, self._head_began, self._head_bytes = True, True, 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._refused:
            return
        could_be_over = not self._head_began or self._read_size > self.max_head_bytes
        if could_be_over and self._head_size() > self.max_head_bytes:
            self._refuse_head()  # the app never sees this request
            return
        why = bad_target(self.url) if suspect_target(self.url) else None
        if why is None:
            super().on_headers_complete()
            return
        app, self.app = self.app, refusal(f"the request's target contains {why}")
        try:
            super().on_headers_complete()  # answered by the refusal, on this connection
        finally:
            self.app = app

    def _head_size(self) -> int:
        """The current head's target and fields, as parsed (``": "`` and CRLF per field)."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _refuse_head(self) -> None:
        self._refused = True
        body = problem_bytes(
            431, "request_header_fields_too_large", DETAIL.format(limit=self.max_head_bytes)
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        # Closing now, with the client's bytes unread, would reset the connection and the client
        # could lose the answer; instead stop writing, drop what still comes, close soon.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:  # pragma: no cover - TCP transports can
            self.transport.close()


def head_limited(max_head_bytes: int) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this limit on request heads."""
    return type("HeadLimitedProtocol", (HeadLimitedProtocol,), {"max_head_bytes": max_head_bytes})
