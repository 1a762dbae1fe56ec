"""The tasks repository. Every state change is one compare-and-set statement; batches use
``unnest``/``= ANY`` so a group of tasks costs one round trip."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import structlog

from ..core.audit import Actor
from ..core.crypto import Keyring
from ..core.errors import Conflict, NotFound
from ..core.models import ClaimedTask, Dispatch, Finish, NewTask, TaskRecord, TaskStatus
from ..observability import logging
from . import queries
from .audit import append, record
from .database import CUSTOM_PLANS, Scope, acquire, translate_errors
from .rows import Rows, dispatches

Q = queries.load("tasks")
log = structlog.get_logger("taskstream.store")
QUEUES_CHANNEL = "taskstream_queues"  # NOTIFY channel: a new (tenant, queue) exists
# For writes whose loss after a crash of PostgreSQL is safe by construction (see each caller).
ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
Publish = Callable[[Sequence[Dispatch]], Awaitable[None]]
# How long a task over its tenant's concurrency cap waits (x0.5-1.5; claim_capped says why as
# `scheduled`): a freed slot is refilled within about a second, each wait costs a few writes.
OVER_CAP_WAIT_S = 1.0
# A mark's rows are found by primary key, whatever the statistics say, and it gives up after a
# few seconds: in one bench run a 16,500-id mark ran until cancelled at 30 s (a plan from stale
# statistics, most likely) while worker claims of its rows waited; a lost mark costs a duplicate
# entry, never a task.
MARK_BOUNDS = (
    f"SET LOCAL plan_cache_mode = {CUSTOM_PLANS}; SET LOCAL enable_seqscan = off; "
    "SET LOCAL statement_timeout = '5s'"
)


class Inserted(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one submission: the task, whether this call created it, and whether an
    earlier task holds its idempotency key with a different body (then ``task`` is that one)."""

    task: TaskRecord
    created: bool
    conflict: bool = False


# The only clauses a list may add; the parameter numbers follow $1 (tenant) and $2 (limit).
_FILTERS = {"status": "status = ${}", "type": "type = ${}", "queue": "queue = ${}",
            "before": "id < ${}"}  # fmt: skip


def with_filters(template: str, **given: Any) -> tuple[str, list[Any]]:
    """The list statement for the filters that are set, and their arguments in order."""
    clauses: list[str] = []
    args: list[Any] = []
    for name, value in given.items():
        if value is not None:
            args.append(value)
            clauses.append("AND " + _FILTERS[name].format(2 + len(args)))
    return template.replace("{filters}", " ".join(clauses)), args


FINISHED_STATES = ("completed", "failed", "cancelled")


def list_statement(
    *,
    status: str | None,
    type: str | None,  # noqa: A002 - the API's filter name
    queue: str | None,
    before: UUID | None,
) -> tuple[str, list[Any]]:
    """The task list for these filters. A type or queue filter reads finished tasks through
    migration 0007's partial indexes and unfinished ones apart (list_finished, list_unfinished);
    without a status filter, both parts are merged."""
    given = {"status": status, "type": type, "queue": queue, "before": before}
    if type is None and queue is None:
        return with_filters(Q["list_tasks"], **given)
    finished, args = with_filters(Q["list_finished"], **given)
    if status in FINISHED_STATES:
        return finished, args
    unfinished, _ = with_filters(Q["list_unfinished"], **given)  # the same parameters
    if status is not None:
        return unfinished, args
    return f"({finished})\nUNION ALL\n({unfinished})\nORDER BY id DESC\nLIMIT $2", args


def _keys_by_tenant(tasks: Sequence[NewTask]) -> dict[UUID, list[str | None]]:
    keys: dict[UUID, list[str | None]] = {}
    for t in tasks:
        keys.setdefault(t.tenant_id, []).append(t.idempotency_key)
    return keys


async def record_queue(
    conn: asyncpg.Connection[Any], tenant_id: UUID, name: str, region: str | None = None
) -> None:
    """Record a (tenant, queue, region) in the caller's transaction; a new one wakes workers
    (NOTIFY, delivered at commit) to read its streams."""
    if await conn.fetchval(Q["upsert_queue"], tenant_id, name, region) is not None:
        await conn.execute(f"NOTIFY {QUEUES_CHANNEL}")


