"""The pool's decisions (taskstream/pool/policy.py) as tables: autoscale with hysteresis, the
resize by signal, who leaves first, when a child is hung, when it retires, crash backoff."""

from __future__ import annotations

import pytest

from taskstream.pool.policy import (
    START_TIMEOUT_S,
    Autoscale,
    Bounds,
    Limits,
    Load,
    Report,
    Trend,
    decide,
    load_of,
    pick_to_stop,
    resize,
    restart_delay_s,
    retire_reason,
    silent_too_long,
)

POLICY = Autoscale(bounds=Bounds(1, 4), up_after_s=5.0, down_after_s=30.0)
MB = 1024 * 1024


def load(waiting: int | None, busy: int, free: int, per_child: int = 10) -> Load:
    return Load(waiting=waiting, busy=busy, free=free, per_child=per_child)


@pytest.mark.parametrize(
    ("case", "now", "now_load", "size", "trend", "expected"),
    [
        # Pressure: entries wait, at least one per free slot.
        ("pressure starts the window", 100.0, load(5, 10, 0), 1, Trend(), (1, Trend(100.0))),
        ("the window is not over", 104.9, load(5, 10, 0), 1, Trend(100.0), (1, Trend(100.0))),
        ("grows by the shortfall", 105.0, load(25, 10, 0), 1, Trend(100.0), (4, Trend())),
        ("one child at least", 105.0, load(3, 10, 3), 2, Trend(100.0), (3, Trend())),
        ("never past MAX", 105.0, load(500, 40, 0), 3, Trend(100.0), (4, Trend())),
        ("at MAX, keeps its trend", 105.0, load(5, 40, 0), 4, Trend(100.0), (4, Trend(100.0))),
        ("free slots absorb it", 105.0, load(3, 5, 5), 1, Trend(100.0), (1, Trend())),
        ("a pause in pressure resets", 105.0, load(0, 10, 0), 1, Trend(100.0), (1, Trend())),
        ("starting children count", 105.0, load(8, 10, 10), 2, Trend(100.0), (2, Trend())),
        # Idle: nothing waits and the busy slots would fill at most half of one child fewer.
        ("idle starts the window", 200.0, load(0, 5, 15), 2, Trend(), (2, Trend(None, 200.0))),
        ("idle, not long enough", 229.0, load(0, 5, 15), 2, Trend(None, 200.0),
         (2, Trend(None, 200.0))),
        ("shrinks by one", 230.0, load(0, 5, 35), 4, Trend(None, 200.0), (3, Trend())),
        ("never below MIN", 230.0, load(0, 0, 10), 1, Trend(None, 200.0),
         (1, Trend(None, 200.0))),
        ("too busy to shrink", 230.0, load(0, 6, 14), 2, Trend(None, 200.0), (2, Trend())),
        # No evidence: nobody reports, or nobody knows the backlog (Redis down).
        ("nobody reports", 230.0, None, 3, Trend(None, 200.0), (3, Trend())),
        ("backlog unknown", 230.0, load(None, 0, 30), 3, Trend(None, 200.0), (3, Trend())),
        # Out of bounds (a first size outside them): into them at once.
        ("below MIN", 0.0, load(0, 0, 0), 0, Trend(), (1, Trend())),
        ("above MAX", 0.0, load(0, 0, 0), 9, Trend(), (4, Trend())),
    ],
)  # fmt: skip
def test_decide(
    case: str,
    now: float,
    now_load: Load | None,
    size: int,
    trend: Trend,
    expected: tuple[int, Trend],
) -> None:
    assert decide(now, now_load, size, POLICY, trend) == expected, case


def test_decide_does_not_flap_under_a_steady_load() -> None:
    """A load that made the pool grow does not make it shrink while it lasts, and an idle pool
    shrinks once per window, not at every tick."""
    size, trend, changes = 1, Trend(), []
    for tick in range(0, 900):  # 90 s of ticks, busy with a backlog for the first 20 s
        now = tick / 10
        busy = min(size * 10, 40) if now < 20 else 0
        waiting = 30 if now < 20 else 0
        new, trend = decide(now, load(waiting, busy, size * 10 - busy), size, POLICY, trend)
        if new != size:
            changes.append((round(now), new))
        size = new
    assert changes == [(5, 4), (50, 3), (80, 2)]  # grew once, then shrank once a window


