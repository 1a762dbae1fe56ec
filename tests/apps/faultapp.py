"""Handlers whose outcomes PostgreSQL cannot store as they are (importable as `faultapp`)."""

from __future__ import annotations

import contextlib
from typing import Any

from taskstream import Fail, TaskContext, task


@task("fault.nul_result", queue="default", max_attempts=1)
async def nul_result(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, str]:
    """A result jsonb refuses: a NUL character inside a string."""
    return {"text": "before\x00after"}


@task("fault.nul_error", queue="default", max_attempts=1)
async def nul_error(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """An error text PostgreSQL's text type refuses: a NUL byte, and a lone surrogate."""
    raise ValueError("broken\x00bytes \udc80 here")


@task("fault.nul_fail", queue="default", max_attempts=3)
async def nul_fail(ctx: TaskContext, payload: dict[str, Any]) -> None:
    raise Fail("reason with\x00a NUL" + "x" * 10_000)


@task("fault.echo", queue="default")
async def echo(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Returns its payload (a test's trigger may refuse to store it)."""
    return payload


@task("fault.swallow_sql_error", queue="default", max_attempts=1)
async def swallow_sql_error(ctx: TaskContext, payload: dict[str, Any]) -> str:
    """Catches an SQL error inside ctx.transaction(): the transaction is aborted, so the
    completion written on it fails."""
    async with ctx.transaction() as conn:
        with contextlib.suppress(Exception):  # the point of this handler
            await conn.execute("SELECT 1/0")
    return "done"
