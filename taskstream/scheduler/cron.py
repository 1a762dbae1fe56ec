"""Firing cron schedules (leader only). Each fire is a task whose idempotency key is the
schedule id plus the fire time, so a retry, a deposed leader or a second scheduler can never
enqueue the same fire twice; the next run time is persisted in the same transaction."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog

from ..broker.producer import Producer
from ..core.audit import Actor
from ..core.errors import Unavailable
from ..core.ids import uuid7
from ..core.models import Dispatch, NewTask, Priority, TaskRecord, TaskStatus
from ..core.schedule import Misfire, plan
from ..observability import tracing
from ..store.schedules import ScheduleRow, ScheduleStore
from ..store.tasks import TaskStore
from .leader import Leader
from .passes import every

log = structlog.get_logger("taskstream.scheduler")
LEADER_ROLE = "cron"
TICK_S = 0.1
BATCH = 100


class TaskTemplate(msgspec.Struct, kw_only=True):
    """A schedule's task, with the type's defaults resolved when the schedule was saved."""

    type: str
    payload: msgspec.Raw
    queue: str
    priority: str
    timeout_s: float
    max_attempts: int


_decode_template = msgspec.json.Decoder(TaskTemplate).decode


def fire_key(row: ScheduleRow, moment: datetime) -> str:
    return f"schedule:{row.id}:{moment.astimezone(UTC).isoformat()}"


def fire_tasks(row: ScheduleRow, fires: list[datetime]) -> list[NewTask]:
    t = _decode_template(row.task)
    by = Actor(name=f"schedule:{row.name}", request_id=None, at=datetime.now(UTC))
    out = []
    for moment in fires:
        with tracing.send(t.queue, 1, t.type) as parent:  # each fire a trace of its own
            out.append(_fire(row, t, fire_key(row, moment), by, parent))
    return out


def _fire(row: ScheduleRow, t: TaskTemplate, key: str, by: Actor, parent: str | None) -> NewTask:
    task_id = uuid7()
    return NewTask(
        id=task_id,
        tenant_id=row.tenant_id,
        type=t.type,
        queue=t.queue,
        priority=Priority.parse(t.priority),
        payload_json=bytes(t.payload),
        max_attempts=t.max_attempts,
        timeout_s=t.timeout_s,
        idempotency_key=key,
        request_hash=hashlib.sha256(key.encode()).digest(),
        # Each fire a correlation id of its own, naming the schedule.
        correlation_id=f"schedule:{row.name}:{os.urandom(6).hex()}",
        run_at=None,
        audit=by.entry(row.tenant_id, "task.submit", str(task_id)),
        trace_context=parent,
    )


class Cron:
    def __init__(
        self, schedules: ScheduleStore, tasks: TaskStore, producer: Producer, leader: Leader
    ) -> None:
        self.schedules = schedules
        self.tasks = tasks
        self.producer = producer
        self.leader = leader
        self.fired = 0  # tasks created, for /metrics
        self.lag_s = 0.0  # how late the last fire ran after its time

    async def run_once(self, now: datetime | None = None) -> int:
        """Fire every due schedule; returns the number of tasks enqueued."""
        if not self.leader.is_leader:
            return 0
        moment = now or datetime.now(UTC)
        created: list[TaskRecord] = []

        async def fire(conn: Any, row: ScheduleRow) -> None:
            fires, upcoming = plan(
                row.cron,
                row.timezone,
                row.next_run_at,
                moment,
                Misfire(row.misfire),
                row.misfire_grace_s,
                row.max_catch_up,
            )
            if fires:
                inserted = await self.tasks.insert_many(fire_tasks(row, fires), conn=conn)
                created.extend(i.task for i in inserted if i.created)
                for i in inserted:
                    log.info(
                        "schedule fired",
                        schedule=row.name,
                        task_id=str(i.task.id),
                        correlation_id=i.task.correlation_id,
                        created=i.created,
                    )
            lag_ms = (moment - fires[-1]).total_seconds() * 1000 if fires else None
            if lag_ms is not None:
                self.lag_s = lag_ms / 1000
            await ScheduleStore.advance(
                conn, row.id, upcoming, fires[-1] if fires else None, lag_ms
            )

        await self.schedules.fire_due(self.leader.lease, BATCH, fire)
        self.fired += len(created)
        await self._publish([t for t in created if t.status is TaskStatus.PENDING])
        return len(created)

    async def _publish(self, tasks: list[TaskRecord]) -> None:
        if not tasks:
            return
        try:
            await self.producer.publish(
                [Dispatch(t.id, t.tenant_id, t.queue, t.priority, t.region) for t in tasks]
            )
            await self.tasks.mark_published([t.id for t in tasks])
        except Unavailable as exc:  # committed rows: the relay publishes them
            log.warning("publish of fired tasks deferred", error=str(exc), tasks=len(tasks))

    async def run(self, stop: asyncio.Event) -> None:
        await every(TICK_S, self.run_once, "cron", stop)  # a bad schedule stops no other
