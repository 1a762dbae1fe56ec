"""Statements that name tasks by id must be driven by the primary key, whatever the statistics
say: a partial index on the status they check made each batch scan every task in that status
once per id (quadratic in the tasks in flight). Checked on the generic plan, which is what a
prepared statement ends up with."""

from __future__ import annotations

from typing import Any

import pytest

from taskstream.store.queries import load
from taskstream.store.tasks import list_statement

from .conftest import new_task

Q = load("tasks")
BY_ID = {
    "finish_tasks": (
        "uuid[]", "int8[]", "text[]", "text[]", "text[]", "timestamptz[]", "text[]", "float8[]",
        "text", "text[]",
    ),
    "heartbeat_tasks": ("uuid[]", "int8[]", "float8"),
    "release_tasks": ("uuid[]", "int8[]"),
    "fail_lost": ("uuid[]",),
    "mark_published": ("uuid[]", "timestamptz"),
    "unpublish": ("uuid[]",),
    "claim_tasks": ("uuid[]", "text", "float8"),
}  # fmt: skip


async def plan(conn: Any, name: str) -> str:
    types = ", ".join(BY_ID[name])
    await conn.execute(f"PREPARE probe ({types}) AS {Q[name]}")
    try:
        args = ", ".join("NULL" for _ in BY_ID[name])
        rows = await conn.fetch(f"EXPLAIN EXECUTE probe ({args})")
    finally:
        await conn.execute("DEALLOCATE probe")
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize("name", sorted(BY_ID))
async def test_statements_by_id_use_the_primary_key(name, pool, store, tenants) -> None:
    tenant = tenants["acme"]
    tasks = [new_task(tenant.id) for _ in range(2000)]
    await store.insert_many(tasks)
    # Statistics that call 'processing' and unpublished 'pending' rare, as after a quiet spell.
    await pool.execute("UPDATE tasks SET status = 'completed', published_at = now()")
    await pool.execute("ANALYZE tasks")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        text = await plan(conn, name)
    assert "tasks_pkey" in text, text
    for partial in ("tasks_lease_idx", "tasks_unpublished_idx", "tasks_pending_idx"):
        assert partial not in text, text


async def test_type_filter_over_a_long_history_uses_the_finished_index(
    pool, store, tenants
) -> None:
    """Newest tasks of a rare type behind many newer tasks of another type: read through the
    partial index of finished tasks, not by walking the tenant's rows newest first."""
    tenant = tenants["acme"]

    await store.insert_many([new_task(tenant.id, type="rare.kind") for _ in range(50)])
    await store.insert_many([new_task(tenant.id, type="common.kind") for _ in range(5000)])  # newer
    await pool.execute("UPDATE tasks SET status = 'completed'")
    await pool.execute("ANALYZE tasks")
    for status in (None, "completed"):
        sql, args = list_statement(status=status, type="rare.kind", queue=None, before=None)
        async with pool.acquire() as conn:
            plan_rows = await conn.fetch(f"EXPLAIN {sql}", tenant.id, 50, *args)
            rows = await conn.fetch(sql, tenant.id, 50, *args)
        text = "\n".join(r[0] for r in plan_rows)
        assert "tasks_done_type_idx" in text, text
        assert "tasks_tenant_id_idx" not in text, text  # no walk through the whole history
        assert len(rows) == 50 and {r["type"] for r in rows} == {"rare.kind"}
