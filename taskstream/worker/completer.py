"""Writing attempt outcomes in batches, then acking their stream entries.

Outcomes queue up while a write is in flight, so the next write carries all of them: one
statement for many tasks under load. While other attempts are still running, a small batch waits
a few milliseconds for more (every statement costs PostgreSQL ~0.5 ms whatever its size); the
last attempt in flight is written at once, so an idle worker adds no wait. Nothing is acked
before its outcome committed; a commit whose result was not seen is settled by re-reading the
rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from uuid import UUID

import structlog

from ..broker.consumer import Consumer, Entry
from ..core.errors import Unavailable
from ..core.models import Finish
from ..store.tasks import TaskStore

log = structlog.get_logger("taskstream.worker")
MAX_FLUSH = 500
GATHER_STEP_S = 0.001
GATHER_STEPS = 4  # at most this many steps of waiting for a fuller batch


class Completer:
    def __init__(
        self,
        store: TaskStore,
        consumer: Consumer,
        worker: str,
        on_done: Callable[[UUID], None],
        *,
        in_flight: Callable[[], int] = lambda: 0,
        min_batch: int = 1,
    ) -> None:
        self.store = store
        self.consumer = consumer
        self.worker = worker
        self.on_done = on_done
        self.in_flight = in_flight  # attempts of the worker: running, queued here or being written
        self.min_batch = min_batch
        self.unwritten = 0  # outcomes put and not written yet
        self.queue: asyncio.Queue[tuple[Finish, Entry | None]] = asyncio.Queue()
        self.written = 0  # outcomes written (any kind); read by tests and metrics

    def put(self, finish: Finish, entry: Entry | None) -> None:
        self.unwritten += 1
        self.queue.put_nowait((finish, entry))

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            self._take(batch)
            for _ in range(GATHER_STEPS):
                if len(batch) >= self.min_batch or self.in_flight() <= self.unwritten:
                    break  # enough, or nothing else is running: write now
                await asyncio.sleep(GATHER_STEP_S)
                self._take(batch)
            try:
                await self.flush(batch)
            finally:
                self.unwritten -= len(batch)
                for _ in batch:
                    self.queue.task_done()

    def _take(self, batch: list[tuple[Finish, Entry | None]]) -> None:
        while len(batch) < MAX_FLUSH and not self.queue.empty():
            batch.append(self.queue.get_nowait())

    async def flush(self, batch: Sequence[tuple[Finish, Entry | None]]) -> None:
        """Write outcomes (one statement), then ack what committed. Retried while PostgreSQL
        is down."""
        finishes = [f for f, _ in batch]
        delay, uncertain = 0.05, False
        while True:
            try:
                ok = await self.store.finish(finishes, worker=self.worker)
                if uncertain and len(ok) < len(finishes):
                    # An earlier try may have committed before its connection died.
                    ok |= await self.store.confirm_finished(finishes)
                break
            except Unavailable as exc:
                uncertain = True
                log.warning("cannot write outcomes yet", error=str(exc), pending=len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception:  # never drop outcomes: log, wait, write them again
                uncertain = True
                log.exception("writing outcomes failed; retrying", pending=len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        await self.ack_quietly([e for f, e in batch if f.task_id in ok])
        self.written += len(batch)
        for f in finishes:
            self.on_done(f.task_id)

    async def ack_quietly(self, entries: Sequence[Entry | None]) -> None:
        """Ack; an ack lost to a Redis outage is harmless: the entry is reclaimed later, its
        claim fails (the task is finished) and it is acked then."""
        real = [e for e in entries if e is not None]  # None: claimed from the table
        if not real:
            return
        try:
            await self.consumer.ack(real)
        except Unavailable as exc:
            log.warning("ack deferred", error=str(exc), entries=len(real))

    async def join(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.queue.join(), timeout_s)
        except TimeoutError:
            log.warning("outcomes not written before shutdown; their leases will run out")
