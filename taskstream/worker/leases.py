"""What a worker holds and how it keeps it: one :class:`Inflight` per attempt (running, or its
outcome waiting to be written), and the :class:`Heartbeat` that extends their leases and stream
entries, records the worker's row, and cancels a handler whose lease another worker took."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

import structlog

from ..broker.consumer import Consumer, Entry
from ..core.config import Settings
from ..core.errors import Unavailable
from ..core.models import ClaimedTask
from ..store.tasks import TaskStore
from ..store.workers import WorkerStore

log = structlog.get_logger("taskstream.worker")
HEARTBEAT_TICK_S = 0.25
# A loop that fails this many times in a row for a reason other than an outage is broken, not
# unlucky: it raises, its siblings stop, and the process exits non-zero (to be restarted).
MAX_LOOP_FAILURES = 10


@dataclass
class Inflight:
    task: ClaimedTask
    entry: Entry | None  # None: claimed from the table while Redis was down
    handle: asyncio.Task[None] | None = field(default=None)
    # Its outcome is being written: a lease found lost now is the write's own doing (a
    # completion committed) or is refused by the write's fencing; cancelling could only
    # interrupt a commit and leak its connection.
    finishing: bool = False


class Holder(Protocol):
    """The worker, as the heartbeat sees it. An attempt leaves ``inflight`` once its outcome
    was written or given up on: from then on its lease is no longer extended."""

    name: str
    settings: Settings
    queues: list[str] | None
    concurrency: int
    inflight: dict[UUID, Inflight]

    @property
    def degraded(self) -> bool: ...


class Heartbeat:
    def __init__(
        self, holder: Holder, store: TaskStore, workers: WorkerStore, consumer: Consumer
    ) -> None:
        self.holder = holder
        self.store = store
        self.workers = workers
        self.consumer = consumer

    async def run(self) -> None:
        """Beat every third of the shortest lease in flight (a task may carry its own)."""
        settings = self.holder.settings
        last = time.monotonic()
        errors = 0  # in a row, not outages
        while True:
            await asyncio.sleep(HEARTBEAT_TICK_S)
            leases = [s.task.lease_s for s in self.holder.inflight.values()]
            if time.monotonic() - last < min([settings.visibility_timeout_s, *leases]) / 3:
                continue
            last = time.monotonic()
            try:
                await self.beat_once()
                errors = 0
            except Unavailable as exc:
                log.warning("heartbeat failed", error=str(exc))
            except Exception as exc:  # one bad beat is survivable; leases outlast a few
                errors += 1
                if errors >= MAX_LOOP_FAILURES:
                    raise  # leases would lapse unseen: stop the worker instead
                log.warning("heartbeat failed", error=repr(exc))

    async def beat_once(self) -> None:
        h = self.holder
        await self.workers.beat(
            h.name, socket.gethostname(), os.getpid(), h.queues, h.concurrency,
            len(h.inflight), h.degraded,
        )  # fmt: skip
        slots = list(h.inflight.values())
        if not slots:
            return
        held = await self.store.heartbeat(
            [(s.task.id, s.task.lease_epoch) for s in slots], h.settings.visibility_timeout_s
        )
        for s in slots:
            lost = s.task.id not in held and not s.finishing
            if lost and s.handle is not None and not s.handle.done():
                # Fenced out (the lease ran out and another worker claimed the task): stop.
                log.warning("lease lost; cancelling handler", task_id=str(s.task.id))
                s.handle.cancel()
        owned = [s.entry for s in slots if s.task.id in held and s.entry is not None]
        if owned and not h.degraded:
            await self.consumer.touch(owned)
