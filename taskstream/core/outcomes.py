"""What a handler can raise to steer its task, and what an attempt came to."""

from __future__ import annotations

import enum

import msgspec


class Retry(Exception):
    """Raise from a handler to run the task again after ``delay_s`` (counts as an attempt)."""

    def __init__(self, delay_s: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay_s = delay_s
        self.reason = reason


class Fail(Exception):
    """Raise from a handler to fail the task now, without further attempts."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutcomeKind(enum.StrEnum):
    COMPLETED = "completed"
    RETRY = "retry"  # retry if attempts remain (backoff unless delay_s given)
    FAIL = "fail"  # fail now (Fail raised, or not retryable)
    TIMEOUT = "timeout"  # handled as RETRY, recorded as timeout
    POSTPONED = "postponed"  # a dependency's breaker is open: run later, no attempt spent


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    kind: OutcomeKind
    result_json: bytes | None = None
    error: str | None = None
    delay_s: float | None = None
    duration_s: float = 0.0
