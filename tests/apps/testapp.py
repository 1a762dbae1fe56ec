"""Handlers used by the integration and end-to-end tests (importable as `testapp`)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import msgspec

from taskstream import TaskContext, task


class Effect(msgspec.Struct):
    value: int
    sleep_s: float = 0.0


@task("test.effect", queue="default", timeout_s=30, max_attempts=5)
async def effect(ctx: TaskContext, payload: Effect) -> dict[str, int]:
    """Writes one row through ctx.transaction(): it commits only with the task's completion."""
    async with ctx.transaction() as conn:
        await conn.execute(
            "INSERT INTO test_effects (task_id, value, lease_epoch) VALUES ($1, $2, $3)",
            ctx.task_id,
            payload.value,
            ctx.lease_epoch,
        )
    if payload.sleep_s:
        await asyncio.sleep(payload.sleep_s)
    return {"value": payload.value}


@task("test.crash", queue="default", max_attempts=2)
async def crash(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Kills its own worker process: a poison task."""
    os._exit(3)


EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS test_effects ("
    " id bigserial PRIMARY KEY, task_id uuid NOT NULL, value int NOT NULL,"
    " lease_epoch bigint NOT NULL)"
)


@task("test.traced", queue="default")
async def traced(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, str]:
    """Opens a span of its own (tests/integration/test_tracing.py): it nests in the attempt's."""
    from opentelemetry import trace

    with trace.get_tracer("testapp").start_as_current_span("render") as span:
        span.set_attribute("task.id", str(ctx.task_id))
        return {"traced": "yes"}


class Hang(msgspec.Struct):
    value: int
    seconds: float = 3600.0


@task("test.hang", queue="default", timeout_s=3600, max_attempts=3)
async def hang(ctx: TaskContext, payload: Hang) -> dict[str, int]:
    """Its first attempt blocks the worker's event loop (a hung process: tests/e2e/test_pool.py);
    a later attempt writes its effect, as test.effect does."""
    if ctx.attempt == 1:
        time.sleep(payload.seconds)  # blocking the loop is the point
    async with ctx.transaction() as conn:
        await conn.execute(
            "INSERT INTO test_effects (task_id, value, lease_epoch) VALUES ($1, $2, $3)",
            ctx.task_id,
            payload.value,
            ctx.lease_epoch,
        )
    return {"value": payload.value}


class Hog(msgspec.Struct):
    mb: int


_HELD: list[bytes] = []  # what test.hog holds: for the life of its process, as a leak would


@task("test.hog", queue="default")
async def hog(ctx: TaskContext, payload: Hog) -> dict[str, int]:
    """Takes ``mb`` MiB of resident memory and keeps it (every page written, so resident)."""
    _HELD.append(b"\x01" * (payload.mb * 1024 * 1024))
    return {"held_mb": sum(len(b) for b in _HELD) // (1024 * 1024)}
