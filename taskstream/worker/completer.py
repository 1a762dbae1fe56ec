"""Writing attempt outcomes in batches, then acking their stream entries.

Outcomes queue up while a write is in flight, so the next write carries all of them: one
statement for many tasks under load. While other attempts are still running, a small batch waits
a few milliseconds for more (every statement costs PostgreSQL ~0.5 ms whatever its size); the
last attempt in flight is written at once, so an idle worker adds no wait. Nothing is acked
before its outcome committed; a commit whose result was not seen is settled by re-reading the
rows.

Errors are classified: an outage (:class:`Unavailable`) is waited out for as long as it lasts;
any other error (PostgreSQL refusing a value, a bug) is tried a few times, then the batch is
written row by row, a refused row as a failed attempt that says why, or dropped if even that is
refused. A slot always comes back, so one bad outcome cannot wedge the worker.
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
from .storable import refused

log = structlog.get_logger("taskstream.worker")
MAX_FLUSH = 500
GATHER_STEP_S = 0.001
GATHER_STEPS = 4  # at most this many steps of waiting for a fuller batch
MAX_TRIES = 3  # a batch failing for a reason other than an outage, before row by row


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
        """Write outcomes (one statement), then ack what committed. An outage is waited out;
        any other error is tried MAX_TRIES times, then the rows are written one by one so one
        bad row cannot hold the others. Every outcome's slot comes back, written or not."""
        finishes = [f for f, _ in batch]
        try:
            try:
                ok = await self._write(finishes, MAX_TRIES)
            except _Refused as refusal:
                log.warning(
                    "outcomes refused; writing them one by one",
                    error=refusal.text,
                    pending=len(finishes),
                )
                ok = await self._write_rows(finishes, refusal.uncertain)
            await self.ack_quietly([e for f, e in batch if f.task_id in ok])
            self.written += len(batch)
        finally:
            for f in finishes:
                self.on_done(f.task_id)

    async def _write(
        self, finishes: Sequence[Finish], tries: int, *, uncertain: bool = False
    ) -> set[UUID]:
        """The ids written (lease still held); raises :class:`_Refused` after ``tries`` errors
        that are not an outage (River's completer gives up the same way)."""
        delay, failures = 0.05, 0
        while True:
            try:
                ok = await self.store.finish(finishes, worker=self.worker)
                if uncertain and len(ok) < len(finishes):
                    # An earlier try may have committed before its connection died.
                    ok |= await self.store.confirm_finished(finishes)
                return ok
            except Unavailable as exc:
                uncertain = True
                log.warning("cannot write outcomes yet", error=str(exc), pending=len(finishes))
            except Exception as exc:  # classified: refused (not an outage), or a bug
                failures += 1
                if failures >= tries:
                    raise _Refused(exc, uncertain=uncertain) from exc
                log.warning("writing outcomes failed; retrying", error=_describe(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _write_rows(self, finishes: Sequence[Finish], uncertain: bool) -> set[UUID]:
        """One statement per outcome; a refused outcome is written as a failed attempt that
        says why; if even that is refused, it is dropped (logged once): its lease runs out and
        the rescuer hands the task on."""
        ok: set[UUID] = set()
        for f in finishes:
            try:
                ok |= await self._write([f], 1, uncertain=uncertain)
                continue
            except _Refused as refusal:
                fallback = refused(f, refusal.error)
            try:
                ok |= await self._write([fallback], 1, uncertain=uncertain)
                log.warning("outcome refused; attempt failed", task_id=str(f.task_id),
                            error=fallback.error)  # fmt: skip
            except _Refused as again:
                log.error(
                    "outcome dropped: PostgreSQL refused it; its lease will run out",
                    task_id=str(f.task_id),
                    error=again.text,
                )
        return ok

    async def ack_quietly(self, entries: Sequence[Entry | None]) -> None:
        """Ack; an ack lost to a Redis outage is harmless: the entry is reclaimed later, its
        claim fails (the task is finished) and it is acked then."""
        real = [e for e in entries if e is not None]  # None: claimed from the table
        if not real:
            return
        try:
            await self.consumer.ack(real)
        except Exception as exc:  # noqa: BLE001 - an outage or a refusal: the same remedy
            log.warning("ack deferred", error=_describe(exc), entries=len(real))

    async def join(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.queue.join(), timeout_s)
        except TimeoutError:
            log.warning("outcomes not written before shutdown; their leases will run out")


class _Refused(Exception):
    """A write failed ``tries`` times for a reason other than an outage."""

    def __init__(self, error: Exception, *, uncertain: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.uncertain = uncertain  # an outage came first: a try may have committed

    @property
    def text(self) -> str:
        return _describe(self.error)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
