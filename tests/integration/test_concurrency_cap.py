"""A tenant's ``max_concurrency`` (DESIGN §9): tasks of the tenant processing at once across all
workers. Real workers, PostgreSQL and Redis; the cap is checked by sampling the tenant's
``processing`` rows while the tasks run, and every task must still run exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import pytest

from taskstream.store.queries import load
from taskstream.store.tenants import TenantStore

from .conftest import new_task

Q = load("tasks")


async def cap(pool: Any, tenant: Any, limit: int | None) -> None:
    await TenantStore(pool).update_tenant(tenant.name, {"max_concurrency": limit})


async def insert(store: Any, tenant: Any, count: int, sleep_s: float = 0.0) -> list[UUID]:
    """``count`` effect-recording tasks, left for the promoter's relay to publish."""
    await store.upsert_queue(tenant.id, "default")  # the API does this on submit
    tasks = [
        new_task(
            tenant.id,
            type="test.effect",
            payload_json=msgspec.json.encode({"value": i, "sleep_s": sleep_s}),
            max_attempts=5,
        )
        for i in range(count)
    ]
    await store.insert_many(tasks)
    return [t.id for t in tasks]


async def processing(pool: Any, tenant: Any) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM tasks WHERE tenant_id = $1 AND status = 'processing'", tenant.id
        )
    )


@contextlib.asynccontextmanager
async def sampled(pool: Any, tenant: Any) -> AsyncIterator[list[int]]:
    """The tenant's ``processing`` rows, sampled every few milliseconds while the block runs."""
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(await processing(pool, tenant))
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler


async def completed(pool: Any, ids: list[UUID]) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM tasks WHERE id = ANY($1::uuid[]) AND status = 'completed'", ids
        )
    )


async def assert_ran_once(pool: Any, ids: list[UUID]) -> None:
    """Completed, one attempt each (a deferral is no attempt), one effect each."""
    rows = await pool.fetch("SELECT status, attempts FROM tasks WHERE id = ANY($1::uuid[])", ids)
    assert [(r["status"], r["attempts"]) for r in rows] == [("completed", 1)] * len(ids)
    effects = await pool.fetch(
        "SELECT task_id, count(*) AS n FROM test_effects WHERE task_id = ANY($1::uuid[])"
        " GROUP BY task_id",
        ids,
    )
    assert len(effects) == len(ids) and {r["n"] for r in effects} == {1}
    logged = await pool.fetchval(
        "SELECT count(*) FROM task_attempts WHERE task_id = ANY($1::uuid[])", ids
    )
    assert logged == len(ids)


# -- workers -------------------------------------------------------------------------------------


