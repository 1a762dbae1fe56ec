"""Running services until a signal: SIGINT/SIGTERM set ``stop``, services drain and return."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


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
