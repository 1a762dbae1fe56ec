"""A failing service stops the others (they drain as on SIGTERM), its error is raised once all
have returned, and ``serve`` logs it once and exits non-zero."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from taskstream import runtime
from taskstream.core.errors import StoreUnavailable


async def test_a_failing_service_stops_the_others_gracefully() -> None:
    drained: list[str] = []

    async def steady(stop: asyncio.Event) -> None:
        await stop.wait()
        await asyncio.sleep(0.01)  # a graceful drain still runs to its end
        drained.append("steady")

    async def broken(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("loop broke")

    with pytest.raises(RuntimeError, match="loop broke"):
        await asyncio.wait_for(runtime.run_services([steady, broken]), 5)
    assert drained == ["steady"]


async def test_single_error_groups_are_unwrapped() -> None:
    async def grouped(stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.sleep(0))
            raise StoreUnavailable("PostgreSQL unavailable: OSError")

    with pytest.raises(StoreUnavailable):
        await runtime.run_services([grouped])


def test_serve_logs_a_failure_once_and_exits_non_zero() -> None:
    async def broken(stop: asyncio.Event) -> None:
        raise RuntimeError("loop broke")

    with capture_logs() as logs, pytest.raises(SystemExit) as exit_:
        runtime.serve([broken])
    assert exit_.value.code == 1
    assert [e["event"] for e in logs] == ["stopped by an error"]


def test_serve_leaves_our_own_errors_to_the_cli() -> None:
    async def unreachable(stop: asyncio.Event) -> None:
        raise StoreUnavailable("PostgreSQL unavailable: OSError")

    with pytest.raises(StoreUnavailable):
        runtime.serve([unreachable])
