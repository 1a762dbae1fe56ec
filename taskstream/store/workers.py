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

    async def live(self, within_s: float) -> list[dict[str, Any]]:
        async with acquire(self.pool) as conn:
            await conn.execute(Q["prune_workers"], within_s * 20)
            return [dict(r) for r in await conn.fetch(Q["list_workers"], within_s)]

    async def depths(self) -> list[tuple[str, int, str, int]]:
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(Q["depths"])
        return [(r["queue"], r["priority"], r["status"], r["n"]) for r in rows]

    async def queue_stats(self, tenant_id: UUID) -> list[dict[str, Any]]:
        async with acquire(self.pool) as conn:
            return [dict(r) for r in await conn.fetch(Q["queue_stats"], tenant_id)]
