"""Deleting what a tenant's retention has let go: finished tasks with their attempts and
replays, in batches (see queries/retention.sql)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from ..core.ids import uuid7
from . import queries
from .database import acquire

Q = queries.load("retention")


def first_id_at(when: datetime) -> UUID:
    """The smallest id ``core.ids.uuid7`` makes in ``when``'s millisecond: every task created
    before ``when`` has a smaller id."""
    return uuid7(int(when.timestamp() * 1000), rand=bytes(10))


class RetentionStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def retention_days(self, default_days: int) -> list[tuple[UUID, int]]:
        """Every tenant with its retention in days (its own, or ``default_days``)."""
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(Q["retention_days"], default_days)
        return [(r["id"], r["days"]) for r in rows]

    async def purge(self, tenant_id: UUID, finished_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the tenant's tasks finished before ``finished_before``
        (one short transaction); returns how many went."""
        async with acquire(self.pool) as conn:
            status = await conn.execute(
                Q["purge_finished"], tenant_id, first_id_at(finished_before), finished_before, limit
            )
        return int(status.split()[-1])
