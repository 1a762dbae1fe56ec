"""Outcomes PostgreSQL refuses must not wedge a worker: the bad task ends in a terminal state
with a readable error, and the tasks after it complete. Real worker, PostgreSQL and Redis; the
refusals are real too (values PostgreSQL cannot store, or a trigger in the test's database)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import faultapp  # noqa: F401 - registers the fault.* handlers

from .conftest import new_task

REFUSE_TRIGGER = """
CREATE FUNCTION refuse_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'processing' AND NEW.status <> 'processing'
       AND (NEW.payload ? 'refuse_all' OR (NEW.payload ? 'refuse' AND NEW.result IS NOT NULL))
    THEN
        RAISE EXCEPTION 'refused by the test trigger';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_outcome BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION refuse_outcome();
"""


async def insert(store: Any, tenant: Any, kind: str, payload: bytes = b"{}", **kw: Any) -> UUID:
    await store.upsert_queue(tenant.id, "default")  # the API does this on submit
    [row] = await store.insert_many([new_task(tenant.id, type=kind, payload_json=payload, **kw)])
    return UUID(str(row.task.id))


async def row_of(pool: Any, task_id: UUID) -> Any:
    return await pool.fetchrow(
        "SELECT status, last_error, result::text, lease_expires_at FROM tasks WHERE id = $1",
        task_id,
    )


async def all_finished(pool: Any, ids: list[UUID], status: str = "completed") -> bool:
    n = await pool.fetchval(
        "SELECT count(*) FROM tasks WHERE id = ANY($1::uuid[]) AND status = $2", ids, status
    )
    return bool(n == len(ids))


async def test_unstorable_result_fails_the_attempt_and_later_tasks_complete(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    acme = tenants["acme"]
    await start_worker(concurrency=2)
    bad = await insert(store, acme, "fault.nul_result")
    later = [await insert(store, acme, "examples.noop") for _ in range(10)]

    async def settled() -> bool:
        return (await row_of(pool, bad))["status"] == "failed" and await all_finished(pool, later)

    await until(settled)
    row = await row_of(pool, bad)
    assert row["last_error"] == "result not storable: contains NUL"
    assert row["result"] is None


async def test_unstorable_error_texts_are_recorded_readably(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    acme = tenants["acme"]
    await start_worker(concurrency=2)
    raised = await insert(store, acme, "fault.nul_error")
    failed = await insert(store, acme, "fault.nul_fail")
    later = [await insert(store, acme, "examples.noop") for _ in range(10)]

    async def settled() -> bool:
        return await all_finished(pool, [raised, failed], "failed") and await all_finished(
            pool, later
        )

    await until(settled)
    raised_error = (await row_of(pool, raised))["last_error"]
    assert raised_error.startswith("ValueError: broken\\0bytes \\udc80 here"), raised_error
    failed_error = (await row_of(pool, failed))["last_error"]
    assert failed_error.startswith("reason with\\0a NULxxx"), failed_error
    assert len(failed_error) <= 2000


async def test_row_refused_by_postgresql_fails_alone(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    """The batch fails on one row: after a few tries the rows are written one by one; the
    refused row is failed with the reason, its batch mates complete."""
    await pool.execute(REFUSE_TRIGGER)
    acme = tenants["acme"]
    bad = await insert(store, acme, "fault.echo", b'{"refuse": true}')
    mates = [await insert(store, acme, "fault.echo", b'{"n": 1}') for _ in range(20)]
    await start_worker(concurrency=10)
    later = [await insert(store, acme, "examples.noop") for _ in range(10)]

    async def settled() -> bool:
        return (await row_of(pool, bad))["status"] == "failed" and await all_finished(
            pool, mates + later
        )

    await until(settled)
    error = (await row_of(pool, bad))["last_error"]
    assert error.startswith("outcome not storable: "), error
    assert "refused by the test trigger" in error


async def test_row_refused_even_as_a_failure_is_dropped_and_its_lease_left_to_run_out(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    await pool.execute(REFUSE_TRIGGER)
    acme = tenants["acme"]
    worker = await start_worker(concurrency=1, visibility_timeout_s=1.5)
    bad = await insert(store, acme, "fault.echo", b'{"refuse_all": true}', max_attempts=1)
    later = [await insert(store, acme, "examples.noop") for _ in range(5)]

    async def later_done() -> bool:
        return await all_finished(pool, later)

    await until(later_done)  # one slot: it came back although the bad row was never written
    assert bad not in worker.inflight
    lease = (await row_of(pool, bad))["lease_expires_at"]
    await asyncio.sleep(1.0)  # two heartbeat periods (a third of the 1.5 s lease)
    row = await row_of(pool, bad)
    assert row["status"] == "processing" and row["lease_expires_at"] == lease  # not renewed


async def test_sql_error_swallowed_in_the_handlers_transaction(
    store, tenants, start_worker, promoter, pool, until
) -> None:
    acme = tenants["acme"]
    await start_worker(concurrency=2)
    bad = await insert(store, acme, "fault.swallow_sql_error")
    later = [await insert(store, acme, "examples.noop") for _ in range(5)]

    async def settled() -> bool:
        return (await row_of(pool, bad))["status"] == "failed" and await all_finished(pool, later)

    await until(settled)
    error = (await row_of(pool, bad))["last_error"]
    assert error.startswith("outcome not storable: "), error
