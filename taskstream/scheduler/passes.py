"""The scheduler's periodic passes (cron, retention) share one loop: a pass every interval until
``stop``; a pass that fails is logged and the next one runs on time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from ..core.errors import Unavailable

log = structlog.get_logger("taskstream.scheduler")


async def every(
    interval_s: float, run_once: Callable[[], Awaitable[Any]], what: str, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await run_once()
        except Unavailable as exc:
            log.warning(f"{what} waiting for a dependency", error=str(exc))
        except Exception:  # a bad pass must not stop the next; it is logged
            log.exception(f"{what} pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
