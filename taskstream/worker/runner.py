"""The worker: read entries in priority turns, claim them in PostgreSQL (compare-and-set with a
fencing token), run handlers, write outcomes in batches, then ack. Heartbeats keep leases and
stream entries; a reclaim pass takes over entries whose worker died. With Redis down it claims
straight from the table (degraded mode) and goes back to the streams when Redis returns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from structlog.contextvars import bind_contextvars

from ..broker.breakers import Breakers
from ..broker.connection import Redis, connect
from ..broker.connection import translate_errors as translate_broker_errors
from ..broker.consumer import Consumer, Entry
from ..broker.keys import Keys, ServedQueue
from ..core.config import Settings
from ..core.crypto import keyring
from ..core.errors import BrokerUnavailable, Unavailable
from ..core.models import ClaimedTask, Finish, TaskStatus
from ..core.outcomes import OutcomeKind
from ..core.retry import RetryPolicy
from ..observability.exporter import export
from ..observability.metrics import WORKER
from ..store.database import create_pool
from ..store.notifications import Listener
from ..store.task_types import TaskTypeStore
from ..store.tasks import QUEUES_CHANNEL, TaskStore
from ..store.tenants import TenantStore
from ..store.transactions import AttemptTransaction
from ..store.workers import WorkerStore
from .completer import Completer
from .context import TaskContext
from .executor import attempt, decide
from .leases import MAX_LOOP_FAILURES, Heartbeat, Inflight
from .member import Member
from .meter import Meter
from .registry import Registry
from .slots import Slots
from .storable import refused
from .threads import DaemonThreads
from .watcher import watch

log = structlog.get_logger("taskstream.worker")
QUEUE_REFRESH_S = 1.0
BLOCK_MS = 500
DEGRADED_RETRY_S = 1.0  # with Redis down, try the streams again this often
DEGRADED_POLL_S = 0.1  # and meanwhile poll the table this often when it is empty
# Saturated, a worker claims once a quarter of its slots are free (or REFILL_WAIT_S passed): a
# slot at a time, the batches shrank to a third and cost PostgreSQL and the worker more per task.
REFILL_FRACTION = 0.25
REFILL_WAIT_S = 0.02


class Worker:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        queues: list[str] | None = None,
        concurrency: int = 10,
        name: str | None = None,
        region: str | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.queues = queues
        self.region = region  # runs only this region's tasks (None: tasks without a region)
        self.metrics_port = metrics_port
        self.meter = Meter(concurrency, counting=settings.metrics)
        self._metrics_now = lambda: self.meter.snapshot(len(self.inflight), self.degraded)
        self.concurrency = concurrency
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.policy = RetryPolicy(base_s=settings.retry_base_s, cap_s=settings.retry_cap_s)
        self.inflight: dict[UUID, Inflight] = {}
        self.buffer: deque[Entry] = deque()
        self.slot_freed = asyncio.Event()
        self.threads = DaemonThreads(max(concurrency, 4))
        self.ready = asyncio.Event()  # set once types are registered and streams are known
        self._queues_at = 0.0
        self._reclaim_at = 0.0
        self._turn = 0
        self._degraded_until = 0.0
        self._refill = max(1, int(concurrency * REFILL_FRACTION))
        self.slots = Slots(concurrency)
        self.member = Member.from_env()  # in a supervised pool: reports, retires (member.py)
        # Set in run():
        self.store: TaskStore
        self.consumer: Consumer
        self.completer: Completer
        self.workers: WorkerStore
        self.heartbeat: Heartbeat
        self._pool: Any = None
        self._redis: Redis | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then drain gracefully. The loops run in one task group:
        if one fails, the others stop, running attempts are cancelled and handed back, and only
        then is the pool closed; the error is raised to the caller (logged once there)."""
        self._pool = await create_pool(
            self.settings.database_url, min_size=2, max_size=self.settings.db_pool_size
        )
        self._redis = connect(self.settings.redis_url)
        self.store = TaskStore(self._pool, keys=keyring(self.settings.encryption_keys))
        self.consumer = Consumer(self._redis, Keys(self.settings.redis_prefix), self.name)
        self.breakers = Breakers.of(self._redis, self.settings)  # handlers' dependencies
        self.completer = Completer(
            self.store,
            self.consumer,
            self.name,
            self._free,
            in_flight=lambda: len(self.inflight),
            min_batch=self._refill,
        )
        self.workers = WorkerStore(self._pool)
        self.heartbeat = Heartbeat(self, self.store, self.workers, self.consumer)
        listener = Listener(self._pool, QUEUES_CHANNEL, self._queues_changed)
        try:
            await listener.open()
            await self.register_types()
            await self._first_queues()
            with contextlib.suppress(Unavailable):
                await self.heartbeat.beat_once()
            self.ready.set()
            log.info(
                "worker started",
                worker=self.name,
                concurrency=self.concurrency,
                degraded=self.degraded,
                types=sorted(d.name for d in self.registry),
            )
            async with asyncio.TaskGroup() as loops:
                reader = loops.create_task(self._read_loop(stop), name="read")
                watcher = loops.create_task(watch(self, stop), name="watch")
                others = [
                    loops.create_task(self.completer.run(), name="complete"),
                    loops.create_task(self.heartbeat.run(), name="heartbeat"),
                    loops.create_task(listener.run(), name="listen"),
                    loops.create_task(
                        export(self.metrics_port, WORKER, self._metrics_now, asyncio.Event())
                    ),
                ]
                if self.member is not None:  # it beats through the drain, cancelled after it
                    others.append(loops.create_task(self.member.run(self, stop), name="member"))
                await reader
                await watcher  # it stops on `stop` too: nothing is claimed during the drain
                await self._drain()
                for loop in others:
                    loop.cancel()
        finally:
            await self._abandon_attempts()
            with contextlib.suppress(Exception):  # best effort: a stale row ages out anyway
                await self.workers.forget(self.name)
            await listener.close()
            self.threads.shutdown(wait=False, cancel_futures=True)
            await self._redis.aclose()
            await self._pool.close()
            log.info("worker stopped", worker=self.name, attempts=self.completer.written)

    async def _first_queues(self) -> None:
        """Read the queues; with Redis down, start degraded (claiming from the table) at once.
        The ping: with no queue known yet nothing else would touch Redis, and nothing claim."""
        try:
            with translate_broker_errors():
                await self._redis.ping()  # type: ignore[union-attr]
            await self.refresh_queues()
        except BrokerUnavailable as exc:
            log.warning("Redis unavailable at start: claiming from PostgreSQL", error=str(exc))
            self._degraded_until = time.monotonic() + DEGRADED_RETRY_S

    async def _abandon_attempts(self) -> None:
        """After a failure (the graceful path has drained already): cancel what still runs and
        wait for it, so no attempt touches the pool after it closed; hand the tasks back if
        PostgreSQL lets us (otherwise their leases run out)."""
        left = [s for s in self.inflight.values() if s.handle is not None and not s.handle.done()]
        if not left:
            return
        for s in left:
            s.handle.cancel()  # type: ignore[union-attr]
        await asyncio.wait([s.handle for s in left if s.handle is not None])
        with contextlib.suppress(Exception):
            await self.store.release([(s.task.id, s.task.lease_epoch) for s in left])

    async def register_types(self) -> None:
        s = self.settings
        if rows := self.registry.rows(s.default_timeout_s, s.default_max_attempts):
            await TaskTypeStore(self._pool).upsert(rows)

    def _queues_changed(self) -> None:
        self._queues_at = 0.0  # refresh on the next turn

    async def refresh_queues(self) -> None:
        served = await TenantStore(self._pool).served_queues(self.queues, self.region)
        await self.consumer.set_queues(ServedQueue(*q) for q in served)
        self.slots.shared = self.consumer.tenant_count > 1
        self._queues_at = time.monotonic()

    # -- reading and claiming ------------------------------------------------------------------

    async def _read_loop(self, stop: asyncio.Event) -> None:
        failures = errors = 0  # errors: in a row, not outages
        while not stop.is_set():
            try:
                await self.run_once()
                failures = errors = 0
            except BrokerUnavailable as exc:
                if not self.degraded:
                    log.warning("Redis unavailable: claiming from PostgreSQL", error=str(exc))
                self._degraded_until = time.monotonic() + DEGRADED_RETRY_S
            except Unavailable as exc:
                failures += 1
                log.warning("dependency unavailable", error=str(exc), worker=self.name)
                await _sleep_or_stop(stop, min(0.1 * 2**failures, 2.0))
            except Exception as exc:
                failures += 1
                errors += 1
                if errors >= MAX_LOOP_FAILURES:
                    raise  # broken, not unlucky: stop the worker (logged once, by the runtime)
                log.warning("read turn failed", error=repr(exc), worker=self.name)
                await _sleep_or_stop(stop, min(0.1 * 2**failures, 2.0))

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and tasks are claimed from the table."""
        return time.monotonic() < self._degraded_until

    async def run_once(self) -> int:
        """One read turn: refresh, reclaim, read, claim and start. Returns tasks started."""
        free = self.slots.free
        if free <= 0:
            self.slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.slot_freed.wait(), 0.5)
            return 0
        if self.degraded:
            if free < self._refill and self.inflight:
                free = await self._wait_for_slots(self._refill)
            return await self._claim_from_table(free)
        now = time.monotonic()
        if now - self._queues_at > QUEUE_REFRESH_S:
            await self.refresh_queues()
        if not self.consumer.all_streams:
            await asyncio.sleep(0.2)
            return 0
        entries = [self.buffer.popleft() for _ in range(min(free, len(self.buffer)))]
        vt_ms = int(self.settings.visibility_timeout_s * 1000)
        if not entries and now - self._reclaim_at > self.settings.visibility_timeout_s / 4:
            self._reclaim_at = now
            entries = await self.consumer.reclaim(vt_ms, free)
        if not entries:
            entries = await self._read(free)
        free = max(0, self.slots.free)  # the watcher may have claimed meanwhile
        if len(entries) > free:
            self.buffer.extend(entries[free:])
            entries = entries[:free]
        return await self.claim_and_start(entries) if entries else 0

    async def _read(self, free: int) -> list[Entry]:
        if free < self._refill and self.inflight:
            free = await self._wait_for_slots(self._refill)
        entries = await self.consumer.read(free, self._turn, BLOCK_MS, self.slots.rooms)
        self._turn += 1
        if not entries and self.consumer.held_back:  # work there, but no room for it now
            await self._wait_for_slots(free + 1)
        return entries

    async def _wait_for_slots(self, want: int) -> int:
        """Saturated: let slots free up into a batch worth a round trip (``want`` free) rather
        than claiming them one or two at a time, but never wait longer than REFILL_WAIT_S.
        (Meanwhile the watcher starts other tenants' new tasks: worker.watcher.)"""
        deadline = time.monotonic() + REFILL_WAIT_S
        while (free := self.slots.free) < want and self.inflight:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.slot_freed.wait(), left)
        return free

    async def _claim_from_table(self, free: int) -> int:
        claimed = await self.store.claim_from_table(
            self.queues, free, self.name, self.settings.visibility_timeout_s, self.region
        )
        for task in claimed:
            self._start(task, None)
        if not claimed:
            await asyncio.sleep(DEGRADED_POLL_S)
        return len(claimed)

    async def claim_and_start(self, entries: list[Entry]) -> int:
        """Claim and start; the entries' slots are reserved meanwhile (the read loop and the
        watcher claim side by side)."""
        self.slots.reserved += len(entries)
        try:
            got = await self.store.claim(
                [e.task_id for e in entries], self.name, self.settings.visibility_timeout_s
            )
        except Unavailable:
            self.buffer.extendleft(reversed(entries))  # claim them once PostgreSQL is back
            raise
        finally:
            self.slots.reserved -= len(entries)
        claimed = {c.id: c for c in got}
        rejected: list[Entry] = []
        for e in entries:
            task = claimed.pop(e.task_id, None)
            if task is None:
                rejected.append(e)  # done, cancelled, leased elsewhere, or a duplicate entry
            else:
                self._start(task, e)
        if rejected:
            # A reclaimed entry whose task is out of attempts was a worker-killing poison task.
            await self.store.fail_lost([e.task_id for e in rejected])
            await self.consumer.ack(rejected)
        return len(entries) - len(rejected)

    def _start(self, task: ClaimedTask, entry: Entry | None) -> None:
        slot = Inflight(task, entry)
        self.inflight[task.id] = slot
        self.slots.take(task.tenant_id)
        slot.handle = asyncio.create_task(self._attempt(slot))

    # -- executing -----------------------------------------------------------------------------

    async def _attempt(self, slot: Inflight) -> None:
        task = slot.task
        # This attempt's own context (a task of its own): every log line while it runs, the
        # handler's included, names the task and its correlation id.
        bind_contextvars(task_id=str(task.id), correlation_id=task.correlation_id)
        self.meter.started(task)
        definition = self.registry.get(task.type)
        tx = AttemptTransaction(self._pool)
        ctx = TaskContext(
            task_id=task.id,
            tenant_id=task.tenant_id,
            type=task.type,
            attempt=task.attempt,
            max_attempts=task.max_attempts,
            lease_epoch=task.lease_epoch,
            idempotency_key=task.idempotency_key,
            correlation_id=task.correlation_id,
            tx=tx,
            breakers=self.breakers,
        )
        try:
            outcome = await attempt(
                definition, ctx, task, self.threads, self.settings.max_result_bytes
            )
            # Jitter, not security: a PRNG is right here.
            policy = (definition.retry if definition else None) or self.policy
            finish = decide(outcome, task, policy, datetime.now(UTC), random.random())  # noqa: S311
            slot.finishing = True  # the heartbeat no longer cancels it (leases.Inflight)
            self.meter.ended(task, finish)
            if self.member is not None:
                self.member.attempt_ended()  # past --max-tasks-per-child: retire
            if outcome.kind is OutcomeKind.POSTPONED:  # a breaker is open: no attempt spent
                ctx.log.info("attempt postponed", reason=outcome.error)
            elif outcome.kind is not OutcomeKind.COMPLETED:
                ctx.log.warning(
                    "attempt failed",
                    outcome=str(outcome.kind),
                    error=outcome.error,
                    next_status=str(finish.status),
                )
            if tx.active:
                await self._finish_with_transaction(finish, slot, tx)
            else:
                self.completer.put(finish, slot.entry)
        except Unavailable as exc:
            # PostgreSQL went away under the handler's own transaction: nothing of the attempt
            # is recorded, so the lease runs out and the task runs again (at least once).
            ctx.log.warning("attempt abandoned: store unavailable", error=str(exc))
            await asyncio.shield(tx.settle(commit=False))
            self._free(task.id)
        except BaseException:
            await asyncio.shield(tx.settle(commit=False))
            self._free(task.id)
            raise

    async def _finish_with_transaction(
        self, finish: Finish, slot: Inflight, tx: AttemptTransaction
    ) -> None:
        """The handler wrote through ctx.transaction(): its writes and the task's completion
        commit together, or neither does (a fenced-out attempt rolls back)."""
        if finish.status is not TaskStatus.COMPLETED:
            await tx.settle(commit=False)
            self.completer.put(finish, slot.entry)
            return
        try:
            ok = await self.store.finish([finish], conn=tx.conn, worker=self.name)
            await tx.settle(commit=bool(ok))
        except Unavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - refused (e.g. the handler left it aborted)
            await tx.settle(commit=False)
            self.completer.put(refused(finish, exc), slot.entry)
            return
        if ok:
            await self.completer.ack_quietly([slot.entry])
        self.completer.written += 1
        self._free(finish.task_id)

    def _free(self, task_id: UUID) -> None:
        slot = self.inflight.pop(task_id, None)
        if slot is not None:
            self.slots.give_back(slot.task.tenant_id)
            self.slot_freed.set()

    async def _drain(self) -> None:
        """Graceful stop: let running attempts finish within the grace, hand the rest back."""
        handles = [s.handle for s in self.inflight.values() if s.handle is not None]
        if handles:
            log.info("draining", running=len(handles), grace_s=self.settings.shutdown_grace_s)
            await asyncio.wait(handles, timeout=self.settings.shutdown_grace_s)
        leftovers = [s for s in self.inflight.values() if s.handle and not s.handle.done()]
        for s in leftovers:
            s.handle.cancel()  # type: ignore[union-attr]
        await asyncio.gather(*(s.handle for s in leftovers if s.handle), return_exceptions=True)
        try:
            if leftovers:
                await self.store.release([(s.task.id, s.task.lease_epoch) for s in leftovers])
                await self.completer.ack_quietly([s.entry for s in leftovers])
            if self.buffer:
                await self.store.unpublish([e.task_id for e in self.buffer])
                await self.consumer.ack(list(self.buffer))
        except Unavailable as exc:
            log.warning("could not hand tasks back; they return after the lease", error=str(exc))
        await self.completer.join(self.settings.shutdown_grace_s)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
