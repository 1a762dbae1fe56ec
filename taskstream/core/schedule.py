"""Cron maths, pure: validation, next fire times in a time zone, which fires to enqueue after
downtime (the misfire policy), and the shortest interval between two fires. Time is always an
argument.

Expressions use croniter's field order: 5 fields ``minute hour day month weekday``, or 6 with
**seconds last** (``minute hour day month weekday second``; ``* * * * * *`` fires every second).
Other libraries put seconds first (aiocron 2.x); taskstream does not.

Daylight saving time, in the schedule's zone: a wall-clock time skipped by spring-forward
fires once, at the first instant after the gap; a time that occurs twice at fall-back fires
once (its first occurrence) when the expression names specific hours; expressions whose hour
field is a wildcard or a step (``*``, ``*/2``) keep firing at every real hour.

The shortest interval (:func:`shortest_interval_s`) is measured in UTC, on the expression's
calendar, whatever the schedule's zone. A clock change can bring one pair of fires closer in real
time, by at most the zone's shift (an hour in most zones): ``0,59 1,3 * * * 5,59`` in New York
fires at 01:59:59 EST and 03:00:05 EDT on the day of spring-forward, 6 s apart though its UTC
interval is 54 s; ``0,59 1 * * *`` fires at 01:59 EDT and 01:00 EST at fall-back, 60 s apart. We
accept it: a floor on the interval bounds the steady rate of fires, which a pair twice a year
does not change, and an answer that depended on the zone's future rules could not be trusted.
"""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter


class Misfire(enum.StrEnum):
    RUN_ONCE = "run_once"  # missed fires collapse into one catch-up run (the latest)
    RUN_ALL = "run_all"  # every missed fire runs, the latest `max_catch_up` of them
    SKIP = "skip"  # missed fires are dropped; the schedule resumes at its next time


class InvalidSchedule(ValueError):
    pass


MAX_EXPRESSION_CHARS = 256
# IANA names are path segments of letters, digits, '_', '+' and '-' (the longest is 32 chars);
# anything else (``..``, a NUL, a leading '/') would be a file path, not a zone name.
ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
MAX_ZONE_CHARS = 64
# A matchable expression fires at least once in any 8 years (29 February skips a century year);
# croniter gives up past this many years instead of searching on.
_MAX_YEARS_BETWEEN_FIRES = 9
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


def validate(expression: str, timezone: str) -> ZoneInfo:
    """Raise InvalidSchedule with the reason; return the zone. Bounded in time: the expression
    and zone name are bounded in length, and one fire time is searched within 9 years."""
    _check_expression(expression)
    return _zone(timezone)


def _check_expression(expression: str) -> None:
    fields = expression.split()
    if (
        len(expression) > MAX_EXPRESSION_CHARS
        or len(fields) not in (5, 6)
        or not croniter.is_valid(expression)
    ):
        raise InvalidSchedule(
            f"{expression[:80]!r} is not a cron expression: use 5 fields (minute hour day month "
            "weekday) or 6 with seconds last"
        )
    try:
        croniter(
            expression, _REFERENCE, max_years_between_matches=_MAX_YEARS_BETWEEN_FIRES
        ).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidSchedule(f"{expression!r} never fires (no such date)") from None


def _zone(timezone: str) -> ZoneInfo:
    if len(timezone) > MAX_ZONE_CHARS or not ZONE_NAME.fullmatch(timezone):
        raise InvalidSchedule(f"{timezone[:80]!r} is not an IANA time zone")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory ("America")
        raise InvalidSchedule(f"{timezone!r} is not an IANA time zone") from None


def _wall_clock_hours(expression: str) -> bool:
    """True when the hour field names specific hours (then a repeated hour fires once)."""
    return "*" not in expression.split()[1]


