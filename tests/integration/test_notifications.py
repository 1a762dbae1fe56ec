"""LISTEN comes back after its connection dies (what a PostgreSQL restart looks like to the
client: the backend is terminated), and says so once with a callback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskstream.store.notifications import Listener, listen

pytestmark = pytest.mark.cluster_too  # also on a 3-master Redis Cluster

CHANNEL = "taskstream_test_channel"


async def listener_pid(pool: Any) -> int:
    pid = await pool.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE query = $1 AND datname = current_database()",
        f'LISTEN "{CHANNEL}"',
    )
    assert pid is not None
    return int(pid)


async def test_listener_resumes_after_its_backend_is_terminated(pool, until) -> None:
    calls: list[int] = []
    listener = Listener(pool, CHANNEL, lambda: calls.append(1), check_s=5.0)
    await listener.open()
    keeper = asyncio.create_task(listener.run())
    try:
        await pool.execute(f"NOTIFY {CHANNEL}")

        async def heard(n: int) -> bool:
            return len(calls) >= n

        await until(lambda: heard(1))
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", await listener_pid(pool))

        async def back() -> bool:  # sooner than check_s: the termination callback woke it
            return listener.reconnects == 1 and listener.listening

        await until(back, timeout_s=3)
        assert len(calls) == 2  # the call after reconnecting: something may have changed
        await pool.execute(f"NOTIFY {CHANNEL}")
        await until(lambda: heard(3))
    finally:
        keeper.cancel()
        await asyncio.wait([keeper])
        await listener.close()


async def test_listen_function_resumes_and_closes(pool, until) -> None:
    calls: list[int] = []
    close = await listen(pool, CHANNEL, lambda: calls.append(1))
    try:
        await pool.execute("SELECT pg_terminate_backend($1)", await listener_pid(pool))

        async def reconnected() -> bool:
            return len(calls) >= 1

        await until(reconnected, timeout_s=5)
        await pool.execute(f"NOTIFY {CHANNEL}")

        async def heard() -> bool:
            return len(calls) >= 2

        await until(heard)
    finally:
        await close()
    before = len(calls)
    await pool.execute(f"NOTIFY {CHANNEL}")
    await asyncio.sleep(0.2)
    assert len(calls) == before  # closed: no longer listening
