"""Row-Level Security (migration 0010): API sessions see only the tenants they are scoped to,
whatever a statement says; workers' sessions (the owning role) see every tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from taskstream.core.config import Settings
from taskstream.core.errors import NotFound
from taskstream.store.database import acquire, create_pool
from taskstream.store.queries import load
from taskstream.store.schedules import ScheduleRow, ScheduleStore
from taskstream.store.tasks import TaskStore

from .conftest import Tenant, new_task

TASKS = load("tasks")


@pytest.fixture
async def scoped(settings: Settings, pool: Any) -> AsyncIterator[Any]:
    """An API pool with one connection, so every test below reuses one session across scopes."""
    p = await create_pool(settings.database_url, min_size=1, max_size=1, tenant_scoped=True)
    yield p
    await p.close()


async def _fill(store: TaskStore, tenants: dict[str, Tenant]) -> dict[str, list[Any]]:
    ids: dict[str, list[Any]] = {}
    for name, count in (("acme", 3), ("globex", 5)):
        news = [new_task(tenants[name].id) for _ in range(count)]
        await store.insert_many(news)
        await store.upsert_queue(tenants[name].id, f"q-{name}")
        ids[name] = [t.id for t in news]
    return ids


async def test_unfiltered_statements_see_only_the_scoped_tenant(
    store: TaskStore, scoped: Any, tenants: dict[str, Tenant]
) -> None:
    ids = await _fill(store, tenants)
    acme, globex = tenants["acme"].id, tenants["globex"].id
    for tenant, name in ((acme, "acme"), (globex, "globex"), (acme, "acme")):
        async with acquire(scoped, tenant) as conn:
            seen = await conn.fetch("SELECT id, tenant_id FROM tasks")
            assert sorted(r["id"] for r in seen) == sorted(ids[name])
            for table in ("api_keys", "queues"):
                owners = await conn.fetch(f"SELECT DISTINCT tenant_id FROM {table}")
                assert [r["tenant_id"] for r in owners] == [tenant]
            assert await conn.fetchval("SELECT count(*) FROM tenants") == 1


async def test_an_api_statement_without_its_tenant_filter_still_sees_one_tenant(
    store: TaskStore, pool: Any, scoped: Any, tenants: dict[str, Tenant]
) -> None:
    ids = await _fill(store, tenants)
    statement = TASKS["get_task"]
    unfiltered = statement.replace("tenant_id = $1 AND id = $2", "id = $1")
    assert unfiltered != statement
    globex_task = ids["globex"][0]
    # The owning role (workers) sees the row; the API's session scoped to acme does not.
    async with acquire(pool) as conn:
        assert await conn.fetchrow(unfiltered, globex_task) is not None
    async with acquire(scoped, tenants["acme"].id) as conn:
        assert await conn.fetchrow(unfiltered, globex_task) is None
        assert await conn.fetchrow(unfiltered, ids["acme"][0]) is not None
    with pytest.raises(NotFound):
        await TaskStore(scoped).get(tenants["acme"].id, globex_task)


async def test_no_scope_sees_nothing_and_writes_nothing(
    store: TaskStore, scoped: Any, tenants: dict[str, Tenant]
) -> None:
    ids = await _fill(store, tenants)
    async with acquire(scoped, tenants["acme"].id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 3
    async with acquire(scoped) as conn:  # the same session, now scoped to no tenant
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 0
        done = await conn.execute("UPDATE tasks SET status = 'cancelled'")
        assert done == "UPDATE 0"
    async with acquire(scoped, tenants["acme"].id) as conn:
        changed = await conn.execute(
            "UPDATE tasks SET status = 'cancelled' WHERE id = ANY($1::uuid[])", ids["globex"]
        )
        assert changed == "UPDATE 0"


async def test_writes_for_another_tenant_are_refused(
    scoped: Any, tenants: dict[str, Tenant]
) -> None:
    intruder = new_task(tenants["globex"].id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with acquire(scoped, tenants["acme"].id) as conn:
            await TaskStore(scoped).insert_many([intruder], conn=conn)
    # A group commit names every tenant of its rows, so a mixed group is written.
    mixed = [new_task(tenants["acme"].id), new_task(tenants["globex"].id)]
    inserted = await TaskStore(scoped).insert_many(mixed)
    assert [i.created for i in inserted] == [True, True]


async def test_schedules_are_scoped(scoped: Any, tenants: dict[str, Tenant]) -> None:
    now = datetime.now(UTC)
    store = ScheduleStore(scoped)
    row = ScheduleRow(
        id=new_task(tenants["acme"].id).id, tenant_id=tenants["acme"].id, name="nightly",
        cron="0 2 * * *", timezone="UTC", task='{"type": "examples.noop"}', misfire="skip",
        misfire_grace_s=60.0, max_catch_up=1, paused=False, next_run_at=now, last_run_at=None,
        last_lag_ms=None, created_at=now, updated_at=now,
    )  # fmt: skip
    await store.create(row)
    async with acquire(scoped, tenants["globex"].id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM schedules") == 0
    assert [s.name for s in await store.list_all(tenants["acme"].id)] == ["nightly"]
    with pytest.raises(NotFound):
        await store.get(tenants["globex"].id, row.id)


async def test_every_tenant_table_has_a_policy(pool: Any) -> None:
    """A table that carries tenant_id and no policy would be open to every API session."""
    async with acquire(pool) as conn:
        open_tables = await conn.fetch(
            """SELECT c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
               WHERE c.relkind IN ('r', 'p') AND NOT (c.relrowsecurity AND EXISTS (
                   SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))"""
        )
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid"
        )
    assert [r["relname"] for r in open_tables] == []
    assert tables >= 7  # tenants, api_keys, queues, tasks, attempts, replays, schedules


async def test_api_statements_keep_their_index_plans(
    store: TaskStore, scoped: Any, tenants: dict[str, Tenant]
) -> None:
    """The policy's uuid comparisons are leakproof, so the query's own filters still drive the
    index under RLS (a non-leakproof qual would be evaluated after the policy, on every row)."""
    ids = await _fill(store, tenants)
    acme = tenants["acme"].id
    async with acquire(scoped, acme) as conn:
        await conn.execute("SET enable_seqscan = off")
        try:
            plan = await conn.fetchval(
                "EXPLAIN (FORMAT TEXT) " + TASKS["get_task"], acme, ids["acme"][0]
            )
            assert "tasks_pkey" in plan
            listed = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN " + TASKS["list_tasks"].replace("{filters}", ""), acme, 50
                )
            )
            assert "tasks_tenant_id_idx" in listed
        finally:
            await conn.execute("RESET enable_seqscan")
