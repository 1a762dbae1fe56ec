"""A worker busy with one tenant's backlog still starts another tenant's new task at once: it
keeps headroom for small tenants (worker.slots) and watches the streams it emptied
(worker.watcher). Real worker, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import msgspec

from .conftest import new_task
from .test_concurrency_cap import completed, processing, sampled


async def sleeps(store: Any, tenant: Any, count: int, seconds: float) -> list[UUID]:
    """``examples.sleep`` tasks (no connection held while they sleep), for the promoter's relay
    to publish."""
    await store.upsert_queue(tenant.id, "default")
    body = msgspec.json.encode({"seconds": seconds})
    tasks = [new_task(tenant.id, type="examples.sleep", payload_json=body) for _ in range(count)]
    await store.insert_many(tasks)
    return [t.id for t in tasks]


async def test_a_backlog_leaves_a_slot_for_another_tenants_new_task(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    await store.upsert_queue(globex.id, "default")  # the worker serves both tenants
    backlog = await sleeps(store, acme, 30, 6.0)
    async with sampled(pool, acme) as samples:
        await start_worker(concurrency=10)

        async def acme_busy() -> bool:
            return await processing(pool, acme) >= 9

        await until(acme_busy, timeout_s=30)
        (new,) = await sleeps(store, globex, 1, 0.0)
        started = asyncio.get_running_loop().time()

        async def globex_done() -> bool:
            return await completed(pool, [new]) == 1

        await until(globex_done, timeout_s=30)
        took_s = asyncio.get_running_loop().time() - started
        acme_done = await completed(pool, backlog)
    # Not behind acme's 6 s tasks: nine slots were acme's, the tenth was kept free.
    assert took_s < 4, took_s
    assert acme_done == 0, acme_done
    assert max(samples) == 9, samples
    assert await pool.fetchval("SELECT attempts FROM tasks WHERE id = $1", new) == 1


async def test_a_worker_serving_one_tenant_uses_every_slot(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    acme = tenants["acme"]
    await sleeps(store, acme, 20, 3.0)
    await start_worker(concurrency=10)

    async def all_busy() -> bool:
        return await processing(pool, acme) == 10

    await until(all_busy, timeout_s=30)
