"""One error tree. Third-party errors are wrapped where they enter (store/, broker/); the API
maps this tree to problem+json in one place (api/problems.py).

    TaskstreamError
    ├── ProblemError              carries an HTTP status and a stable machine-readable code
    │   ├── InvalidRequest        400  malformed JSON, wrong shape
    │   ├── Unauthenticated       401  missing / unknown / revoked API key
    │   ├── Forbidden             403  role does not allow the action
    │   ├── NotFound              404  missing, or another tenant's
    │   ├── Conflict              409  idempotency key reused with another body, bad state
    │   ├── PayloadTooLarge       413
    │   ├── UnsupportedMediaType  415  a body that is not JSON
    │   ├── Unprocessable         422  unknown task type, payload fails the type's schema
    │   │   └── StoreRefused      422  PostgreSQL refused the data (a value checks missed)
    │   ├── SealKeyMissing        503  stored data sealed with a key this process lacks
    │   └── SealBroken            500  sealed data that does not open (changed, moved, other key)
    ├── Unavailable               503  a dependency is down (retry later)
    │   ├── StoreUnavailable      PostgreSQL
    │   └── BrokerUnavailable     Redis
    │       └── BrokerRefused     Redis answered with an error (out of memory, read-only...)
    ├── HandlerError              handler registry / loading problems
    └── BreakerOpen               ctx.breaker(name) inside an open breaker: the task is
                                  postponed, no attempt spent (never reaches the API)
"""

from __future__ import annotations

from typing import Any


class TaskstreamError(Exception):
    """Root of every error taskstream raises on purpose."""


class ProblemError(TaskstreamError):
    status = 400
    code = "invalid_request"
    retry_after_s: int | None = None  # sent as Retry-After (and in the body) when set

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        retry_after_s: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s
            extra["retry_after_s"] = retry_after_s
        self.extra = extra


class InvalidRequest(ProblemError):
    status = 400
    code = "invalid_request"


class Unauthenticated(ProblemError):
    status = 401
    code = "unauthenticated"


class Forbidden(ProblemError):
    status = 403
    code = "forbidden"


class NotFound(ProblemError):
    status = 404
    code = "not_found"


class Conflict(ProblemError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ProblemError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ProblemError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(ProblemError):
    status = 422
    code = "validation_failed"


class StoreRefused(Unprocessable):
    """PostgreSQL refused a value (a data exception or a constraint): the request's fault, never
    retried as it is. The door checks should catch these first; this is the safety net."""

    code = "rejected_by_store"


class RateLimited(ProblemError):
    """The tenant spent its request budget (``--rate-limit`` per minute)."""

    status = 429
    code = "rate_limited"


class QueueFull(ProblemError):
    """The tenant's waiting tasks are at ``--max-pending``: nothing was written."""

    status = 503
    code = "queue_full"


class SealKeyMissing(ProblemError):
    """A value is sealed with a key id missing from ``TASKSTREAM_ENCRYPTION_KEYS``."""

    status = 503
    code = "encryption_key_missing"


class SealBroken(ProblemError):
    """A sealed value does not open under its key id: never returned as garbage."""

    status = 500
    code = "decryption_failed"


class Unavailable(TaskstreamError):
    """A dependency is down; the caller should retry later."""

    retry_after_s = 1


class StoreUnavailable(Unavailable):
    pass


class BrokerUnavailable(Unavailable):
    pass


class BrokerRefused(BrokerUnavailable):
    """Redis answered a command with an error (``OOM``, ``READONLY``, ``NOSCRIPT``...). Callers
    treat it as an outage (publishing falls back to the relay); ``reply`` is Redis' own text so
    an expected reply (``NOGROUP``) can still be recognised."""

    def __init__(self, reply: str) -> None:
        super().__init__(f"Redis refused the command: {reply[:200]}")
        self.reply = reply


class HandlerError(TaskstreamError):
    pass


class BreakerOpen(TaskstreamError):
    """Raised by ``ctx.breaker(name)`` while the tenant's breaker ``name`` is open (or another
    attempt probes it): the worker postpones the task by ``delay_s`` without spending an
    attempt. Let it propagate out of the handler."""

    def __init__(self, breaker: str, state: str, delay_s: float) -> None:
        super().__init__(f"breaker {breaker!r} is {state}: postponed {delay_s:.3f} s")
        self.breaker = breaker
        self.state = state
        self.delay_s = delay_s
