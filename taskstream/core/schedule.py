"""Cron maths, pure: validation, next fire times in a time zone, and which fires to enqueue
after downtime (the misfire policy). Time is always an argument.

Expressions use croniter's field order: 5 fields ``minute hour day month weekday``, or 6 with
**seconds last** (``minute hour day month weekday second``; ``* * * * * *`` fires every second).
Other libraries put seconds first (aiocron 2.x); taskstream does not.

Daylight saving time, in the schedule's zone: a wall-clock time skipped by spring-forward
fires once, at the first instant after the gap; a time that occurs twice at fall-back fires
once (its first occurrence) when the expression names specific hours; expressions whose hour
field is a wildcard or a step (``*``, ``*/2``) keep firing at every real hour.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
    return _zone(timezone)


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
