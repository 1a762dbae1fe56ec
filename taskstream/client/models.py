"""What the API returns, as typed, immutable Structs (decoded by msgspec, never by hand).

Fields follow the API's responses (``taskstream/api/schemas.py`` and the route modules); a
field the API adds later is ignored until it is added here, so an older client keeps working
against a newer API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from ..core.models import TERMINAL_STATUSES, TaskStatus

Priority = Literal["critical", "high", "normal", "low"]


class Task(msgspec.Struct, frozen=True, kw_only=True):
    """A task as the API shows it. ``payload`` and ``result`` are decoded JSON."""

    id: UUID
    type: str
    queue: str
    priority: Priority
    status: TaskStatus
    payload: Any
    result: Any
    last_error: str | None
    attempts: int
    max_attempts: int
    timeout_s: float
    idempotency_key: str | None
    correlation_id: str | None
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    region: str | None = None

    @property
    def done(self) -> bool:
        """Completed, failed (in the dead-letter queue) or cancelled: it will not change."""
        return self.status in TERMINAL_STATUSES


DeadLetter = Task
"""A failed task: the dead-letter queue holds tasks, as the API shows them."""


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a keyset-paginated list; ``next_cursor`` None: the last page."""

    items: list[Task]
    next_cursor: str | None


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    """One item of a batch submit: 201 created, 200 the task its idempotency key already named,
    409 that key used before with another body (``code`` and ``detail`` say so)."""

    status: int
    task: Task | None = None
    code: str | None = None
    detail: str | None = None

    @property
    def created(self) -> bool:
        return self.status == 201


class BatchResult(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Submitted]


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One finished attempt of a task."""

    attempt: int
    outcome: str
    error: str | None
    worker: str | None
    duration_s: float | None
    finished_at: datetime


class Attempts(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Attempt]


class Queue(msgspec.Struct, frozen=True, kw_only=True):
    """A queue's depths: pending by priority, delayed, processing, dead."""

    queue: str
    pending: dict[str, int]
    scheduled: int
    processing: int
    dead: int
    oldest_pending_age_s: float | None


class Queues(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Queue]


class Worker(msgspec.Struct, frozen=True, kw_only=True):
    """A live worker process that serves some of the tenant's queues."""

    name: str
    host: str
    pid: int
    queues: list[str] | None
    concurrency: int
    running: int
    degraded: bool
    started_at: datetime
    last_seen: datetime


class Workers(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Worker]


class Replayed(msgspec.Struct, frozen=True, kw_only=True):
    """Failed tasks sent back to their queues (pending again)."""

    replayed: int
    items: list[Task]


class TaskTemplate(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The task a schedule submits at each fire (the API fills in the type's defaults)."""

    type: str
    payload: Any = msgspec.field(default_factory=dict)
    queue: str | None = None
    priority: Priority = "normal"
    timeout_s: float | None = None
    max_attempts: int | None = None


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """A cron schedule with its next fire times (none while paused)."""

    id: UUID
    name: str
    cron: str
    timezone: str
    task: TaskTemplate
    misfire: str
    misfire_grace_s: float
    max_catch_up: int
    paused: bool
    next_run_at: datetime | None
    next_runs: list[datetime]
    last_run_at: datetime | None
    last_lag_ms: float | None
    created_at: datetime
    updated_at: datetime


class Schedules(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Schedule]


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """An RFC 9457 problem as the API sends it."""

    status: int
    code: str
    detail: str
    errors: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = None