def fires_after(expression: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``after``, in UTC, in order, forever."""
    zone = validate(expression, timezone)
    it = croniter(expression, after.astimezone(zone))
    dedupe = _wall_clock_hours(expression)
    previous_wall: datetime | None = None
    last = after.astimezone(UTC)
    while True:
        local: datetime = it.get_next(datetime)
        wall = local.replace(tzinfo=None)
        moment = local.astimezone(UTC)
        if moment <= last or (dedupe and wall == previous_wall):
            continue  # the second pass through a repeated hour
        previous_wall, last = wall, moment
        yield moment


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    return next(fires_after(expression, timezone, after))


def plan(
    expression: str,
    timezone: str,
    next_run_at: datetime,
    now: datetime,
    policy: Misfire,
    grace_s: float,
    max_catch_up: int,
) -> tuple[list[datetime], datetime]:
    """The fire times to enqueue now, and the new next_run_at (always after ``now``).

    Fires due by ``now`` are on time if at most ``grace_s`` late; older ones were missed
    (schedulers down) and the policy decides what becomes of them."""
    due: list[datetime] = []
    if next_run_at <= now:
        due.append(next_run_at)
        for moment in fires_after(expression, timezone, next_run_at):
            if moment > now:
                break
            due.append(moment)
            if len(due) > 100_000:  # a schedule far behind: keep only what a policy can use
                due = due[-(max_catch_up + 1_000) :]
    upcoming = next_fire(expression, timezone, max(now, next_run_at - timedelta(microseconds=1)))
    cutoff = now - timedelta(seconds=grace_s)
    on_time = [f for f in due if f >= cutoff]
    missed = [f for f in due if f < cutoff]
    if policy is Misfire.SKIP:
        chosen = on_time
    elif policy is Misfire.RUN_ONCE:
        chosen = missed[-1:] + on_time  # one catch-up run stands for everything missed
    else:
        chosen = missed[-max_catch_up:] + on_time
    return chosen, upcoming


_DAY_S = 86_400
# The Gregorian calendar repeats every 400 years (146,097 days, a whole number of weeks), and so
# do the days an expression fires on: a walk over one cycle sees every gap between them.
_CYCLE_START = date(2000, 1, 1)
_CYCLE_YEARS = 400


def shortest_interval_s(expression: str) -> int:
    """The shortest time between two consecutive fires of ``expression``, in seconds, measured
    in UTC (see the module docstring for clock changes). Exact, and bounded in time: the time of
    day is reasoned on the fields; the days, when they matter (an expression that fires once a
    day or less, or near both ends of a day), on at most 91 month shapes (0.2 s at worst, measured).

    >>> shortest_interval_s("0,1 * * * *"), shortest_interval_s("* * * * * */15")
    (60, 15)
    >>> shortest_interval_s("*/15 * * * * *")  # seconds last: every second of 4 minutes an hour
    1
    >>> shortest_interval_s("0 9 * * 1-5") // 3600, shortest_interval_s("0 0 1 * *") // _DAY_S
    (24, 28)
    """
    _check_expression(expression)
    fields = expression.split()
    expanded = croniter.expand(expression)[0]
    seconds = _values(expanded[5], 60) if len(fields) == 6 else [0]
    minutes, hours = _values(expanded[0], 60), _values(expanded[1], 24)
    gaps_s: list[int] = []
    span_s = 0  # from the first fire of a day to its last, over the finer fields so far
    # Two consecutive fires of one day differ in one field, the finer fields going from their
    # last value back to their first: the gap is that field's step less their span.
    for values, unit_s in ((seconds, 1), (minutes, 60), (hours, 3600)):
        gaps_s.extend((b - a) * unit_s - span_s for a, b in pairwise(values))
        span_s += (values[-1] - values[0]) * unit_s
    # Across days: from the last fire of a day to the first of the next day that fires, at
    # least a day less the span; when a day's own gaps are no longer, the days need no walk.
    if gaps_s and min(gaps_s) <= _DAY_S - span_s:
        return min(gaps_s)
    try:
        day_gap = _shortest_day_gap(*fields[2:5])
    except CroniterBadDateError:
        # croniter can lose an expression it followed before (with a 9-year search it lost
        # ``0 0 1W 1 4`` after 2015): a schedule on one would stop firing there.
        raise InvalidSchedule(
            f"{expression!r} has no next fire time in some years: croniter cannot follow it"
        ) from None
    gaps_s.append(day_gap * _DAY_S - span_s)
    return min(gaps_s)


def _values(field: Sequence[int | str], count: int) -> list[int]:
    """The values a time field (seconds, minutes, hours) fires at, sorted."""
    if "*" in field:
        return list(range(count))
    return sorted(int(v) for v in field)


def _shortest_day_gap(day: str, month: str, weekday: str) -> int:
    """The fewest days between two consecutive days that the day fields fire on.

    Which days of a month fire depends only on the month, its length and the weekday it starts
    on (12 x 7 shapes, and 7 for a 29-day February): croniter lists each shape's days once, and
    the walk over a whole cycle (4,800 months and the longest gap after it) then only adds."""
    days = f"0 0 {day} {month} {weekday}"
    shapes: dict[tuple[int, int, int], list[int]] = {}
    shortest: int | None = None
    previous: int | None = None  # the ordinal of the last day that fired
    for first in _month_starts(_CYCLE_YEARS + _MAX_YEARS_BETWEEN_FIRES):
        shape = (first.month, calendar.monthrange(first.year, first.month)[1], first.weekday())
        if shape not in shapes:
            shapes[shape] = _days_that_fire(days, first)
        ordinals = [first.toordinal() + d - 1 for d in shapes[shape]]
        if previous is not None:
            ordinals.insert(0, previous)
        for a, b in pairwise(ordinals):
            shortest = b - a if shortest is None else min(shortest, b - a)
        if shortest == 1:
            return 1  # nothing is shorter: the other shapes need not be listed
        previous = ordinals[-1] if ordinals else previous
    if shortest is None:
        raise InvalidSchedule(f"'{day} {month} {weekday}' fires on fewer than two days")
    return shortest


def _month_starts(years: int) -> Iterator[date]:
    for n in range(years * 12):
        yield date(_CYCLE_START.year + n // 12, n % 12 + 1, 1)


def _days_that_fire(days: str, first: date) -> list[int]:
    """The days of ``first``'s month that the expression ``days`` fires on."""
    # A new croniter each time: one moved back with set_current loses some expressions that a
    # new one follows (``L * 3#4`` from February 2007).
    it = croniter(days, datetime(first.year, first.month, 1, tzinfo=UTC) - timedelta(seconds=1))
    fired: list[int] = []
    while True:
        fire: datetime = it.get_next(datetime)
        if (fire.year, fire.month) != (first.year, first.month):
            return fired
        fired.append(fire.day)
