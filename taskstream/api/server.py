"""uvicorn's httptools protocol with a limit on the size of a request's head.

httptools keeps a header's value in memory until the header ends, and uvicorn sets no limit:
four 32 MB headers took the API from 355 MB to 951 MB. Here the bytes a connection receives
while a request's head is incomplete are counted as they arrive; past the limit the client gets
431 ``request_header_fields_too_large`` (problem+json) and the connection is closed, so at most
the limit plus one read (256 KiB) is ever buffered.

The count starts at each request (keep-alive, pipelining). The read in which a head begins is
not counted (it may end the previous request's body): a head is refused at the latest one read
past the limit, and a request within the limit is never refused. A head that arrives whole in
that read is measured when it ends (request target and header fields as the parser hands them
over), so it is refused all the same, before the app sees it.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
        self._head_size = 0  # the current head's target and fields, as parsed
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # reads already queued when the connection was closed
        self._head_began = False
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
        self._in_head, self._head_began, self._head_bytes, self._head_size = True, True, 0, 0

    def on_url(self, url: bytes) -> None:
        if not self._refused:
            self._head_size += len(url)
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._refused:
            self._head_size += len(name) + len(value) + 4  # ": " and CRLF
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._refused:
            return
        if self._head_size > self.max_head_bytes:
            self._refuse_head()  # the app never sees this request
            return
        super().on_headers_complete()

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
