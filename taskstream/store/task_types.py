"""Registered task-type definitions (written by workers, cached by the API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from . import queries
from .database import acquire

Q = queries.load("task_types")
CHANNEL = "taskstream_task_types"  # NOTIFY channel: definitions changed


class TaskTypeRow(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    queue: str
    timeout_s: float
    max_attempts: int
    payload_schema: str  # JSON Schema, as JSON text
    visibility_timeout_s: float | None = None  # None: the deployment's default


class TaskTypeStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def upsert(self, rows: Sequence[TaskTypeRow]) -> None:
        async with acquire(self.pool) as conn, conn.transaction():
            await conn.execute(
                Q["upsert_task_types"],
                [r.name for r in rows],
                [r.queue for r in rows],
                [r.timeout_s for r in rows],
                [r.max_attempts for r in rows],
                [r.payload_schema for r in rows],
                [r.visibility_timeout_s for r in rows],
            )
            await conn.execute(f"NOTIFY {CHANNEL}")

    async def all(self) -> list[TaskTypeRow]:
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(Q["list_task_types"])
        return [
            TaskTypeRow(
                name=r["name"],
                queue=r["queue"],
                timeout_s=r["timeout_s"],
                max_attempts=r["max_attempts"],
                payload_schema=r["payload_schema"],
                visibility_timeout_s=r["visibility_timeout_s"],
            )
            for r in rows
        ]
