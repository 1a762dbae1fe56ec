"""`taskstream streams`: every queue's streams as Redis holds them, and how to look closer with
redis-cli (the CLI prints them as a table). Reads only (XLEN, XPENDING, SMEMBERS); the rows in
PostgreSQL say which queues exist."""

from __future__ import annotations

from typing import Any

import msgspec

from .broker.connection import connect, translate_errors
from .broker.keys import WORDS, Keys, ServedQueue
from .core.config import Settings
from .core.models import Priority
from .store.database import create_pool
from .store.tenants import TenantStore


class StreamRow(msgspec.Struct, kw_only=True):
    key: str
    tenant: str
    queue: str
    priority: str
    entries: int  # waiting + being worked on (acked entries are deleted)
    pending: int  # delivered to a worker, not acked yet
    ready: bool  # marked in its priority's ready set


async def describe(settings: Settings, tenant: str | None) -> list[StreamRow]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        served = [
            ServedQueue(*q) for q in await TenantStore(pool).served_queues(None, every_region=True)
        ]
    finally:
        await pool.close()
    served = [q for q in served if tenant is None or q.tenant == tenant]
    keys = Keys(settings.redis_prefix)
    streams = [
        (q, p, keys.stream(q.tenant, q.queue, p, q.region)) for q in served for p in Priority
    ]
    redis = connect(settings.redis_url)
    try:
        with translate_errors():
            async with redis.pipeline(transaction=False) as pipe:
                for p in Priority:
                    pipe.smembers(keys.ready(p))
                for _, _, key in streams:
                    pipe.xlen(key)
                    pipe.xpending(key, keys.group)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
    finally:
        await redis.aclose()
    ready = set().union(*(r for r in replies[: len(Priority)] if isinstance(r, set)))
    rows = []
    for i, (q, p, key) in enumerate(streams):
        length, pending = replies[len(Priority) + 2 * i : len(Priority) + 2 * i + 2]
        row = StreamRow(
            key=key, tenant=q.tenant, queue=q.queue, priority=WORDS[p],
            entries=length if isinstance(length, int) else 0,
            pending=pending["pending"] if isinstance(pending, dict) else 0,
            ready=key.encode() in ready,
        )  # fmt: skip
        rows.append(row)
    return rows


def hints(rows: list[StreamRow], prefix: str) -> list[str]:
    """How to look closer with redis-cli, on the first stream listed."""
    example = rows[0].key if rows else f"{prefix}:{{TENANT/QUEUE}}:normal"
    return [
        "Look closer with redis-cli (the entry's field t is the task id):",
        f"  redis-cli XRANGE '{example}' - + COUNT 10",
        f"  redis-cli XPENDING '{example}' {prefix}:workers - + 10",
        f"  redis-cli XINFO GROUPS '{example}'",
        f"  redis-cli SMEMBERS {prefix}:ready:normal",
    ]