async def test_cap_holds_and_every_task_runs_once(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    acme = tenants["acme"]
    await cap(pool, acme, 2)
    ids = await insert(store, acme, 20, sleep_s=0.2)
    async with sampled(pool, acme) as samples:
        await start_worker(concurrency=10)

        async def done() -> bool:
            return await completed(pool, ids) == len(ids)

        await until(done, timeout_s=60)
    assert max(samples) == 2, samples  # never above the cap, and the cap was used
    await assert_ran_once(pool, ids)


async def test_cap_holds_across_two_workers(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    acme = tenants["acme"]
    await cap(pool, acme, 3)
    ids = await insert(store, acme, 30, sleep_s=0.1)
    async with sampled(pool, acme) as samples:
        await asyncio.gather(start_worker(concurrency=10), start_worker(concurrency=10))

        async def done() -> bool:
            return await completed(pool, ids) == len(ids)

        await until(done, timeout_s=60)
    assert max(samples) <= 3, samples
    await assert_ran_once(pool, ids)


async def test_a_tenant_without_a_cap_is_not_slowed(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    """The capped tenant's backlog waits; the other tenant's tasks run meanwhile."""
    acme, globex = tenants["acme"], tenants["globex"]
    await cap(pool, acme, 1)
    slow = await insert(store, acme, 10, sleep_s=1.0)
    fast = await insert(store, globex, 10, sleep_s=0.2)
    async with sampled(pool, acme) as samples:
        await start_worker(concurrency=10)
        started = asyncio.get_running_loop().time()

        async def globex_done() -> bool:
            return await completed(pool, fast) == len(fast)

        await until(globex_done, timeout_s=60)
        took_s = asyncio.get_running_loop().time() - started
        acme_done = await completed(pool, slow)

        async def all_done() -> bool:
            return await completed(pool, slow) == len(slow)

        await until(all_done, timeout_s=60)
    assert took_s < 5, took_s  # 0.2 s each, ten slots: not held behind acme's ten seconds
    assert acme_done <= 4, acme_done  # acme, one at a time, was still waiting
    assert max(samples) == 1, samples
    await assert_ran_once(pool, slow + fast)


# -- the claim statements ------------------------------------------------------------------------


async def by_status(pool: Any, ids: list[UUID]) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM tasks WHERE id = ANY($1::uuid[]) GROUP BY status", ids
    )
    return {r["status"]: r["n"] for r in rows}


async def test_claims_over_the_cap_go_back_to_waiting(store, tenants, pool) -> None:
    """Concurrent claims of one capped tenant's tasks: the cap is shared, and what is left out
    is scheduled again shortly, unpublished, its attempt not counted; an uncapped tenant's
    tasks in the same batches are all claimed."""
    acme, globex = tenants["acme"], tenants["globex"]
    await cap(pool, acme, 3)
    capped = await insert(store, acme, 20)
    free = await insert(store, globex, 20)
    batches = [capped[i : i + 4] + free[i : i + 4] for i in range(0, 20, 4)]
    before = datetime.now(UTC)
    got = await asyncio.gather(*(store.claim(b, f"w{i}", 30.0) for i, b in enumerate(batches)))
    claimed = [t for batch in got for t in batch]
    assert sum(t.tenant_id == acme.id for t in claimed) == 3
    assert sum(t.tenant_id == globex.id for t in claimed) == 20
    assert await by_status(pool, capped) == {"processing": 3, "scheduled": 17}
    waiting = await pool.fetch(
        "SELECT run_at, published_at, attempts, lease_epoch FROM tasks"
        " WHERE id = ANY($1::uuid[]) AND status = 'scheduled'",
        capped,
    )
    delays = [(r["run_at"] - before).total_seconds() for r in waiting]
    assert all(0.4 < d < 2.0 for d in delays), delays
    assert len({round(d, 3) for d in delays}) > 1  # jitter: they do not all come back at once
    assert {(r["published_at"], r["attempts"], r["lease_epoch"]) for r in waiting} == {(None, 0, 0)}
    # Full: a later claim of the tenant's tasks takes none.
    await pool.execute("UPDATE tasks SET status = 'pending' WHERE status = 'scheduled'")
    assert await store.claim(capped, "w", 30.0) == []
    # A lease that ran out no longer holds a slot: one more task may start.
    await pool.execute(
        "UPDATE tasks SET lease_expires_at = now() - interval '1 s' WHERE id = $1",
        next(t.id for t in claimed if t.tenant_id == acme.id),
    )
    await pool.execute("UPDATE tasks SET status = 'pending' WHERE status = 'scheduled'")
    assert len(await store.claim(capped, "w", 30.0)) == 1


async def test_lifting_the_cap_lets_everything_be_claimed(store, tenants, pool) -> None:
    acme = tenants["acme"]
    await cap(pool, acme, 1)
    ids = await insert(store, acme, 5)
    assert len(await store.claim(ids, "w", 30.0)) == 1
    await cap(pool, acme, None)
    await pool.execute("UPDATE tasks SET status = 'pending' WHERE status = 'scheduled'")
    assert len(await store.claim(ids, "w", 30.0)) == 4


async def test_claim_from_table_respects_the_cap(store, tenants, pool) -> None:
    """Degraded mode (Redis down): concurrent claims straight from the table never take more
    than the room per tenant, and leave the rest pending."""
    acme, globex = tenants["acme"], tenants["globex"]
    await cap(pool, acme, 2)
    capped = await insert(store, acme, 20)  # older: first in line
    free = await insert(store, globex, 10)
    got = await asyncio.gather(*(store.claim_from_table(None, 4, f"w{i}", 30.0) for i in range(8)))
    claimed = [t for batch in got for t in batch]
    assert sum(t.tenant_id == acme.id for t in claimed) == 2
    assert sum(t.tenant_id == globex.id for t in claimed) == 10
    assert await by_status(pool, capped) == {"processing": 2, "pending": 18}
    assert await by_status(pool, free) == {"processing": 10}
    assert await store.claim_from_table(None, 10, "w", 30.0) == []


# -- plans ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["claim_tasks", "claim_capped"])
async def test_capped_claims_are_driven_by_the_primary_key(name, pool, store, tenants) -> None:
    """As tests/integration/test_plans.py, for the statements of the capped path."""
    tenant = tenants["acme"]
    await store.insert_many([new_task(tenant.id) for _ in range(2000)])
    await pool.execute("UPDATE tasks SET status = 'completed', published_at = now()")
    await pool.execute("ANALYZE tasks")
    types = {"claim_tasks": "uuid[], text, float8", "claim_capped": "uuid[], text, float8, float8"}
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE probe ({types[name]}) AS {Q[name]}")
        nulls = ", ".join("NULL" for _ in types[name].split(","))
        text = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE probe ({nulls})"))
    assert "tasks_pkey" in text, text
    for partial in ("tasks_lease_idx", "tasks_unpublished_idx", "tasks_pending_idx"):
        assert partial not in text, text
