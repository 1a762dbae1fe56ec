"""What the web dashboard (``api/ui/``) reads beyond the REST routes' queries: every queue of a
tenant with its depths, and the last hour's outcomes per queue."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from ..core.ids import uuid7
from . import queries
from .database import acquire

Q = queries.load("dashboard")
HOUR_S = 3600.0
LOOK_BACK_S = 86_400.0  # finished tasks are counted among those created this long ago at most


class Depth(msgspec.Struct, frozen=True, kw_only=True):
    """Tasks of one (queue, priority, status), and how long the oldest has been due."""

    queue: str
    priority: int
    status: str
    n: int
    oldest_s: float


class Finished(msgspec.Struct, frozen=True, kw_only=True):
    """Tasks of one queue that finished in the last hour."""

    queue: str
    completed: int
    failed: int


class QueueData(msgspec.Struct, frozen=True, kw_only=True):
    names: list[str]
    depths: list[Depth]
    last_hour: list[Finished]


def since_id(now_s: float, look_back_s: float = LOOK_BACK_S) -> UUID:
    """The smallest task id (UUIDv7) created ``look_back_s`` before ``now_s``."""
    return uuid7(int((now_s - look_back_s) * 1000), rand=bytes(10))


class DashboardStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def queues(self, tenant_id: UUID, now_s: float | None = None) -> QueueData:
        """The tenant's queues, their depths and the last hour's outcomes, in one session."""
        since = since_id(time.time() if now_s is None else now_s)
        async with acquire(self.pool, tenant_id) as conn:
            names = await conn.fetch(Q["queue_names"], tenant_id)
            depths = await conn.fetch(Q["queue_depths"], tenant_id)
            hour = await conn.fetch(Q["queue_hour"], tenant_id, since, HOUR_S)
        return QueueData(
            names=[r["name"] for r in names],
            depths=[Depth(**dict(r)) for r in depths],
            last_hour=[Finished(**dict(r)) for r in hour],
        )

    async def tenant_name(self, tenant_id: UUID) -> str | None:
        async with acquire(self.pool, tenant_id) as conn:
            name: str | None = await conn.fetchval(Q["tenant_name"], tenant_id)
        return name

    async def queue_names(self, tenant_id: UUID) -> list[str]:
        async with acquire(self.pool, tenant_id) as conn:
            return [r["name"] for r in await conn.fetch(Q["queue_names"], tenant_id)]
