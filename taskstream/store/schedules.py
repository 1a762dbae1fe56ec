"""Schedules and leader leases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from ..core.audit import Actor
from ..core.errors import Conflict, NotFound
from . import queries
from .audit import record
from .database import acquire, translate_errors
from .tasks import record_queue

SCHEDULE_COLUMNS = (
    "id, tenant_id, name, cron, timezone, task::text AS task, misfire, misfire_grace_s, "
    "max_catch_up, paused, next_run_at, last_run_at, last_lag_ms, created_at, updated_at"
)
Q = {
    k: v.replace("{schedule_columns}", SCHEDULE_COLUMNS)
    for k, v in queries.load("schedules").items()
}


class ScheduleRow(msgspec.Struct, kw_only=True):
    id: UUID
    tenant_id: UUID
    name: str
    cron: str
    timezone: str
    task: str  # the task template, JSON text
    misfire: str
    misfire_grace_s: float
    max_catch_up: int
    paused: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_lag_ms: float | None
    created_at: datetime
    updated_at: datetime


def _row(r: asyncpg.Record) -> ScheduleRow:
    return ScheduleRow(**dict(r))


class ScheduleStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def create(
        self,
        row: ScheduleRow,
        *,
        queue: str | None = None,
        max_per_tenant: int | None = None,
        by: Actor | None = None,
    ) -> ScheduleRow:
        """Insert ``row``, and record its task's ``queue`` with it (None: the caller did).

        With ``max_per_tenant``, the count and the insert are one transaction taken in turn with
        the tenant's other creates. Refused, with nothing written, when the tenant already has
        ``max_per_tenant`` schedules (409 ``schedule_quota_exceeded``) or one with this name
        (409 ``schedule_exists``). ``by``, here and below: recorded in the audit log in the same
        transaction."""
        async with acquire(self.pool, row.tenant_id) as conn, conn.transaction():
            if max_per_tenant is not None:
                await self._check_quota(conn, row.tenant_id, max_per_tenant)
            got = await conn.fetchrow(
                Q["insert_schedule"],
                row.id,
                row.tenant_id,
                row.name,
                row.cron,
                row.timezone,
                row.task,
                row.misfire,
                row.misfire_grace_s,
                row.max_catch_up,
                row.paused,
                row.next_run_at,
            )
            if got is None:
                raise Conflict(f"a schedule named {row.name!r} exists", code="schedule_exists")
            # The queue is recorded only with the schedule, so a refused create writes nothing;
            # the NOTIFY is delivered at commit.
            if queue is not None:
                await record_queue(conn, row.tenant_id, queue)
            await record(conn, by, row.tenant_id, "schedule.create", row.name)
        return _row(got)

    @staticmethod
    async def _check_quota(
        conn: asyncpg.Connection[Any], tenant_id: UUID, max_per_tenant: int
    ) -> None:
        await conn.execute(Q["lock_tenant_schedules"], tenant_id)
        have = await conn.fetchval(Q["count_schedules"], tenant_id)
        if have >= max_per_tenant:
            raise Conflict(
                f"the tenant has {have} schedules, the most it may have ({max_per_tenant}): "
                "delete one first",
                code="schedule_quota_exceeded",
                max_schedules=max_per_tenant,
            )

    async def get(self, tenant_id: UUID, schedule_id: UUID) -> ScheduleRow:
        async with acquire(self.pool, tenant_id) as conn:
            got = await conn.fetchrow(Q["get_schedule"], tenant_id, schedule_id)
        if got is None:
            raise NotFound("schedule not found", code="schedule_not_found")
        return _row(got)

    async def list_all(self, tenant_id: UUID) -> list[ScheduleRow]:
        async with acquire(self.pool, tenant_id) as conn:
            return [_row(r) for r in await conn.fetch(Q["list_schedules"], tenant_id)]

    async def update(
        self, row: ScheduleRow, *, by: Actor | None = None, action: str = "schedule.update"
    ) -> ScheduleRow:
        async with acquire(self.pool, row.tenant_id) as conn, conn.transaction():
            got = await conn.fetchrow(
                Q["update_schedule"],
                row.tenant_id,
                row.id,
                row.cron,
                row.timezone,
                row.task,
                row.misfire,
                row.misfire_grace_s,
                row.max_catch_up,
                row.paused,
                row.next_run_at,
            )
            if got is None:
                raise NotFound("schedule not found", code="schedule_not_found")
            await record(conn, by, row.tenant_id, action, row.name)
        return _row(got)

    async def delete(self, tenant_id: UUID, schedule_id: UUID, *, by: Actor | None = None) -> None:
        async with acquire(self.pool, tenant_id) as conn, conn.transaction():
            name = await conn.fetchval(Q["delete_schedule"], tenant_id, schedule_id)
            if name is None:
                raise NotFound("schedule not found", code="schedule_not_found")
            await record(conn, by, tenant_id, "schedule.delete", name)

    async def fire_due(
        self,
        lease: tuple[str, str, int],
        limit: int,
        fire: Callable[[asyncpg.Connection[Any], ScheduleRow], Awaitable[None]],
    ) -> int:
        """In one transaction, while ``lease`` (name, holder, epoch) is still held: lock due
        schedules and call ``fire`` for each (it enqueues and advances on the same connection).
        Returns how many schedules fired; 0 if the lease was lost."""
        async with acquire(self.pool) as conn:
            with translate_errors():
                async with conn.transaction():
                    if await conn.fetchval(Q["holds_lease"], *lease) is None:
                        return 0
                    rows = [_row(r) for r in await conn.fetch(Q["due_schedules"], limit)]
                    for row in rows:
                        await fire(conn, row)
        return len(rows)

    @staticmethod
    async def advance(
        conn: asyncpg.Connection[Any],
        schedule_id: UUID,
        next_run_at: datetime,
        last_run_at: datetime | None,
        lag_ms: float | None,
    ) -> None:
        await conn.execute(Q["advance_schedule"], schedule_id, next_run_at, last_run_at, lag_ms)


class LeaseStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def acquire(self, name: str, holder: str, ttl_s: float) -> int | None:
        """Our epoch if we hold (or just took) the lease, else None."""
        async with acquire(self.pool) as conn:
            epoch = await conn.fetchval(Q["acquire_lease"], name, holder, ttl_s)
        return None if epoch is None else int(epoch)

    async def release(self, name: str, holder: str, epoch: int) -> None:
        async with acquire(self.pool) as conn:
            await conn.execute(Q["release_lease"], name, holder, epoch)

    async def status(self) -> list[dict[str, Any]]:
        async with acquire(self.pool) as conn:
            return [dict(r) for r in await conn.fetch(Q["lease_status"])]
