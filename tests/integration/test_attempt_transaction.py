"""The handler's own transaction (store/transactions.py): its connection always goes back to the
pool, even when a cancellation lands while it commits; and a task written in it is stamped with
the time it finished, not the time its transaction began."""

from __future__ import annotations

import asyncio
from typing import Any

from taskstream.core.config import Settings
from taskstream.store.database import create_pool
from taskstream.store.transactions import AttemptTransaction


async def test_a_cancel_during_settle_still_gives_the_connection_back(settings: Settings) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        for delay_s in (0.0, 0.0001, 0.0003, 0.0005, 0.001, 0.002, 0.005):
            tx = AttemptTransaction(pool)
            conn = await tx.connection()
            await conn.execute("SELECT pg_sleep(0.002)")
            settling = asyncio.create_task(tx.settle(commit=True))
            await asyncio.sleep(delay_s)
            settling.cancel()
            await asyncio.gather(settling, return_exceptions=True)
            await asyncio.sleep(0.05)  # the shielded give-back finishes on its own
            assert pool.get_idle_size() == pool.get_size(), f"leaked after {delay_s} s"
    finally:
        await asyncio.wait_for(pool.close(), 10)  # hung for ever when a connection leaked


async def test_finished_at_is_when_the_task_finished(
    api: Any, tenants: Any, start_worker: Any, pool: Any, until: Any
) -> None:
    await start_worker()
    r = await api.post(
        "/v1/tasks",
        json={"type": "test.effect", "payload": {"value": 1, "sleep_s": 0.4}},
        headers=tenants["acme"].auth(),
    )
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]

    async def done() -> bool:
        status = await pool.fetchval("SELECT status FROM tasks WHERE id = $1::uuid", task_id)
        return bool(status == "completed")

    await until(done)
    took = await pool.fetchval(
        "SELECT extract(epoch FROM finished_at - started_at) FROM tasks WHERE id = $1::uuid",
        task_id,
    )
    assert float(took) >= 0.35  # the handler slept 0.4 s inside its transaction
