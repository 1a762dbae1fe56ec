"""The supervisor's tick (pool/arbiter.py) with a clock of its own and `sleep` processes as
children: it starts them, replaces a retiring one at once, kills a silent one, restarts a
crashed one only after its backoff, and shrinks by SIGTERM to the least busy."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskstream.pool.arbiter import Arbiter, Child, PoolOptions
from taskstream.pool.policy import RESTART_BACKOFF_S
from taskstream.pool.status import ChildStatus, write

SLEEP = shutil.which("sleep")
pytestmark = pytest.mark.skipif(SLEEP is None, reason="no sleep(1) here")


@pytest.fixture
def arbiter(tmp_path: Path) -> Iterator[Arbiter]:
    pool = Arbiter(
        [str(SLEEP), "60"], dict(os.environ), 2, PoolOptions(slots_per_child=4,
        child_timeout_s=5.0), folder=tmp_path,
    )  # fmt: skip
    try:
        yield pool
    finally:
        for child in pool.children:
            child.proc.kill()
            child.proc.wait()


def beat(pool: Arbiter, child: Child, at_s: float, busy: int = 0, retiring: str | None = None
         ) -> None:  # fmt: skip
    assert pool.folder is not None
    write(pool.folder, ChildStatus(
        pid=child.pid, beat_s=at_s, slots=4, busy=busy, done=0, rss_bytes=None, waiting=0,
        retiring=retiring,
    ))  # fmt: skip


def alive(pool: Arbiter) -> list[Child]:
    return [c for c in pool.children if c.proc.poll() is None]


def settle(child: Child) -> None:
    child.proc.wait(timeout=5)


def test_it_starts_the_pool_and_replaces_a_retiring_child_at_once(arbiter: Arbiter) -> None:
    arbiter.tick(0.0)
    first, second = arbiter.children
    beat(arbiter, first, 0.5)
    beat(arbiter, second, 0.5, retiring="max_tasks")
    arbiter.tick(1.0)
    assert second.leaving == "max_tasks"  # it drains by itself: not signalled
    assert len(alive(arbiter)) == 3 and second.proc.poll() is None
    second.proc.terminate()  # ... and exits
    settle(second)
    arbiter.tick(1.2)
    assert second not in arbiter.children and len(arbiter.children) == 2
    assert arbiter.folder is not None and not (arbiter.folder / f"{second.pid}.json").exists()


def test_a_silent_child_is_killed_and_replaced(arbiter: Arbiter) -> None:
    arbiter.tick(0.0)
    first, second = arbiter.children
    beat(arbiter, first, 10.0)
    beat(arbiter, second, 1.0)
    arbiter.tick(6.0)  # five seconds since second's beat: not past the timeout yet
    assert second.leaving is None
    arbiter.tick(6.1)
    assert second.leaving == "hung"
    settle(second)
    assert second.proc.returncode == -signal.SIGKILL
    assert len(alive(arbiter)) == 2  # its replacement, at once
    arbiter.tick(6.2)
    assert len(arbiter.children) == 2 and first in arbiter.children


def test_a_crashed_child_is_restarted_after_the_backoff(arbiter: Arbiter) -> None:
    arbiter.tick(0.0)
    first, second = arbiter.children
    first.proc.kill()
    settle(first)
    arbiter.tick(20.0)  # reaped: it lived long enough for the short backoff
    assert arbiter.children == [second]
    arbiter.tick(20.0 + RESTART_BACKOFF_S / 2)
    assert arbiter.children == [second]
    arbiter.tick(20.0 + RESTART_BACKOFF_S)
    assert len(arbiter.children) == 2


def test_a_signal_shrinks_the_pool_by_stopping_the_least_busy(arbiter: Arbiter) -> None:
    arbiter.tick(0.0)
    first, second = arbiter.children
    beat(arbiter, first, 0.5, busy=1)
    beat(arbiter, second, 0.5, busy=3)
    arbiter._on_resize(signal.SIGTTOU, None)
    arbiter.tick(1.0)
    assert arbiter.size == 1 and first.leaving == "shrink" and second.leaving is None
    settle(first)
    assert first.proc.returncode == -signal.SIGTERM
    arbiter._on_resize(signal.SIGTTOU, None)  # never below one
    arbiter.tick(1.2)
    assert arbiter.size == 1 and arbiter.children == [second]
    arbiter._on_resize(signal.SIGTTIN, None)
    arbiter.tick(1.4)
    assert arbiter.size == 2 and len(alive(arbiter)) == 2
