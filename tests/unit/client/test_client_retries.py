"""The client's retry maths: backoff with jitter, Retry-After, which failures are retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskstream.client.retries import (
    RetryPolicy,
    backoff_s,
    delay_s,
    parse_retry_after,
    should_retry_failure,
    should_retry_status,
)

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
POLICY = RetryPolicy(attempts=4, base_s=0.1, cap_s=1.0, max_retry_after_s=30)


@pytest.mark.parametrize(
    ("retry", "window_s"), [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (60, 1.0)]
)
def test_backoff_doubles_up_to_the_cap_with_full_jitter(retry: int, window_s: float) -> None:
    assert backoff_s(POLICY, retry, lambda: 0.0) == 0.0
    assert backoff_s(POLICY, retry, lambda: 0.5) == pytest.approx(window_s / 2)
    assert backoff_s(POLICY, retry, lambda: 0.999) == pytest.approx(window_s * 0.999)


def test_retry_after_is_a_floor_with_a_bounded_spread() -> None:
    assert delay_s(POLICY, 0, 2.0, lambda: 0.0) == 2.0
    assert delay_s(POLICY, 0, 2.0, lambda: 0.999) == pytest.approx(2.0 + 0.0999)
    assert delay_s(POLICY, 9, 2.0, lambda: 0.999) == pytest.approx(2.5)  # at most a quarter more
    assert delay_s(POLICY, 1, None, lambda: 0.5) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ((NOW + timedelta(seconds=7)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 7.0),
        ((NOW - timedelta(seconds=7)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_parses_seconds_and_dates(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    ("status", "retry", "wait_s", "expected"),
    [
        (429, 0, 1.0, True),
        (503, 2, 1.0, True),
        (429, 3, 1.0, False),  # the fourth send was the last
        (429, 0, 31.0, False),  # longer than the client will wait
        (500, 0, 0.0, False),
        (409, 0, 0.0, False),
        (422, 0, 0.0, False),
    ],
)
def test_which_answers_are_sent_again(
    status: int, retry: int, wait_s: float, expected: bool
) -> None:
    assert should_retry_status(status, POLICY, retry, wait_s) is expected


@pytest.mark.parametrize(
    ("sent", "idempotent", "retry", "expected"),
    [
        (False, False, 0, True),  # never reached the server: always safe
        (True, True, 0, True),  # reached it, but a second copy does no harm
        (True, False, 0, False),  # a cancel or a replay is never sent twice
        (False, True, 3, False),  # out of attempts
    ],
)
def test_which_failures_are_sent_again(
    sent: bool, idempotent: bool, retry: int, expected: bool
) -> None:
    assert should_retry_failure(sent, idempotent, POLICY, retry) is expected
