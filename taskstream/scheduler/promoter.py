"""Moves due ``scheduled`` tasks to ``pending`` and publishes them; publishes ``pending`` rows
that have no stream entry; hands back tasks whose lease ran out long ago."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from uuid import UUID

import structlog

from ..broker.producer import Producer
from ..core.config import Settings
from ..core.errors import Unavailable
from ..store.tasks import TaskStore

log = structlog.get_logger("taskstream.scheduler")
BATCH = 2000
RESCUE_EVERY_S = 1.0


class Promoter:
    def __init__(self, settings: Settings, store: TaskStore, producer: Producer) -> None:
        self.settings = settings
        self.store = store
        self.producer = producer
        self._rescued_at = 0.0
        self.promoted = 0  # due tasks made pending, for /metrics

    async def run_once(self) -> int:
        """One pass; returns how many tasks it moved or published."""
        moved = 0
        published: list[tuple[list[UUID], datetime]] = []
        try:
            while True:  # keep going while full batches come back (a burst of due tasks)
                due = await self.store.promote_due(BATCH)
                if due:
                    # If this publish fails (or we die here), the rows are pending and
                    # unpublished: the relay below publishes them.
                    await self.producer.publish(due)
                    published.append(([d.task_id for d in due], datetime.now(UTC)))
                moved += len(due)
                self.promoted += len(due)
                if len(due) < BATCH:
                    break
        finally:
            # Bookkeeping after the burst, so the next batch is not kept waiting for it.
            for ids, at in published:
                await self.store.mark_published(ids, at)
        moved += await self.store.relay_unpublished(
            BATCH, self.settings.publish_grace_s, self.producer.publish
        )
        now = time.monotonic()
        if now - self._rescued_at >= RESCUE_EVERY_S:
            self._rescued_at = now
            moved += await self.reconcile()
            # Workers reclaim stale entries after one visibility timeout; this backstop waits a
            # second one, for tasks whose entry is gone (acked as a duplicate, or Redis lost it).
            rescued = await self.store.rescue_expired(BATCH, self.settings.visibility_timeout_s)
            if rescued:
                log.warning("rescued expired leases", count=len(rescued))
            moved += len(rescued)
        return moved

    async def reconcile(self) -> int:
        """If Redis lost its streams, every pending task needs a new entry: mark them
        unpublished and the relay publishes them again. Entries that did survive become
        duplicates, which workers ack when their claim finds the task already taken."""
        if not await self.producer.sentinel_was_missing():
            return 0
        count = await self.store.unpublish_pending()
        if count:
            log.warning("Redis lost its streams; republishing pending tasks", count=count)
        else:  # a new deployment, or data lost while nothing was waiting in the streams
            log.info("Redis sentinel was missing; nothing pending to republish")
        return count

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                moved = await self.run_once()
                failures = 0
            except Unavailable as exc:
                failures += 1
                moved = 0
                log.warning("promoter waiting for a dependency", error=str(exc))
            except Exception:  # a maintenance loop must outlive a bad batch; it is logged
                failures += 1
                moved = 0
                log.exception("promoter pass failed")
            pause = self.settings.promote_interval_s if not failures else min(0.2 * failures, 2)
            if moved == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