class TaskStore:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        *,
        idempotency_ttl_s: float = 86_400.0,
        keys: Keyring | None = None,
    ) -> None:
        self.pool = pool
        self.idempotency_ttl_s = idempotency_ttl_s
        self.rows = Rows(keys or Keyring())
        # (tenant, queue, region) this process recorded in `queues`: checked after each insert,
        # so the streams of a queue, or of a region, new to it are known before it publishes.
        self._queues: set[tuple[UUID, str, str | None]] = set()

    # -- intake ------------------------------------------------------------------------------

    async def insert_many(
        self, tasks: Sequence[NewTask], conn: asyncpg.Connection[Any] | None = None
    ) -> list[Inserted]:
        """Insert a group of tasks in one statement; one :class:`Inserted` per task, in order.

        An idempotency key is honoured for ``idempotency_ttl_s``; an older holder gives its key
        up (the field is cleared on the old task) and the new submission is a new task."""
        if conn is None:
            async with acquire(self.pool, {t.tenant_id for t in tasks}) as own:
                by_id, existing = await self._insert(own, tasks)
                try:  # the tasks are committed: the next insert of that queue tries again
                    await self._record_queues(own, by_id.values())
                except (asyncpg.PostgresError, OSError) as exc:
                    log.warning("could not record a new queue", error=str(exc))
        else:
            with translate_errors():
                by_id, existing = await self._insert(conn, tasks)
                await self._record_queues(conn, by_id.values())
        out: list[Inserted] = []
        for t in tasks:
            if t.id in by_id:
                out.append(
                    Inserted(task=self.rows.record(by_id[t.id], t.payload_json), created=True)
                )
                continue
            row = existing.get((t.tenant_id, t.idempotency_key))
            if row is None:  # pragma: no cover - the key holder was purged mid-call
                raise Conflict("idempotency key in use; retry", code="idempotency_conflict")
            same = row["request_hash"] == t.request_hash
            out.append(Inserted(task=self.rows.record(row), created=False, conflict=not same))
        return out

    async def _insert(
        self, conn: asyncpg.Connection[Any], tasks: Sequence[NewTask]
    ) -> tuple[dict[UUID, asyncpg.Record], dict[tuple[UUID, str | None], asyncpg.Record]]:
        by_id = {r["id"]: r for r in await conn.fetch(Q["insert_tasks"], *self.rows.columns(tasks))}
        missing = [t for t in tasks if t.id not in by_id]
        if missing and await self._expire_keys(conn, missing):
            retried = await conn.fetch(Q["insert_tasks"], *self.rows.columns(missing))
            by_id.update((r["id"], r) for r in retried)
            missing = [t for t in missing if t.id not in by_id]
        existing: dict[tuple[UUID, str | None], asyncpg.Record] = {}
        for tenant, keys in _keys_by_tenant(missing).items():
            for r in await conn.fetch(Q["find_by_idempotency_keys"], tenant, keys):
                existing[(tenant, r["idempotency_key"])] = r
        return by_id, existing

    async def _record_queues(
        self, conn: asyncpg.Connection[Any], rows: Iterable[asyncpg.Record]
    ) -> None:
        new = {(r["tenant_id"], r["queue"], r["region"]) for r in rows} - self._queues
        for tenant_id, queue, region in sorted(new, key=str):
            await record_queue(conn, tenant_id, queue, region)
        self._queues |= new

    async def _expire_keys(self, conn: asyncpg.Connection[Any], tasks: Sequence[NewTask]) -> int:
        expired = 0
        for tenant, keys in _keys_by_tenant(tasks).items():
            rows = await conn.fetch(
                Q["expire_idempotency_keys"], tenant, keys, self.idempotency_ttl_s
            )
            expired += len(rows)
        return expired

    async def mark_published(
        self, ids: Sequence[UUID], at: datetime | None = None, *, tenants: Scope = None
    ) -> None:
        """A lost mark costs one duplicate stream entry (the relay), never a task, so its commit
        does not wait for the WAL flush. Planned for its arguments even on a pool that caches
        plans: it names rows by id in a table that may have grown since. ``tenants``: those of
        the tasks, on a tenant-scoped pool."""
        async with acquire(self.pool, tenants) as conn, conn.transaction():
            await conn.execute(f"{ASYNC_COMMIT}; {MARK_BOUNDS}")
            await conn.execute(Q["mark_published"], list(ids), at)

    async def upsert_queue(self, tenant_id: UUID, name: str) -> None:
        async with acquire(self.pool, tenant_id) as conn, conn.transaction():
            await record_queue(conn, tenant_id, name)

    # -- reads and user actions ----------------------------------------------------------------

    async def count_waiting(self, tenant_id: UUID, up_to: int) -> int:
        """The tenant's pending and scheduled tasks, but at most ``up_to``."""
        async with acquire(self.pool, tenant_id) as conn:
            return int(await conn.fetchval(Q["count_waiting"], tenant_id, up_to))

    async def get(self, tenant_id: UUID, task_id: UUID) -> TaskRecord:
        async with acquire(self.pool, tenant_id) as conn:
            row = await conn.fetchrow(Q["get_task"], tenant_id, task_id)
        if row is None:
            raise NotFound("task not found", code="task_not_found")
        return self.rows.record(row)

    async def list_tasks(
        self,
        tenant_id: UUID,
        *,
        status: TaskStatus | None = None,
        type: str | None = None,  # noqa: A002 - the API's filter name
        queue: str | None = None,
        before: UUID | None = None,
        limit: int = 50,
    ) -> list[TaskRecord]:
        sql, args = list_statement(
            status=None if status is None else str(status), type=type, queue=queue, before=before
        )
        async with acquire(self.pool, tenant_id) as conn:
            rows = await conn.fetch(sql, tenant_id, limit, *args)
        return [self.rows.record(r) for r in rows]

    async def cancel(
        self, tenant_id: UUID, task_id: UUID, *, by: Actor | None = None
    ) -> TaskRecord:
        """``by``: recorded in the audit log in the same transaction."""
        async with acquire(self.pool, tenant_id) as conn, conn.transaction():
            row = await conn.fetchrow(Q["cancel_task"], tenant_id, task_id)
            if row is not None:
                await record(conn, by, tenant_id, "task.cancel", str(task_id))
            if row is None:
                current = await conn.fetchrow(Q["get_task"], tenant_id, task_id)
                if current is None:
                    raise NotFound("task not found", code="task_not_found")
                raise Conflict(
                    f"a {current['status']} task cannot be cancelled",
                    code="invalid_state",
                    current_status=current["status"],
                )
        return self.rows.record(row)

    # -- worker protocol -----------------------------------------------------------------------

    async def claim(
        self, ids: Sequence[UUID], owner: str, lease_s: float, *, wait_s: float = OVER_CAP_WAIT_S
    ) -> list[ClaimedTask]:
        """Lease what can run; the rest is done, cancelled, leased elsewhere or, over its tenant's
        concurrency cap, back to wait ~``wait_s``. One statement if no tenant is capped."""
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(Q["claim_tasks"], list(ids), owner, lease_s)
            held = [r for r in rows if r["capped"]]
            if held:  # should this fail, the tasks claimed above wait out their leases
                async with conn.transaction():
                    await conn.execute(Q["lock_tenants"], list({r["tenant_id"] for r in held}))
                    rows += await conn.fetch(
                        Q["claim_capped"], [r["id"] for r in held], owner, lease_s, wait_s
                    )
        return [self.rows.claimed(r) for r in rows if not r["capped"]]

    async def claim_from_table(
        self,
        queues: Sequence[str] | None,
        limit: int,
        owner: str,
        lease_s: float,
        region: str | None = None,
    ) -> list[ClaimedTask]:
        """Claim without Redis (degraded mode): ready rows of ``region`` (None: tasks without
        one) in priority order, capped tenants' up to their room (under their locks, as
        :meth:`claim`)."""
        names = None if queues is None else list(queues)
        async with acquire(self.pool) as conn, conn.transaction():
            await conn.execute(Q["lock_capped_with_work"], names)
            rows = await conn.fetch(Q["claim_from_table"], names, limit, owner, lease_s, region)
        return [self.rows.claimed(r) for r in rows]

    async def confirm_finished(self, items: Sequence[Finish]) -> set[UUID]:
        """Which of these outcomes are recorded (for a commit whose result was not seen)."""
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(
                Q["confirm_finished"],
                [f.task_id for f in items],
                [f.lease_epoch for f in items],
                [str(f.status) for f in items],
            )
        return {r["id"] for r in rows}

    async def unpublish_pending(self) -> int:
        async with acquire(self.pool) as conn:
            status = await conn.execute(Q["unpublish_pending"])
        return int(status.split()[-1])

    async def finish(
        self,
        items: Sequence[Finish],
        conn: asyncpg.Connection[Any] | None = None,
        worker: str | None = None,
    ) -> set[UUID]:
        """Write attempt outcomes; returns the ids whose lease still matched (the rest were
        fenced out and must not be acked)."""
        results, kids = self.rows.results(items)
        args = (
            [f.task_id for f in items],
            [f.lease_epoch for f in items],
            [str(f.status) for f in items],
            results,
            [f.error for f in items],
            [f.run_at for f in items],
            [f.outcome for f in items],
            [f.duration_s for f in items],
            worker,
            kids,
        )
        if conn is not None:
            with translate_errors():
                rows = await conn.fetch(Q["finish_tasks"], *args)
        else:
            async with acquire(self.pool) as c:
                rows = await c.fetch(Q["finish_tasks"], *args)
        return {r["id"] for r in rows}

    async def heartbeat(self, leases: Sequence[tuple[UUID, int]], lease_s: float) -> set[UUID]:
        """Extend leases; returns the ids still held (a missing id means the lease was lost)."""
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(
                Q["heartbeat_tasks"], [i for i, _ in leases], [e for _, e in leases], lease_s
            )
        return {r["id"] for r in rows}

    async def release(self, leases: Sequence[tuple[UUID, int]]) -> set[UUID]:
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(
                Q["release_tasks"], [i for i, _ in leases], [e for _, e in leases]
            )
        return {r["id"] for r in rows}

    async def unpublish(self, ids: Sequence[UUID]) -> None:
        async with acquire(self.pool) as conn:
            await conn.execute(Q["unpublish"], list(ids))

    async def fail_lost(self, ids: Sequence[UUID]) -> set[UUID]:
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(Q["fail_lost"], list(ids))
        return {r["id"] for r in rows}

    # -- maintenance (scheduler) ---------------------------------------------------------------

    async def promote_due(self, limit: int) -> list[Dispatch]:
        """Move due scheduled tasks to pending (committed); the caller publishes them."""
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(Q["promote_due"], limit)
        if logging.DEBUG:
            for r in rows:
                log.debug("task promoted", task_id=str(r["id"]), correlation_id=r["correlation_id"])
        return dispatches(rows)

    async def relay_unpublished(self, limit: int, grace_s: float, publish: Publish) -> int:
        return await self._publish_in_tx(Q["relay_unpublished"], publish, limit, grace_s)

    async def _publish_in_tx(self, sql: str, publish: Publish, *args: Any) -> int:
        async with acquire(self.pool) as conn:
            with translate_errors():
                async with conn.transaction():
                    rows = await conn.fetch(sql, *args)
                    if rows:
                        # A failed publish raises and rolls back: the rows are tried again.
                        await publish(dispatches(rows))
        return len(rows)

    async def attempts(self, tenant_id: UUID, task_id: UUID) -> list[dict[str, Any]]:
        async with acquire(self.pool, tenant_id) as conn:
            rows = await conn.fetch(Q["list_attempts"], tenant_id, task_id)
            if not rows and await conn.fetchrow(Q["get_task"], tenant_id, task_id) is None:
                raise NotFound("task not found", code="task_not_found")
        return [dict(r) for r in rows]

    async def list_dead(
        self,
        tenant_id: UUID,
        *,
        task_type: str | None,
        queue: str | None,
        before: UUID | None,
        limit: int,
    ) -> list[TaskRecord]:
        sql, args = with_filters(Q["list_dead"], type=task_type, queue=queue, before=before)
        async with acquire(self.pool, tenant_id) as conn:
            rows = await conn.fetch(sql, tenant_id, limit, *args)
        return [self.rows.record(r) for r in rows]

    async def replay(
        self,
        tenant_id: UUID,
        *,
        ids: Sequence[UUID] | None,
        task_type: str | None,
        queue: str | None,
        limit: int,
        by: str,
        audit: tuple[Actor, str] | None = None,
    ) -> list[TaskRecord]:
        """Failed tasks back to pending (attempts reset); every replay is recorded, and with
        ``audit`` (who, action) in the audit log in the same transaction."""
        async with acquire(self.pool, tenant_id) as conn, conn.transaction():
            rows = await conn.fetch(
                Q["replay_dead"],
                tenant_id,
                None if ids is None else list(ids),
                task_type,
                queue,
                limit,
                by,
            )
            if audit is not None:
                who, action = audit
                await append(conn, [who.entry(tenant_id, action, str(r["id"])) for r in rows])
        return [self.rows.record(r) for r in rows]

    async def rescue_expired(self, limit: int, grace_s: float) -> list[tuple[UUID, TaskStatus]]:
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(Q["rescue_expired"], limit, grace_s)
        return [(r["id"], TaskStatus(r["status"])) for r in rows]
