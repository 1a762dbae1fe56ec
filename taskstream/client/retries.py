"""When to send a request again, and after how long: pure functions of their arguments.

A request is sent again after a 429 (over the rate) or a 503 (a dependency down, or the
tenant's queue full): the API wrote nothing for either. After a connection error it is sent
again when nothing reached the server (connect refused or timed out), or when sending it twice
does no harm (reads, and submits, which always carry an idempotency key). Waits honour
``Retry-After`` and add jitter, so clients that were refused together do not return together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import msgspec

RETRY_STATUSES = frozenset({429, 503})


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How hard a client tries before it raises."""

    attempts: int = 8
    """Sends of one request at most (1: never retry)."""
    base_s: float = 0.1
    """Backoff of the first retry without ``Retry-After``; doubles each time, with full jitter."""
    cap_s: float = 5.0
    """The longest backoff (before jitter) between two sends."""
    max_retry_after_s: float = 60.0
    """A ``Retry-After`` longer than this is not waited for: the error is raised at once."""


NO_RETRIES = RetryPolicy(attempts=1)


def backoff_s(policy: RetryPolicy, retry: int, rand: Callable[[], float]) -> float:
    """Full jitter (AWS' "exponential backoff and jitter"): uniform in [0, min(cap, base·2^n)]
    for the ``retry``-th retry (0-based); ``rand()`` is uniform in [0, 1)."""
    window_s: float = min(policy.cap_s, policy.base_s * 2.0 ** min(retry, 32))
    return rand() * window_s


def delay_s(
    policy: RetryPolicy, retry: int, retry_after_s: float | None, rand: Callable[[], float]
) -> float:
    """How long to wait before the ``retry``-th retry: never sooner than ``Retry-After``, plus
    up to a quarter of it (or the backoff when it is shorter) so refused clients spread out."""
    jitter = backoff_s(policy, retry, rand)
    if retry_after_s is None:
        return jitter
    return retry_after_s + min(jitter, retry_after_s / 4)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds: delta-seconds (``"3"``) or an HTTP date (RFC 9110 §10.2.3);
    None when absent or unreadable, 0 for a date in the past."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        seconds = float(text)  # not in the RFC, but cheap to accept ("1.5")
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        at = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # RFC 9110 dates are GMT
    return max(0.0, (at - now).total_seconds())


def should_retry_status(status: int, policy: RetryPolicy, retry: int, wait_s: float) -> bool:
    """A 429 / 503 is sent again while attempts remain and the wait is acceptable."""
    return (
        status in RETRY_STATUSES
        and retry + 1 < policy.attempts
        and wait_s <= policy.max_retry_after_s
    )


def should_retry_failure(sent: bool, idempotent: bool, policy: RetryPolicy, retry: int) -> bool:
    """A connection error is retried when the request never left (``sent`` False) or when a
    second copy does no harm."""
    return retry + 1 < policy.attempts and (idempotent or not sent)
