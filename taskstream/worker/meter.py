"""What the worker counts for ``/metrics`` (names in observability/metrics.WORKER): a few dict
updates per attempt, rendered only when scraped."""

from __future__ import annotations

import time
from typing import Any

from ..core.models import ClaimedTask, Finish, TaskStatus
from ..observability.metrics import WORKER
from ..observability.stats import Stats

ENDED = {TaskStatus.COMPLETED: "completed", TaskStatus.SCHEDULED: "retry",
         TaskStatus.FAILED: "failed"}  # fmt: skip


class Meter:
    def __init__(self, concurrency: int, counting: bool = True) -> None:
        self.stats = Stats(WORKER.values())
        self.concurrency = concurrency
        self.busy = 0
        if not counting:  # TASKSTREAM_METRICS=false: slots and degraded mode only
            self.started = self.ended = _nothing  # type: ignore[method-assign, assignment]

    def started(self, task: ClaimedTask) -> None:
        due = max(task.created_unix, task.run_unix)
        self.stats.observe(
            "task_pickup_latency_seconds", (task.queue,), max(0.0, time.time() - due)
        )

    def ended(self, task: ClaimedTask, finish: Finish) -> None:
        if finish.outcome == "postponed":
            return  # not an attempt: a breaker held it back (counted in Redis, per breaker)
        status = ENDED.get(finish.status, str(finish.status))
        self.stats.count("tasks_completed_total", (task.type, task.queue, status))
        if finish.status is TaskStatus.SCHEDULED:
            self.stats.count("task_retries_total", (task.type, task.queue))
        if finish.duration_s is not None:
            self.stats.observe("task_duration_seconds", (task.type,), finish.duration_s)

    def snapshot(self, busy: int, degraded: bool) -> dict[str, Any]:
        self.stats.set("worker_degraded", (), 1 if degraded else 0)
        self.stats.set("worker_slots", ("busy",), busy)
        self.stats.set("worker_slots", ("free",), max(0, self.concurrency - busy))
        return self.stats.snapshot()


def _nothing(*_: Any) -> None:
    return None
