"""Worker heartbeats and queue statistics (what operators look at)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from . import queries
from .database import acquire

Q = queries.load("workers")


class WorkerStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def beat(
        self, name: str, host: str, pid: int, queues: Sequence[str] | None, concurrency: int,
        running: int, degraded: bool,
    ) -> None:  # fmt: skip
        async with acquire(self.pool) as conn:
            await conn.execute(
                Q["beat"], name, host, pid, None if queues is None else list(queues),
                concurrency, running, degraded,
            )  # fmt: skip

    async def forget(self, name: str) -> None:
        async with acquire(self.pool) as conn:
            await conn.execute(Q["forget"], name)

    async def live(self, tenant_id: UUID, within_s: float) -> list[dict[str, Any]]:
        """Workers seen within ``within_s`` that serve a queue of the tenant; ``queues`` lists
        only the tenant's own (a worker's other queues are other tenants' business)."""
        async with acquire(self.pool, tenant_id) as conn:
            await conn.execute(Q["prune_workers"], within_s * 20)
            return [dict(r) for r in await conn.fetch(Q["list_workers"], within_s, tenant_id)]

    async def depths(self, tenant_id: UUID | None) -> list[tuple[str, str, int, str, int, float]]:
        """Tasks by tenant (name), queue, priority and status, with the oldest one's seconds
        since it was due: the tenant's, or (None) every tenant's."""
        async with acquire(self.pool, tenant_id) as conn:
            if tenant_id is None:
                rows = await conn.fetch(Q["depths_all"])
            else:
                rows = await conn.fetch(Q["depths"], tenant_id)
        return [
            (r["tenant"], r["queue"], r["priority"], r["status"], r["n"], r["oldest_s"])
            for r in rows
        ]

    async def queue_stats(self, tenant_id: UUID) -> list[dict[str, Any]]:
        async with acquire(self.pool, tenant_id) as conn:
            return [dict(r) for r in await conn.fetch(Q["queue_stats"], tenant_id)]
