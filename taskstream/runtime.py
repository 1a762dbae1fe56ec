"""Running services until a signal: SIGINT/SIGTERM set ``stop``, services drain and return."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

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
    in larger steps (see WORKER_GC_THRESHOLDS)."""
    if worker_gc:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*WORKER_GC_THRESHOLDS)
    run_async(run_services(services))


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


async def run_services(services: Sequence[Service], stop: asyncio.Event | None = None) -> None:
    """Run every service with a shared stop event; a signal or any service's failure stops all."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(s(stop)) for s in services]
    try:
        _done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=False)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        for t in tasks:
            t.cancel()
