"""The worker's and the scheduler's lifecycles: structured concurrency (one failing loop stops
its siblings, running attempts are cancelled and handed back before the pool closes) and a
worker that starts while Redis is down."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from taskstream.core.config import Settings
from taskstream.services import scheduler_service
from taskstream.worker import leases
from taskstream.worker.runner import Worker

from .conftest import REGISTRY, new_task

CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in leaves(e)]
    return [exc]


async def test_worker_starts_with_redis_down_and_claims_from_postgresql(
    start_worker, store, tenants, pool, until
) -> None:
    worker = await start_worker(redis_url=CLOSED_REDIS)
    assert worker.degraded
    ids = [t.id for t in [new_task(tenants["acme"].id) for _ in range(20)]]
    await store.insert_many([new_task(tenants["acme"].id, id=i) for i in ids])

    async def done() -> bool:
        n = await pool.fetchval(
            "SELECT count(*) FROM tasks WHERE id = ANY($1::uuid[]) AND status = 'completed'", ids
        )
        return bool(n == len(ids))

    await until(done)


async def test_a_failing_loop_stops_its_siblings_before_the_pool_closes(
    settings: Settings, store, tenants, pool, until, monkeypatch: Any
) -> None:
    monkeypatch.setattr(leases, "MAX_LOOP_FAILURES", 2)
    s = msgspec.structs.replace(settings, redis_url=CLOSED_REDIS, visibility_timeout_s=0.9)
    worker = Worker(s, REGISTRY, concurrency=2)
    before = asyncio.all_tasks()
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(worker.ready.wait(), 10)
    [row] = await store.insert_many(
        [new_task(tenants["acme"].id, type="examples.sleep", payload_json=b'{"seconds": 30}')]
    )

    async def started() -> bool:
        return bool(worker.inflight)

    await until(started)
    handle = worker.inflight[row.task.id].handle
    # A real refusal on every beat: the heartbeat loop is broken, not unlucky.
    await pool.execute("DROP TABLE workers")
    with pytest.raises(ExceptionGroup) as caught:
        await asyncio.wait_for(running, 10)
    assert any("workers" in str(e) for e in leaves(caught.value)), caught.value
    assert not stop.is_set()  # nobody asked it to stop: the failure did
    assert handle is not None and handle.cancelled()  # the attempt did not outlive the worker
    assert worker._pool.is_closing()
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()  # nothing left
    status = await pool.fetchval("SELECT status FROM tasks WHERE id = $1", row.task.id)
    assert status == "pending"  # handed back, not left to its lease


async def test_scheduler_loop_failure_stops_the_others(settings: Settings, pool) -> None:
    await pool.execute("DROP TABLE leader_leases")
    before = asyncio.all_tasks()
    stop = asyncio.Event()
    with pytest.raises(ExceptionGroup) as caught:
        await asyncio.wait_for(scheduler_service(settings)(stop), 10)
    assert any("leader_leases" in str(e) for e in leaves(caught.value)), caught.value
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()
