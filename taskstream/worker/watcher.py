"""The watcher: next to the read loop, it starts other tenants' new tasks at once.

A worker busy with one tenant's backlog spends its read loop on that backlog: it waits for a
batch of slots to free up (REFILL_WAIT_S), then claims hundreds of tasks in one statement. A
task of another tenant added meanwhile would wait for both. The watcher blocks on the streams
the worker emptied lately (``Consumer.read_new``: a backlog's streams are never empty, so never
watched) and claims what arrives there by itself, within the tenants' room (worker.slots: the
headroom keeps slots free for them), while the read loop goes on. Only a worker serving several
tenants watches; the streams' consumer group hands each entry to one read, the watcher's or the
loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Protocol

import structlog

from ..broker.consumer import Consumer, Entry
from ..core.errors import Unavailable
from .leases import MAX_LOOP_FAILURES
from .slots import Slots

log = structlog.get_logger("taskstream.worker")
WATCH_MS = 100  # one blocking read this long, then the watched streams are looked at again
IDLE_S = 0.05  # nothing to watch (or no room, or Redis down): look again this often


class Claimer(Protocol):
    consumer: Consumer
    slots: Slots
    buffer: deque[Entry]

    @property
    def degraded(self) -> bool: ...

    async def claim_and_start(self, entries: list[Entry]) -> int: ...


async def watch(worker: Claimer, stop: asyncio.Event) -> None:
    errors = 0
    while not stop.is_set():
        try:
            if await watch_once(worker):
                errors = 0
                continue
        except Unavailable as exc:  # the read loop says so and degrades; this one waits
            log.debug("watcher: dependency unavailable", error=str(exc))
        except Exception as exc:
            errors += 1
            if errors >= MAX_LOOP_FAILURES:
                raise
            log.warning("watch failed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), IDLE_S)


async def watch_once(worker: Claimer) -> bool:
    """One blocking read of the watched streams, and the claim of what came. False if there was
    nothing to watch (the caller waits a little)."""
    slots = worker.slots
    if not slots.shared or worker.degraded or slots.free <= 0:
        return False
    found = await worker.consumer.read_new(slots.free, WATCH_MS, slots.rooms)
    if found is None:
        return False
    take = max(0, min(len(found), slots.free))  # the read loop may have taken slots meanwhile
    worker.buffer.extend(found[take:])  # for the read loop, which claims the buffer first
    if take:
        await worker.claim_and_start(found[:take])
    return True
