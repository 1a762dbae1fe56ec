"""The client's errors: one tree, named after the API's problem codes.

    TaskstreamError                       (taskstream.TaskstreamError: the package's one root)
    └── ClientError                       anything the client raises on purpose
        ├── TransportError                no answer from the API (refused, reset), retries spent
        │   └── RequestTimeout            no answer within the client's ``timeout_s``
        ├── UnexpectedResponse            an answer that is not what the API sends (a proxy?)
        ├── WaitTimeout                   ``wait()``: the task did not finish in time
        └── APIError                      the API answered with a problem: code, status, detail
            ├── InvalidRequest            400 422 431  the request's data is wrong
            │   ├── PayloadTooLarge       413
            │   └── UnsupportedMediaType  415
            ├── Unauthorized              401  missing, unknown, revoked or expired key
            ├── Forbidden                 403  the key's role may not do this
            ├── NotFound                  404  missing, or another tenant's
            ├── Conflict                  409  idempotency key reused, task in the wrong state
            ├── RateLimited               429  over the tenant's rate (``retry_after_s``)
            ├── Unavailable               503  a dependency is down (``retry_after_s``)
            │   └── QueueFull             503  the tenant's backlog is at ``--max-pending``
            └── ServerError               500 and any other status

The API's errors are classified by ``code`` first (stable), then by HTTP status, so a code
added later still lands in its family. httpx's own errors never escape: the transports turn
them into ``TransportError`` in one place (``transport.py``).
"""

from __future__ import annotations

from typing import Any

from ..core.errors import TaskstreamError


class ClientError(TaskstreamError):
    """Root of the client's errors."""


class TransportError(ClientError):
    """The API could not be reached, or the connection broke, after the retries allowed."""


class RequestTimeout(TransportError, TimeoutError):
    """The API did not answer within the client's ``timeout_s`` (after the retries allowed)."""


class UnexpectedResponse(ClientError):
    """A response that does not have the API's shape (a proxy's error page, another service)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class WaitTimeout(ClientError, TimeoutError):
    """``wait()`` ran out of time; ``status`` is the task's last seen state."""

    def __init__(self, task_id: str, timeout_s: float, status: str) -> None:
        super().__init__(f"task {task_id} is still {status} after {timeout_s:g} s")
        self.task_id = task_id
        self.timeout_s = timeout_s
        self.status = status


class APIError(ClientError):
    """The API refused the request with a problem (RFC 9457) carrying a stable ``code``."""

    def __init__(
        self,
        detail: str,
        *,
        code: str,
        status: int,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.detail = detail
        self.code = code
        self.status = status
        self.errors = errors or []  # per-field or per-item errors (422)
        self.extra = extra or {}  # the problem's other members (e.g. ``task_id``)
        self.retry_after_s = retry_after_s  # from Retry-After, when the API sent one


class InvalidRequest(APIError):
    """The request's data is wrong (400, 422): sending it again cannot help."""


class PayloadTooLarge(InvalidRequest):
    pass


class UnsupportedMediaType(InvalidRequest):
    pass


class Unauthorized(APIError):
    pass


class Forbidden(APIError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class RateLimited(APIError):
    """Over the tenant's request rate; ``retry_after_s`` says when to come back."""


class Unavailable(APIError):
    """A dependency of the API is down; come back after ``retry_after_s``."""


class QueueFull(Unavailable):
    """The tenant's waiting tasks are at its ``--max-pending``: nothing was written."""


class ServerError(APIError):
    pass


BY_CODE: dict[str, type[APIError]] = {
    "rate_limited": RateLimited,
    "queue_full": QueueFull,
    "unavailable": Unavailable,
    "payload_too_large": PayloadTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
}
BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: InvalidRequest,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
    429: RateLimited,
    431: InvalidRequest,
    503: Unavailable,
}


def error_class(status: int, code: str) -> type[APIError]:
    """The exception for a problem: by its code, else by its status, else ServerError (5xx)
    or InvalidRequest (another 4xx)."""
    found = BY_CODE.get(code) or BY_STATUS.get(status)
    if found is not None:
        return found
    return InvalidRequest if 400 <= status < 500 else ServerError