@pytest.mark.parametrize(
    ("size", "delta", "bounds", "expected"),
    [
        (2, 1, None, 3),
        (2, -1, None, 1),
        (1, -1, None, 1),  # never below one
        (1, -3, None, 1),
        (3, 2, None, 5),  # two signals between ticks
        (4, 1, Bounds(1, 4), 4),  # within MIN,MAX with --autoscale
        (2, -1, Bounds(2, 4), 2),
        (2, 1, Bounds(2, 4), 3),
        (7, 0, Bounds(2, 4), 4),  # the first size, into the bounds
    ],
)
def test_resize(size: int, delta: int, bounds: Bounds | None, expected: int) -> None:
    assert resize(size, delta, bounds) == expected


@pytest.mark.parametrize(
    ("children", "expected"),
    [
        ([(10, 3, 0.0), (11, 1, 0.0), (12, 2, 0.0)], 11),  # least busy
        ([(10, 0, 1.0), (11, 0, 5.0), (12, 0, 3.0)], 11),  # the youngest of equals
        ([(10, 1, 1.0), (11, None, 9.0)], 11),  # not reporting yet: nothing to drain
        ([(10, 2, 1.0)], 10),
    ],
)
def test_pick_to_stop(children: list[tuple[int, int | None, float]], expected: int) -> None:
    assert pick_to_stop(children) == expected


@pytest.mark.parametrize(
    ("now", "beat_s", "spawned_s", "timeout_s", "expected"),
    [
        (100.0, 95.0, 0.0, 30.0, False),
        (100.0, 70.0, 0.0, 30.0, False),  # exactly the timeout: not yet
        (100.1, 70.0, 0.0, 30.0, True),
        (100.0, 97.0, 0.0, 2.0, True),
        (10.0, None, 0.0, 2.0, False),  # before the first beat: the start allowance
        (START_TIMEOUT_S + 0.1, None, 0.0, 2.0, True),
        (100.0, None, 0.0, 120.0, False),  # a timeout longer than the allowance wins
        (50.0, 1.0, 45.0, 10.0, False),  # a beat older than the child (a reused pid's file)
    ],
)
def test_silent_too_long(
    now: float, beat_s: float | None, spawned_s: float, timeout_s: float, expected: bool
) -> None:
    assert silent_too_long(now, beat_s, spawned_s, timeout_s) is expected


@pytest.mark.parametrize(
    ("done", "rss", "limits", "expected"),
    [
        (100, 900 * MB, Limits(), None),
        (4, None, Limits(max_tasks=5), None),
        (5, None, Limits(max_tasks=5), "max_tasks"),
        (6, 10 * MB, Limits(max_tasks=5, max_memory_mb=5), "max_tasks"),
        (1, 200 * MB, Limits(max_memory_mb=200), None),  # at the limit: not past it
        (1, 200 * MB + 1, Limits(max_memory_mb=200), "max_memory"),
        (1, None, Limits(max_memory_mb=200), None),  # not measurable here
    ],
)
def test_retire_reason(done: int, rss: int | None, limits: Limits, expected: str | None) -> None:
    assert retire_reason(done, rss, limits) == expected


@pytest.mark.parametrize(
    ("lived_s", "last_delay_s", "expected"),
    [(600.0, 16.0, 1.0), (0.5, 0.0, 1.0), (0.5, 1.0, 2.0), (3.0, 8.0, 16.0), (1.0, 16.0, 30.0),
     (1.0, 30.0, 30.0)],
)  # fmt: skip
def test_restart_delay_s(lived_s: float, last_delay_s: float, expected: float) -> None:
    assert restart_delay_s(lived_s, last_delay_s) == expected


@pytest.mark.parametrize(
    ("reports", "starting", "expected"),
    [
        ([], 2, None),
        ([Report(10, 4, 7), Report(10, 10, 9)], 0, Load(9, 14, 6, 10)),  # largest waiting
        ([Report(10, 4, None), Report(10, 1, 3)], 1, Load(3, 5, 25, 10)),  # starting: free
        ([Report(10, 4, None)], 0, Load(None, 4, 6, 10)),
        ([Report(10, 12, 0)], 0, Load(0, 12, 0, 10)),  # busy past slots (a retry in flight)
    ],
)
def test_load_of(reports: list[Report], starting: int, expected: Load | None) -> None:
    assert load_of(reports, starting, 10) == expected
