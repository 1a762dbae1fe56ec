"""Example tasks: run them with ``taskstream worker --app taskstream.examples.tasks``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from taskstream import Fail, Retry, TaskContext, task


class Echo(msgspec.Struct):
    message: str


@task("examples.echo", queue="default", timeout_s=10)
async def echo(ctx: TaskContext, payload: Echo) -> dict[str, Any]:
    """Returns its message: the smallest useful task."""
    return {"echo": payload.message, "attempt": ctx.attempt}


class Sleep(msgspec.Struct):
    seconds: float = 0.1


@task("examples.sleep", queue="default", timeout_s=120)
async def sleep(ctx: TaskContext, payload: Sleep) -> dict[str, float]:
    await asyncio.sleep(payload.seconds)
    return {"slept_s": payload.seconds}


@task("examples.sync_sleep", queue="default", timeout_s=120)
def sync_sleep(ctx: TaskContext, payload: Sleep) -> dict[str, float]:
    """A blocking handler: runs in the worker's thread pool."""
    time.sleep(payload.seconds)
    return {"slept_s": payload.seconds}


@task("examples.noop", queue="default", timeout_s=10)
async def noop(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Does nothing: for benchmarks."""


class Flaky(msgspec.Struct):
    fail_times: int = 1


@task("examples.flaky", queue="default", max_attempts=5)
async def flaky(ctx: TaskContext, payload: Flaky) -> dict[str, int]:
    """Fails its first ``fail_times`` attempts, then succeeds."""
    if ctx.attempt <= payload.fail_times:
        raise Retry(delay_s=0.05, reason=f"attempt {ctx.attempt} fails on purpose")
    return {"attempts": ctx.attempt}


class Doomed(msgspec.Struct):
    reason: str = "this task always fails"


@task("examples.fail", queue="default")
async def fail(ctx: TaskContext, payload: Doomed) -> None:
    raise Fail(payload.reason)
