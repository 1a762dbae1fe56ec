"""The sync handlers' threads: results and errors reach the caller, and a stuck thread is a
daemon that nothing joins at exit."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from taskstream.worker.threads import DaemonThreads


async def test_results_and_errors_reach_the_awaiting_side() -> None:
    pool = DaemonThreads(2)
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(pool, sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        await loop.run_in_executor(pool, divmod, 1, 0)
    pool.shutdown()


def test_a_stuck_thread_is_a_daemon_and_shutdown_does_not_wait_for_it() -> None:
    release = threading.Event()
    pool = DaemonThreads(1)
    stuck = pool.submit(release.wait)
    while not stuck.running():
        time.sleep(0.001)
    queued = pool.submit(time.sleep, 0)
    started = time.monotonic()
    pool.shutdown(wait=False, cancel_futures=True)
    assert time.monotonic() - started < 0.5
    assert queued.cancelled() and not stuck.done()
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("taskstream-sync"))
    with pytest.raises(RuntimeError):
        pool.submit(time.sleep, 0)
    release.set()
    assert stuck.result(timeout=5) is True
