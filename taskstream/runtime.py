"""Running services until a signal: SIGINT/SIGTERM set ``stop``, services drain and return."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog

from .core.errors import TaskstreamError

log = structlog.get_logger("taskstream.runtime")
Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

# A worker allocates short-lived objects by the thousand per second (an asyncio task, a context
# and a few structs per task run; records and buffers per statement). With CPython's default
# threshold the youngest generation was collected every 700 allocations, each pass also walking
# what start-up had loaded: ~20 % of a worker's CPU per task in the drain benchmark (116-121 ->
# 90-104 µs a task, peers' body, 1 process). Cycles are still collected, in larger steps. Not
# for the API: its single-submit capacity measured lower with these settings (A/B, twice).
WORKER_GC_THRESHOLDS = (20_000, 20, 100)


def serve(services: Sequence[Service], *, worker_gc: bool = False) -> None:
    """Run long-lived services in this process until a signal (the CLI's api, worker and
    scheduler). ``worker_gc``: freeze start-up objects out of the collector's scans and collect
    in larger steps (see WORKER_GC_THRESHOLDS).

    A service that fails stops the others; the error is logged here, once, and the process
    exits non-zero. Our own errors (e.g. PostgreSQL unreachable at start) go to the CLI, which
    says them in one line."""
    if worker_gc:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*WORKER_GC_THRESHOLDS)
    try:
        run_async(run_services(services))
    except TaskstreamError:
        raise
    except Exception as exc:  # a bug or a refusal: stopped everything, exit non-zero
        log.error("stopped by an error", error=repr(exc), exc_info=exc)
        raise SystemExit(1) from None


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


async def run_services(services: Sequence[Service], stop: asyncio.Event | None = None) -> None:
    """Run every service with a shared stop event, in one task group. A signal sets ``stop``;
    a service that fails sets it too, so the others drain as on SIGTERM, and its error is
    raised once all have returned (the first one's, if several failed)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    failures: list[BaseException] = []

    async def guarded(service: Service) -> None:
        try:
            await service(stop)
        except Exception as exc:  # noqa: BLE001 - raised below, once the others have drained
            failures.append(exc)
            stop.set()

    try:
        async with asyncio.TaskGroup() as group:
            for service in services:
                group.create_task(guarded(service))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if failures:
        raise _unwrap(failures[0])


def _unwrap(exc: BaseException) -> BaseException:
    """The error inside single-error groups (a task group's), so callers can classify it."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
