"""Leader election with a lease and a fencing epoch in PostgreSQL.

The lease is renewed every `renew_s`, well inside its `ttl_s`; a killed or partitioned leader
is replaced once its lease expires (at most `ttl_s` + `renew_s`). Every write made as leader
re-checks the lease inside its own transaction (see ScheduleStore.fire_due), so a leader that
lost its lease without knowing (paused, partitioned) cannot write.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from ..core.errors import Unavailable
from ..store.schedules import LeaseStore

log = structlog.get_logger("taskstream.scheduler")


class Leader:
    def __init__(
        self,
        leases: LeaseStore,
        name: str,
        holder: str,
        *,
        ttl_s: float = 3.0,
        renew_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.clock = clock
        self.epoch: int | None = None
        self._valid_until = 0.0

    @property
    def is_leader(self) -> bool:
        """Our local belief; writes are fenced by the database regardless."""
        return self.epoch is not None and self.clock() < self._valid_until

    @property
    def lease(self) -> tuple[str, str, int]:
        assert self.epoch is not None
        return self.name, self.holder, self.epoch

    async def run_once(self) -> bool:
        """Take or renew the lease; returns whether we lead."""
        sent = self.clock()
        epoch = await self.leases.acquire(self.name, self.holder, self.ttl_s)
        was = self.epoch
        self.epoch = epoch
        self._valid_until = sent + self.ttl_s if epoch is not None else 0.0
        if epoch is not None and epoch != was:
            log.info("became leader", role=self.name, holder=self.holder, epoch=epoch)
        elif epoch is None and was is not None:
            log.warning("lost leadership", role=self.name, holder=self.holder)
        return epoch is not None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Unavailable as exc:
                self.epoch = None
                log.warning("leader election waiting for PostgreSQL", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.renew_s)
        if self.epoch is not None:  # hand over at once instead of after the TTL
            with contextlib.suppress(Unavailable):
                await self.leases.release(*self.lease)
            self.epoch = None
