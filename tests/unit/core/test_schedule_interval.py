"""The shortest interval between two fires of a cron expression: a table of known answers, and
properties against the fires croniter itself produces (never longer than a real gap; equal to
one when the days are unrestricted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from croniter import CroniterBadDateError, croniter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from taskstream.core.schedule import InvalidSchedule, shortest_interval_s, validate

DAY_S = 86_400


@pytest.mark.parametrize(
    ("expression", "expected_s"),
    [
        ("* * * * *", 60),
        ("0,1 * * * *", 60),
        ("0 * * * *", 3600),
        ("* * * * * *", 1),
        ("* * * * * */15", 15),  # seconds last: at seconds 0, 15, 30 and 45
        ("* * * * * */10", 10),
        ("*/15 * * * * *", 1),  # every second of minutes 0, 15, 30 and 45
        ("*/10 * * * * *", 1),
        ("* * * * * 0,59", 1),  # 00:00:59 -> 00:01:00
        ("0,59 0,23 * * *", 60),  # 23:59 -> 00:00 the next day
        ("59 23 * * * 59", DAY_S),
        ("0 0 * * *", DAY_S),
        ("30 9 * * 1-5", DAY_S),  # Monday to Thursday; Friday -> Monday is longer
        ("0 9,17 * * 1-5", 8 * 3600),
        ("0 0 * * 1", 7 * DAY_S),
        ("0 0 * * 1,3,5", 2 * DAY_S),
        ("0 0 */2 * *", DAY_S),  # the 31st -> the 1st
        ("0 0 2-30/2 * *", 2 * DAY_S),
        ("0 0 13 * 5", DAY_S),  # the 13th or a Friday (croniter ORs the day fields)
        ("0 0 1 * *", 28 * DAY_S),  # 1 February -> 1 March
        ("0 0 L * *", 28 * DAY_S),  # 31 January -> 28 February
        ("0 0 31 * *", 31 * DAY_S),  # 31 July -> 31 August
        ("0 0 1 1 *", 365 * DAY_S),
        ("0 0 29 2 *", 1461 * DAY_S),  # 4 years; 8 across 2100
        ("0 0 * * 5#5", 63 * DAY_S),
    ],
)
def test_known_intervals(expression: str, expected_s: int) -> None:
    assert shortest_interval_s(expression) == expected_s


@pytest.mark.parametrize(
    "expression", ["61 * * * *", "* * * *", "* * * * * * *", "hello", "0 0 30 2 *", ""]
)
def test_what_is_not_an_expression_is_refused(expression: str) -> None:
    with pytest.raises(InvalidSchedule):
        shortest_interval_s(expression)


def _gaps_s(expression: str, start: datetime, fires: int) -> list[float]:
    it = croniter(expression, start)
    times = [it.get_next(datetime) for _ in range(fires)]
    return [(b - a).total_seconds() for a, b in pairwise(times)]


@pytest.mark.parametrize(
    "expression",
    ["0 0 1 * *", "0 0 L * *", "0 0 31 * *", "0 0 29 2 *", "0 0 * * 5#5", "0 0 15W * *"],
)
def test_sparse_days_match_a_long_walk(expression: str) -> None:
    # 40 years of fires from 2090: the answer is a gap croniter produces, and the shortest.
    gaps = _gaps_s(expression, datetime(2090, 1, 1, tzinfo=UTC), 500)
    assert min(gaps) == shortest_interval_s(expression)


def test_an_expression_croniter_loses_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found once, then lost (as croniter did ``1W 1 4`` after 2015 within 9 years)."""
    get_next = croniter.get_next
    calls = 0

    def found_once(self: croniter, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise CroniterBadDateError("failed to find next date")
        return get_next(self, *args, **kwargs)

    monkeypatch.setattr(croniter, "get_next", found_once)
    with pytest.raises(InvalidSchedule, match="croniter cannot follow it"):
        shortest_interval_s("0 0 1 * *")


def test_work_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of the 91 month shapes is listed once: at most 32 croniter steps each, however
    sparse the days (these expressions never fire on two days in a row, so no walk ends early)."""
    steps = 0
    get_next = croniter.get_next

    def counted(self: croniter, *args: Any, **kwargs: Any) -> Any:
        nonlocal steps
        steps += 1
        return get_next(self, *args, **kwargs)

    monkeypatch.setattr(croniter, "get_next", counted)
    for expression in ("0 0 2-30/2 * *", "0 0 * * 1,3,5", "0 0 * * 1"):
        steps = 0
        shortest_interval_s(expression)
        assert steps <= 91 * 32


# -- properties against croniter -------------------------------------------------------------


def _time_field(top: int) -> st.SearchStrategy[str]:
    """A seconds, minutes or hours field: values 0..top."""
    value = st.integers(0, top)
    return st.one_of(
        st.just("*"),
        st.integers(1, top).map(lambda k: f"*/{k}"),
        value.map(str),
        st.lists(value, min_size=2, max_size=4, unique=True).map(lambda vs: ",".join(map(str, vs))),
        st.tuples(value, value, st.integers(1, 7)).map(
            lambda t: f"{min(t[:2])}-{max(t[:2])}/{t[2]}"
        ),
    )


_DAY = st.one_of(
    st.just("*"),
    st.integers(1, 31).map(str),
    st.lists(st.integers(1, 31), min_size=2, max_size=4, unique=True).map(
        lambda vs: ",".join(map(str, vs))
    ),
    st.tuples(st.integers(1, 15), st.integers(1, 4)).map(lambda t: f"{t[0]}-31/{t[1]}"),
    st.sampled_from(["L", "15W", "1W"]),
)
_MONTH = st.one_of(
    st.just("*"),
    st.integers(1, 12).map(str),
    st.lists(st.integers(1, 12), min_size=2, max_size=3, unique=True).map(
        lambda vs: ",".join(map(str, vs))
    ),
)
_WEEKDAY = st.one_of(
    st.just("*"),
    st.integers(0, 6).map(str),
    st.lists(st.integers(0, 6), min_size=2, max_size=3, unique=True).map(
        lambda vs: ",".join(map(str, vs))
    ),
    st.just("1-5"),
    st.tuples(st.integers(0, 6), st.integers(1, 5)).map(lambda t: f"{t[0]}#{t[1]}"),
)
_INSTANT = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2399, 12, 31), timezones=st.just(UTC)
)


def _answer(expression: str) -> int:
    try:
        validate(expression, "UTC")
        return shortest_interval_s(expression)
    except InvalidSchedule:
        assume(False)
        raise


@settings(max_examples=150, deadline=None)
@given(
    st.tuples(_time_field(59), _time_field(23), _DAY, _MONTH, _WEEKDAY, _time_field(59)),
    st.booleans(),
    _INSTANT,
)
def test_never_longer_than_a_gap_croniter_produces(
    fields: tuple[str, ...], with_seconds: bool, start: datetime
) -> None:
    expression = " ".join(fields if with_seconds else fields[:5])
    answer = _answer(expression)
    assert answer > 0
    assert min(_gaps_s(expression, start, 60)) >= answer


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 59), st.integers(0, 23), _DAY, _MONTH, _WEEKDAY, _INSTANT, st.integers(0, 23))
def test_days_are_never_closer_than_the_answer(
    minute: int, hour: int, day: str, month: str, weekday: str, start: datetime, late: int
) -> None:
    """Once or twice a day, where the answer comes from the walk over the days."""
    hours = f"{hour}" if late <= hour else f"{hour},{late}"
    expression = f"{minute} {hours} {day} {month} {weekday}"
    answer = _answer(expression)
    assert min(_gaps_s(expression, start, 40)) >= answer


@settings(max_examples=100, deadline=None)
@given(
    st.tuples(_time_field(59), _time_field(23), _time_field(59)),
    st.integers(0, 146_096),
)
def test_equal_to_a_gap_croniter_produces_when_every_day_fires(
    fields: tuple[str, str, str], day: int
) -> None:
    minute, hour, second = fields
    expression = f"{minute} {hour} * * * {second}"
    fires_per_day = _fires_per_day(expression)
    assume(fires_per_day <= 2_000)
    # Every gap of a day, and the one into the next day, lie within a day's fires and one more.
    before_midnight = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=day, seconds=-1)
    gaps = _gaps_s(expression, before_midnight, fires_per_day + 1)
    assert min(gaps) == shortest_interval_s(expression)


def _fires_per_day(expression: str) -> int:
    expanded = croniter.expand(expression)[0]
    n = 1
    for field, count in ((expanded[0], 60), (expanded[1], 24), (expanded[5], 60)):
        n *= count if "*" in field else len(field)
    return n
