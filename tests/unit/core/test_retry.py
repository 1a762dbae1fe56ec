"""Exponential backoff with full jitter and a cap; ``now`` and randomness are arguments."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from taskstream.core.retry import RetryPolicy, backoff_ceiling_s, backoff_s, next_run_at

DEFAULT = RetryPolicy()
SMALL = RetryPolicy(base_s=0.5, cap_s=10.0)
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("policy", "attempt", "ceiling"),
    [
        (DEFAULT, 1, 1.0),
        (DEFAULT, 2, 2.0),
        (DEFAULT, 3, 4.0),
        (DEFAULT, 4, 8.0),
        (DEFAULT, 9, 256.0),
        (DEFAULT, 10, 300.0),  # 512 capped
        (DEFAULT, 0, 1.0),  # clamped to the first attempt
        (DEFAULT, -5, 1.0),
        (SMALL, 1, 0.5),
        (SMALL, 5, 8.0),
        (SMALL, 6, 10.0),
    ],
)
def test_ceiling_doubles_per_attempt_up_to_the_cap(
    policy: RetryPolicy, attempt: int, ceiling: float
) -> None:
    assert backoff_ceiling_s(attempt, policy) == ceiling


@pytest.mark.parametrize("attempt", [63, 64, 1_000, 10**6, 10**18, 10**100])
def test_huge_attempts_do_not_overflow(attempt: int) -> None:
    assert backoff_ceiling_s(attempt, DEFAULT) == 300.0
    uncapped = RetryPolicy(base_s=1.0, cap_s=1e300)
    assert math.isfinite(backoff_ceiling_s(attempt, uncapped))
    assert next_run_at(NOW, attempt, DEFAULT, 0.5) == NOW + timedelta(seconds=150)


@pytest.mark.parametrize("attempt", range(1, 13))
def test_full_jitter_stays_in_zero_to_ceiling(attempt: int) -> None:
    ceiling = backoff_ceiling_s(attempt, DEFAULT)
    assert backoff_s(attempt, DEFAULT, 0.0) == 0.0
    assert backoff_s(attempt, DEFAULT, 0.5) == ceiling / 2
    top = backoff_s(attempt, DEFAULT, 0.999)
    assert 0.99 * ceiling < top < ceiling


@pytest.mark.parametrize(
    ("attempt", "unit_random", "delay_s"),
    [(1, 0.0, 0.0), (1, 0.5, 0.5), (3, 0.25, 1.0), (10, 0.5, 150.0)],
)
def test_next_run_at_adds_the_delay_to_now(
    attempt: int, unit_random: float, delay_s: float
) -> None:
    run_at = next_run_at(NOW, attempt, DEFAULT, unit_random)
    assert run_at == NOW + timedelta(seconds=delay_s)
    assert run_at.tzinfo is UTC
