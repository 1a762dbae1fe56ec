"""Task vocabulary shared by every room: priorities, statuses and the task record."""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import msgspec

from .audit import Entry


class Priority(enum.IntEnum):
    """Lower value runs first. Stored as a smallint; shown by name."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Priority:
        """``"high"`` -> ``Priority.HIGH``; raises ``KeyError`` for anything else."""
        return cls[name.upper()]


class TaskStatus(enum.StrEnum):
    PENDING = "pending"  # ready: waiting for a worker
    SCHEDULED = "scheduled"  # waiting for run_at (delay or retry backoff)
    PROCESSING = "processing"  # leased by a worker
    COMPLETED = "completed"
    FAILED = "failed"  # out of attempts, or Fail(): the dead-letter queue
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class TaskRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A task as the store knows it (the API maps it to its own response schema)."""

    id: UUID
    tenant_id: UUID
    type: str
    queue: str
    priority: Priority
    status: TaskStatus
    payload: msgspec.Raw  # JSON text as stored
    result: msgspec.Raw | None
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


class NewTask(msgspec.Struct, frozen=True, kw_only=True):
    """A validated submission, ready to insert. ``payload_json`` is the canonical JSON text."""

    id: UUID
    tenant_id: UUID
    type: str
    queue: str
    priority: Priority
    payload_json: bytes
    max_attempts: int
    timeout_s: float
    idempotency_key: str | None
    request_hash: bytes | None
    correlation_id: str | None
    run_at: datetime | None  # None: due now (status pending)
    visibility_timeout_s: float | None = None  # None: the deployment's default
    audit: Entry | None = None  # recorded in the audit log with the task, when created
    region: str | None = None  # None: the tenant's home region (if it has one)
    trace_context: str | None = None  # the submit span's W3C traceparent (tracing on)


class Dispatch(msgspec.Struct, frozen=True, array_like=True):
    """What a stream entry carries and where it goes: ids only, never the payload."""

    task_id: UUID
    tenant_id: UUID
    queue: str
    priority: Priority
    region: str | None = None  # names the streams: each region has its own


class ClaimedTask(msgspec.Struct, frozen=True, kw_only=True):
    """A task leased to a worker; ``lease_epoch`` is the fencing token for every later write."""

    id: UUID
    tenant_id: UUID
    type: str
    queue: str
    payload_json: str
    attempt: int
    max_attempts: int
    timeout_s: float
    lease_epoch: int
    idempotency_key: str | None
    correlation_id: str | None
    created_unix: float
    run_unix: float
    lease_s: float  # this task's visibility timeout
    unreadable: str | None = None  # why the payload did not open (a missing or wrong key)
    trace_context: str | None = None  # the submit's W3C traceparent: attempts join its trace


class Finish(msgspec.Struct, frozen=True, kw_only=True):
    """The end of one attempt, written with compare-and-set on ``(status, lease_epoch)``."""

    task_id: UUID
    lease_epoch: int
    status: TaskStatus  # completed | scheduled (retry) | failed
    outcome: str = "completed"  # what the attempt came to (see core.outcomes.OutcomeKind)
    result_json: str | None = None
    error: str | None = None
    run_at: datetime | None = None
    duration_s: float | None = None
