"""The audit log's store: appends in the caller's transaction, pages for the API, and the
reads of ``taskstream audit verify`` (the chain itself: core/audit.py, queries/audit.sql)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ..core.audit import Actor, Broken, Checker, Entry, Row
from ..core.errors import StoreUnavailable
from . import queries
from .database import acquire

Q = queries.load("audit")


async def append(conn: asyncpg.Connection[Any], entries: Sequence[Entry]) -> None:
    """Append ``entries`` (one block per tenant) in ``conn``'s transaction."""
    if not entries:
        return
    cols = (
        [e.tenant_id for e in entries], [e.at for e in entries], [e.actor for e in entries],
        [e.action for e in entries], [e.target for e in entries],
        [e.request_id for e in entries], [e.digest for e in entries],
    )  # fmt: skip
    if await conn.fetchval(Q["append"], *cols) != len(entries):  # a tenant without a head
        raise StoreUnavailable("the audit log refused entries: a tenant has no audit head")


async def record(
    conn: asyncpg.Connection[Any], by: Actor | None, tenant_id: UUID, action: str, target: str
) -> None:
    """One call's entry, in ``conn``'s transaction; nothing when nobody is named (``by``)."""
    if by is not None:
        await append(conn, [by.entry(tenant_id, action, target)])


class AuditStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def recording(
        self, by: Actor, tenant_id: UUID, action: str, target: str
    ) -> AsyncIterator[None]:
        """For a change made outside PostgreSQL (in Redis): its entry is appended in a
        transaction that commits only if the change, made inside, did not raise."""
        async with acquire(self.pool, tenant_id) as conn, conn.transaction():
            await record(conn, by, tenant_id, action, target)
            yield

    async def page(
        self,
        tenant_id: UUID,
        *,
        limit: int,
        before: int | None = None,
        action: str | None = None,
        actor: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
    ) -> list[asyncpg.Record]:
        async with acquire(self.pool, tenant_id) as conn:
            return list(
                await conn.fetch(Q["page"], tenant_id, limit, before, action, actor, target, since)
            )

    async def verify(
        self, tenant_id: UUID | None = None
    ) -> AsyncIterator[tuple[UUID, int, Broken | None]]:
        """Per tenant: its id, the rows its head counts, and the first broken link (None:
        intact). Rows are read through a cursor: the log may be long."""
        async with acquire(self.pool) as conn:
            for head in await conn.fetch(Q["heads"], tenant_id):
                tid = head["tenant_id"]
                checker = Checker(tid)
                broken = None
                async with conn.transaction():
                    async for row in _rows(conn.cursor(Q["rows"], tid, prefetch=2000)):
                        if (broken := checker.feed(row)) is not None:
                            break
                if broken is None:
                    broken = checker.end((head["seq"], bytes(head["chain"])))
                yield tid, head["seq"], broken


async def _rows(cursor: Any) -> AsyncIterator[Row]:
    async for r in cursor:
        yield Row(
            entry=Entry(tenant_id=r["tenant_id"], at=r["at"], actor=r["actor"],
                        action=r["action"], target=r["target"], request_id=r["request_id"]),
            seq=r["seq"], digest=bytes(r["digest"]),
            chain=None if r["chain"] is None else bytes(r["chain"]),
        )  # fmt: skip
