"""Retention (leader only): finished tasks older than their tenant's retention are deleted with
their attempts and replays, every ``retention_interval_s``, in batches of short transactions
that lock only the finished rows they delete (skipping any held elsewhere), so nothing on the
hot path waits for a purge. Unfinished tasks are never deleted, however old.

Batched deletes, not time partitions: a finished task's age is its ``finished_at``, not its
creation (a task scheduled a month ahead, or retried for days, finishes long after it was
created), so a partition by creation time could not be dropped whole without deleting rows still
inside their retention; and the purge keeps up with the drain by a wide margin (README, bench).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from ..core.config import Settings
from ..store.retention import RetentionStore
from .leader import Leader
from .passes import every

log = structlog.get_logger("taskstream.scheduler")
BATCH = 1000
PROGRESS_S = 10.0  # a long purge says how far it got this often


class Pruner:
    def __init__(
        self,
        settings: Settings,
        store: RetentionStore,
        leader: Leader,
        *,
        batch: int = BATCH,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.leader = leader
        self.batch = batch
        self.now = now

    async def run_once(self) -> int:
        """One pass over every tenant (if this scheduler leads); returns the tasks deleted."""
        if not self.leader.is_leader:
            return 0
        started = time.monotonic()
        said = started
        deleted = 0
        now = self.now()
        for tenant_id, days in await self.store.retention_days(self.settings.retention_days):
            cutoff = now - timedelta(days=days)
            while True:
                gone = await self.store.purge(tenant_id, cutoff, self.batch)
                deleted += gone
                if time.monotonic() - said >= PROGRESS_S:
                    said = time.monotonic()
                    log.info("purging finished tasks", deleted=deleted)
                if gone < self.batch or not self.leader.is_leader:
                    break
                await asyncio.sleep(0)  # a long purge lets the scheduler's other loops run
        if deleted:
            took = time.monotonic() - started
            log.info(
                "purged finished tasks past their retention",
                deleted=deleted,
                seconds=round(took, 2),
                per_s=round(deleted / took) if took else None,
            )
        return deleted

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.settings.retention_interval_s, self.run_once, "retention", stop)
