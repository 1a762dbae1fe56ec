"""A worker as a member of a supervised pool (taskstream/pool): every second, from its event
loop, it tells the supervisor how it is (pool/status.py), so a loop that stops turning is seen
and the child replaced; and past ``--max-tasks-per-child`` or ``--max-memory-mb`` it retires:
it says so in its status (the supervisor starts its replacement at once), then stops reading,
finishes what runs and exits 0, as on SIGTERM.

Tasks are counted as their attempts end, so with ``--concurrency C`` a child runs at most
``max_tasks + C - 1`` (those already running when it reached the limit finish). Memory is
looked at once a second."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Protocol
from uuid import UUID

import structlog

from ..broker.backlog import waiting
from ..broker.consumer import Consumer
from ..core.errors import BrokerRefused, BrokerUnavailable
from ..pool.policy import Limits, retire_reason
from ..pool.status import DIR_ENV, ChildStatus, limits_from_env, rss_bytes, write
from .leases import Inflight

log = structlog.get_logger("taskstream.worker")
BEAT_EVERY_S = 1.0
WAITING_EVERY_S = 2.0  # a pipeline of two commands per served stream; the pool acts in seconds
WAITING_TIMEOUT_S = 1.0


class Pooled(Protocol):
    """The worker, as its membership sees it."""

    concurrency: int
    inflight: dict[UUID, Inflight]
    consumer: Consumer

    @property
    def degraded(self) -> bool: ...


class Member:
    def __init__(self, folder: Path, limits: Limits) -> None:
        self.folder = folder
        self.limits = limits
        self.done = 0
        self.retiring: str | None = None
        self._stop: asyncio.Event | None = None
        self._waiting: int | None = None
        self._waiting_at = -WAITING_EVERY_S
        self._worker: Pooled | None = None

    @classmethod
    def from_env(cls) -> Member | None:
        """A member when a supervisor named its folder; None for a worker on its own."""
        folder = os.environ.get(DIR_ENV)
        return cls(Path(folder), limits_from_env()) if folder else None

    def attempt_ended(self) -> None:
        self.done += 1
        if self.retiring is None and (reason := retire_reason(self.done, None, self.limits)):
            self._retire(reason)

    async def run(self, worker: Pooled, stop: asyncio.Event) -> None:
        """Beat until cancelled (after the drain: a draining child beats too)."""
        self._worker, self._stop = worker, stop
        if self.retiring is not None:
            stop.set()
        while True:
            await self._measure_waiting(worker)
            rss = rss_bytes()
            if self.retiring is None and (reason := retire_reason(self.done, rss, self.limits)):
                self._retire(reason, rss)
            else:
                self._beat(rss)
            await asyncio.sleep(BEAT_EVERY_S)

    async def _measure_waiting(self, worker: Pooled) -> None:
        now = time.monotonic()
        if now - self._waiting_at < WAITING_EVERY_S:
            return
        self._waiting_at = now
        if worker.degraded:
            self._waiting = None  # Redis is down: nobody knows
            return
        consumer = worker.consumer
        measure = waiting(consumer.redis, consumer.keys.group, consumer.all_streams)
        try:  # bounded: a slow Redis must not silence the beat (the supervisor would kill us)
            self._waiting = await asyncio.wait_for(measure, WAITING_TIMEOUT_S)
        except (BrokerUnavailable, BrokerRefused, TimeoutError):
            self._waiting = None

    def _retire(self, reason: str, rss: int | None = None) -> None:
        self.retiring = reason
        rss = rss if rss is not None else rss_bytes()
        log.info(
            "retiring: finishing running tasks, then exiting for a fresh process",
            reason=reason, tasks_done=self.done, rss_bytes=rss,
            max_tasks=self.limits.max_tasks, max_memory_mb=self.limits.max_memory_mb,
        )  # fmt: skip
        self._beat(rss)  # the supervisor starts our replacement on reading it
        if self._stop is not None:
            self._stop.set()

    def _beat(self, rss: int | None) -> None:
        worker = self._worker
        if worker is None:
            return  # not running yet: run() beats first thing
        status = ChildStatus(
            pid=os.getpid(), beat_s=time.monotonic(), slots=worker.concurrency,
            busy=len(worker.inflight), done=self.done, rss_bytes=rss, waiting=self._waiting,
            retiring=self.retiring,
        )  # fmt: skip
        with contextlib.suppress(OSError):  # the supervisor's folder went: it is stopping
            write(self.folder, status)
