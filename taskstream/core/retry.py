"""Retry maths: exponential backoff with full jitter and a cap. Pure; time and randomness are
arguments."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    base_s: float = 1.0
    cap_s: float = 300.0


def backoff_ceiling_s(attempt: int, policy: RetryPolicy) -> float:
    """Upper bound of the wait after failed ``attempt`` (1-based): base * 2^(attempt-1), capped."""
    exponent = min(max(attempt - 1, 0), 62)  # beyond 2^62 the cap has long applied
    return float(min(policy.cap_s, policy.base_s * (2**exponent)))


def backoff_s(attempt: int, policy: RetryPolicy, unit_random: float) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, ceiling). ``unit_random`` in [0, 1)."""
    return backoff_ceiling_s(attempt, policy) * unit_random


def next_run_at(now: datetime, attempt: int, policy: RetryPolicy, unit_random: float) -> datetime:
    """When a task whose ``attempt`` just failed should run again."""
    return now + timedelta(seconds=backoff_s(attempt, policy, unit_random))
