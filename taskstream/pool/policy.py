"""The pool's decisions, as plain functions of what the children last reported and ``now``
(monotonic seconds): how big the pool should be (autoscale, with hysteresis), what a runtime
resize by signal gives, which child leaves first, when a silent child counts as hung, when a
child should retire, and how long to wait before restarting one that crashed.

Hysteresis. The pool grows only while entries *wait* (undelivered in the streams its children
serve) at a rate of at least ``grow_ratio`` per free slot, for ``up_after_s`` in a row; it
shrinks by one only when nothing waits and the busy slots would fill at most ``shrink_fill`` of
a pool one child smaller, for ``down_after_s`` in a row (longer). The two conditions exclude
each other (one needs waiting entries, the other none), a shrink leaves the pool at most half
busy, and every change restarts both windows, so the size cannot flap between two values
faster than once per window."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

CHILD_TIMEOUT_S = 30.0  # gunicorn's worker timeout; a child beats every second
START_TIMEOUT_S = 60.0  # before its first beat: imports, connections, type registration
RESTART_BACKOFF_S = 1.0
MAX_RESTART_BACKOFF_S = 30.0
STABLE_AFTER_S = 10.0  # a child that lived this long crashed by bad luck, not in a loop


class Bounds(msgspec.Struct, frozen=True):
    """``--autoscale MIN,MAX``: the pool's size stays within them."""

    low: int
    high: int

    def clamp(self, size: int) -> int:
        return max(self.low, min(self.high, size))


class Autoscale(msgspec.Struct, frozen=True, kw_only=True):
    bounds: Bounds
    up_after_s: float = 5.0
    """Entries must wait this long in a row before the pool grows."""
    down_after_s: float = 30.0
    """The pool must be idle this long in a row before it shrinks by one (Celery's keepalive)."""
    grow_ratio: float = 1.0
    """Waiting entries per free slot that count as pressure."""
    shrink_fill: float = 0.5
    """Idle: the busy slots would fill at most this share of a pool one child smaller."""


class Load(msgspec.Struct, frozen=True):
    """The pool's children (those not leaving) as they last reported."""

    waiting: int | None  # entries not yet delivered; None: nobody could tell (Redis down)
    busy: int  # slots running a task
    free: int  # slots free, a starting child's counted as free (its capacity is coming)
    per_child: int  # slots of one child (--concurrency)


class Trend(msgspec.Struct, frozen=True):
    """Since when (``now`` seconds) the pool has been under pressure, or idle; None: not now."""

    pressure_since: float | None = None
    idle_since: float | None = None


class Limits(msgspec.Struct, frozen=True):
    """``--max-tasks-per-child`` and ``--max-memory-mb`` (None: no limit)."""

    max_tasks: int | None = None
    max_memory_mb: int | None = None


class Report(msgspec.Struct, frozen=True):
    """One child's last figures, as the load is computed from them."""

    slots: int
    busy: int
    waiting: int | None


def load_of(reports: Sequence[Report], starting: int, per_child: int) -> Load | None:
    """The pool's load from its reporting children, plus ``starting`` ones not reporting yet.
    Every child measures the same streams, so ``waiting`` is the largest figure, not a sum."""
    if not reports:
        return None
    known = [r.waiting for r in reports if r.waiting is not None]
    return Load(
        waiting=max(known) if known else None,
        busy=sum(r.busy for r in reports),
        free=sum(max(0, r.slots - r.busy) for r in reports) + starting * per_child,
        per_child=per_child,
    )


def decide(
    now: float, load: Load | None, size: int, policy: Autoscale, trend: Trend
) -> tuple[int, Trend]:
    """The size the pool should have, and the trend to pass in next time."""
    target = policy.bounds.clamp(size)
    if target != size or load is None:
        return target, Trend()
    pressed = _pressed(load, policy)
    idle = _idle(load, size, policy)
    trend = Trend(
        pressure_since=_since(trend.pressure_since, now) if pressed else None,
        idle_since=_since(trend.idle_since, now) if idle else None,
    )
    if _lasted(trend.pressure_since, now, policy.up_after_s) and size < policy.bounds.high:
        short = max(1, (load.waiting or 0) - load.free)  # entries no free slot will take
        grown = size + math.ceil(short / max(1, load.per_child))
        return policy.bounds.clamp(grown), Trend()  # windows restart: new children come up first
    if _lasted(trend.idle_since, now, policy.down_after_s) and size > policy.bounds.low:
        return size - 1, Trend()  # one at a time: each shrink waits a whole window
    return size, trend


def _since(since: float | None, now: float) -> float:
    return now if since is None else since


def _lasted(since: float | None, now: float, window_s: float) -> bool:
    return since is not None and now - since >= window_s


def _pressed(load: Load, policy: Autoscale) -> bool:
    waiting = load.waiting or 0
    return waiting > 0 and waiting >= policy.grow_ratio * max(1, load.free)


def _idle(load: Load, size: int, policy: Autoscale) -> bool:
    smaller = (size - 1) * load.per_child
    return load.waiting == 0 and load.busy <= smaller * policy.shrink_fill


def resize(size: int, delta: int, bounds: Bounds | None) -> int:
    """SIGTTIN (+1) / SIGTTOU (-1): never below one process, within the bounds if any."""
    wanted = max(1, size + delta)
    return bounds.clamp(wanted) if bounds is not None else wanted


def pick_to_stop(children: Sequence[tuple[int, int | None, float]]) -> int:
    """Which child leaves when the pool shrinks, of ``(pid, busy or None, started_s)``: the one
    with the least work to drain (not reporting yet: none), the youngest of equals."""
    pid, _, _ = min(children, key=lambda c: (c[1] or 0, -c[2]))
    return pid


def silent_too_long(now: float, beat_s: float | None, spawned_s: float, timeout_s: float) -> bool:
    """Hung: no beat for ``timeout_s`` (before the first beat, the start allowance)."""
    if beat_s is None:
        return now - spawned_s > max(timeout_s, START_TIMEOUT_S)
    return now - max(beat_s, spawned_s) > timeout_s


def retire_reason(done: int, rss_bytes: int | None, limits: Limits) -> str | None:
    """Why a child should finish its tasks and make way for a fresh one, if it should."""
    if limits.max_tasks is not None and done >= limits.max_tasks:
        return "max_tasks"
    memory_mb = None if rss_bytes is None else rss_bytes / (1024 * 1024)
    if limits.max_memory_mb is not None and memory_mb is not None:
        return "max_memory" if memory_mb > limits.max_memory_mb else None
    return None


def restart_delay_s(lived_s: float, last_delay_s: float) -> float:
    """Before restarting a crashed child: a second, doubled while children keep dying young
    (a crash loop, e.g. PostgreSQL unreachable) up to half a minute."""
    if lived_s >= STABLE_AFTER_S:
        return RESTART_BACKOFF_S
    return min(MAX_RESTART_BACKOFF_S, max(RESTART_BACKOFF_S, last_delay_s * 2))
