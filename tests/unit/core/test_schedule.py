"""Cron maths: validation, fire times across DST, and misfire policies after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest

from taskstream.core.schedule import (
    InvalidSchedule,
    Misfire,
    fires_after,
    next_fire,
    plan,
    validate,
)

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("expr", "tz"),
    [
        ("61 * * * *", "UTC"),
        ("* * * *", "UTC"),
        ("* * * * * * *", "UTC"),
        ("hello", "UTC"),
        ("* * * * *", "Mars/Olympus"),
        ("* * * * *", ""),
    ],
)
def test_invalid_expressions_and_zones(expr: str, tz: str) -> None:
    with pytest.raises(InvalidSchedule):
        validate(expr, tz)


def test_six_fields_put_seconds_last() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    every_second = list(islice(fires_after("* * * * * *", "UTC", start), 3))
    assert [f.second for f in every_second] == [1, 2, 3]
    # "minute hour day month weekday second": at second 30 of every minute.
    at_30 = list(islice(fires_after("* * * * * 30", "UTC", start), 2))
    assert at_30 == [start.replace(second=30), start.replace(minute=1, second=30)]


def test_fires_are_in_the_schedules_zone() -> None:
    after = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    fire = next_fire("0 9 * * *", "America/New_York", after)
    assert fire == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # 09:00 EDT, the same day


def test_spring_forward_skipped_time_fires_once_after_the_gap() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT: 02:30 does not exist that day.
    after = datetime(2026, 3, 7, 12, 0, tzinfo=NY)
    fires = list(islice(fires_after("30 2 * * *", "America/New_York", after), 3))
    local = [f.astimezone(NY) for f in fires]
    assert [(d.day, d.hour, d.minute) for d in local] == [(8, 3, 0), (9, 2, 30), (10, 2, 30)]


def test_fall_back_repeated_time_fires_once() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice; a daily job runs once.
    after = datetime(2026, 10, 31, 12, 0, tzinfo=NY)
    fires = list(islice(fires_after("30 1 * * *", "America/New_York", after), 2))
    assert fires == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
    ]


def test_fall_back_hourly_keeps_every_real_hour() -> None:
    after = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)  # 00:30 EDT
    fires = list(islice(fires_after("0 * * * *", "America/New_York", after), 4))
    gaps = {b - a for a, b in pairwise(fires)}
    assert gaps == {timedelta(hours=1)}  # 01:00 EDT, 01:00 EST, 02:00 EST, ...


NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
OUTAGE_START = NOW - timedelta(seconds=30)  # every-second schedule, 30 s of downtime


@pytest.mark.parametrize(
    ("policy", "expected_missed", "expected_on_time"),
    [(Misfire.SKIP, 0, 6), (Misfire.RUN_ONCE, 1, 6), (Misfire.RUN_ALL, 10, 6)],
)
def test_misfire_policies_after_downtime(
    policy: Misfire, expected_missed: int, expected_on_time: int
) -> None:
    fires, upcoming = plan("* * * * * *", "UTC", OUTAGE_START, NOW, policy, 5.0, 10)
    cutoff = NOW - timedelta(seconds=5)
    missed = [f for f in fires if f < cutoff]
    on_time = [f for f in fires if f >= cutoff]
    assert (len(missed), len(on_time)) == (expected_missed, expected_on_time)
    assert fires == sorted(set(fires))  # each fire time once, in order
    assert upcoming == NOW + timedelta(seconds=1)
    if policy is Misfire.RUN_ONCE:
        assert missed == [cutoff - timedelta(seconds=1)]  # the latest missed stands for all
    if policy is Misfire.RUN_ALL:
        assert missed[-1] == cutoff - timedelta(seconds=1)  # the most recent ones


def test_nothing_due_yet() -> None:
    nxt = NOW + timedelta(seconds=10)
    assert plan("* * * * * *", "UTC", nxt, NOW, Misfire.RUN_ALL, 5, 10) == ([], nxt)


def test_plan_is_exact_on_time() -> None:
    fires, upcoming = plan(
        "* * * * * */5", "UTC", NOW - timedelta(seconds=0.5), NOW, Misfire.SKIP, 60, 10
    )
    # The stored next run, plus the real fire at NOW (12:00:30 is a multiple of 5 s).
    assert fires == [NOW - timedelta(seconds=0.5), NOW]
    assert upcoming == NOW + timedelta(seconds=5)
