"""Retention (issue 13): the scheduler's leader deletes finished tasks older than their tenant's
retention, with their attempts and replays, in batches; unfinished tasks stay, however old.
Real PostgreSQL; rows are written with old ids and times as if they had lived that long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import pytest

from taskstream.core.config import Settings
from taskstream.core.errors import Unprocessable
from taskstream.core.ids import uuid7
from taskstream.scheduler.pruner import Pruner
from taskstream.store.retention import RetentionStore, first_id_at
from taskstream.store.tenants import TenantLimits, TenantStore

from .conftest import new_task

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Leading:
    is_leader = True


class NotLeading:
    is_leader = False


async def aged(
    store: Any, pool: Any, tenant: Any, status: str, created_days: float, finished: float | None
) -> UUID:
    """A task created ``created_days`` ago (its id says so too), in ``status``, finished
    ``finished`` days ago, with an attempt logged and, if failed, a replay recorded."""
    created = NOW - timedelta(days=created_days)
    task = new_task(tenant.id, id=uuid7(int(created.timestamp() * 1000)))
    await store.insert_many([task])
    finished_at = None if finished is None else NOW - timedelta(days=finished)
    await pool.execute(
        "UPDATE tasks SET status = $2, created_at = $3, finished_at = $4 WHERE id = $1",
        task.id, status, created, finished_at,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO task_attempts (task_id, attempt, tenant_id, outcome)"
        " VALUES ($1, 0, $2, 'fail')",
        task.id, tenant.id,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO task_replays (task_id, tenant_id, replayed_by) VALUES ($1, $2, 'ts_test')",
        task.id, tenant.id,
    )  # fmt: skip
    return task.id


async def left(pool: Any, ids: list[UUID]) -> dict[str, set[UUID]]:
    async def found(table: str, column: str) -> set[UUID]:
        rows = await pool.fetch(f"SELECT {column} FROM {table} WHERE {column} = ANY($1)", ids)
        return {r[column] for r in rows}

    return {
        "tasks": await found("tasks", "id"),
        "attempts": await found("task_attempts", "task_id"),
        "replays": await found("task_replays", "task_id"),
    }


def pruner(pool: Any, *, leading: bool = True, batch: int = 1000, days: int = 30) -> Pruner:
    settings = msgspec.structs.replace(Settings(), retention_days=days)
    leader: Any = Leading() if leading else NotLeading()
    return Pruner(settings, RetentionStore(pool), leader, batch=batch, now=lambda: NOW)


async def test_old_finished_tasks_go_with_their_attempts_and_replays(store, pool, tenants) -> None:
    acme = tenants["acme"]
    old = [await aged(store, pool, acme, s, 40, 35) for s in ("completed", "failed", "cancelled")]
    recent = [await aged(store, pool, acme, "completed", 40, 10)]  # created long ago, finished late
    unfinished = [
        await aged(store, pool, acme, "pending", 400, None),
        await aged(store, pool, acme, "scheduled", 400, None),
        await aged(store, pool, acme, "processing", 400, None),
    ]
    assert await pruner(pool).run_once() == 3
    kept = recent + unfinished
    assert await left(pool, old + kept) == {"tasks": set(kept), "attempts": set(kept),
                                            "replays": set(kept)}  # fmt: skip


async def test_each_tenant_has_its_own_retention(store, pool, tenants) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    await TenantStore(pool).update_tenant("globex", {"retention_days": 1})
    two_days = [await aged(store, pool, t, "completed", 2, 2) for t in (acme, globex)]
    an_hour = await aged(store, pool, globex, "completed", 1 / 24, 1 / 24)
    assert await pruner(pool).run_once() == 1
    assert (await left(pool, [*two_days, an_hour]))["tasks"] == {two_days[0], an_hour}
    info = {t.name: t for t in await TenantStore(pool).list_tenants()}
    assert info["globex"].limits.retention_days == 1
    assert info["acme"].limits.retention_days is None  # the deployment's default


async def test_the_default_retention_is_the_deployments(store, pool, tenants) -> None:
    ids = [await aged(store, pool, tenants["acme"], "completed", 8, 8)]
    assert await pruner(pool, days=30).run_once() == 0
    assert await pruner(pool, days=7).run_once() == 1
    assert (await left(pool, ids))["tasks"] == set()


async def test_a_purge_goes_in_batches(store, pool, tenants) -> None:
    ids = [await aged(store, pool, tenants["acme"], "completed", 50, 45) for _ in range(7)]
    assert await pruner(pool, batch=2).run_once() == 7
    assert await left(pool, ids) == {"tasks": set(), "attempts": set(), "replays": set()}


async def test_only_the_leader_purges(store, pool, tenants) -> None:
    ids = [await aged(store, pool, tenants["acme"], "completed", 50, 45)]
    assert await pruner(pool, leading=False).run_once() == 0
    assert (await left(pool, ids))["tasks"] == set(ids)


async def test_a_row_held_elsewhere_is_skipped_not_waited_for(store, pool, tenants) -> None:
    held, free = [await aged(store, pool, tenants["acme"], "failed", 50, 45) for _ in range(2)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", held)  # a replay
        assert await pruner(pool).run_once() == 1
    assert (await left(pool, [held, free]))["tasks"] == {held}


@pytest.mark.parametrize("days", [1, 30, 365])
def test_the_id_bound_is_below_every_task_created_before(days: int) -> None:
    when = NOW - timedelta(days=days)
    before = uuid7(int(when.timestamp() * 1000) - 1, rand=b"\xff" * 10)
    same_ms = uuid7(int(when.timestamp() * 1000), rand=b"\x00" * 10)
    assert before < first_id_at(when) <= same_ms


@pytest.mark.parametrize("days", [0, -1, 36501])
async def test_retention_days_are_bounded(pool, tenants, days: int) -> None:
    with pytest.raises(Unprocessable, match="retention_days") as refused:
        await TenantStore(pool).update_tenant("acme", {"retention_days": days})
    assert refused.value.code == "invalid_limit"
    with pytest.raises(Unprocessable):
        await TenantStore(pool).create_tenant("initech", TenantLimits(retention_days=days))
