"""Request and response bodies. Separate from core models: the wire format can evolve without
touching the store, and the store's fields never leak by accident."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast
from uuid import UUID

import msgspec

from ..core.models import TaskRecord, TaskStatus

_NULL = msgspec.Raw(b"null")
PriorityName = Literal["critical", "high", "normal", "low"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class SubmitTask(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Name
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    queue: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    priority: PriorityName = "normal"
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    run_at: datetime | None = None
    delay_s: Annotated[float, msgspec.Meta(ge=0, le=366 * 86_400)] | None = None
    visibility_timeout_s: Annotated[float, msgspec.Meta(ge=1, le=86_400)] | None = None
    region: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class SubmitBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    tasks: Annotated[list[SubmitTask], msgspec.Meta(min_length=1, max_length=1000)]


class TaskOut(msgspec.Struct, kw_only=True):
    id: UUID
    type: str
    queue: str
    priority: PriorityName
    status: TaskStatus
    payload: msgspec.Raw
    # Raw, never None: "any JSON" already includes null, and `Raw | None` made the schema a
    # oneOf that a null result matches twice (schemathesis found it).
    result: msgspec.Raw
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
    region: str | None  # where it runs: the submitted region, else its tenant's home region

    @classmethod
    def of(cls, t: TaskRecord) -> TaskOut:
        return cls(
            id=t.id,
            type=t.type,
            queue=t.queue,
            priority=cast(PriorityName, t.priority.label),
            status=t.status,
            payload=t.payload,
            result=_NULL if t.result is None else t.result,
            last_error=t.last_error,
            attempts=t.attempts,
            max_attempts=t.max_attempts,
            timeout_s=t.timeout_s,
            idempotency_key=t.idempotency_key,
            correlation_id=t.correlation_id,
            run_at=t.run_at,
            created_at=t.created_at,
            started_at=t.started_at,
            finished_at=t.finished_at,
            region=t.region,
        )


class BatchItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    status: int  # 201 created, 200 existing (idempotency key), 409 key reused with another body
    task: TaskOut | None = None
    code: str | None = None
    detail: str | None = None


class BatchOut(msgspec.Struct, kw_only=True):
    items: list[BatchItem]


class TaskPage(msgspec.Struct, kw_only=True):
    items: list[TaskOut]
    next_cursor: str | None


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, plus a stable machine-readable ``code``."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = None


ReadyStatus = Literal["ready", "degraded", "unavailable"]


class Leader(msgspec.Struct, kw_only=True):
    """Who holds a scheduler lease (``leader`` None: nobody yet)."""

    leader: str | None
    epoch: int
    lease_expires_in_s: float


class Readiness(msgspec.Struct, kw_only=True):
    """``GET /readyz``: 200 when PostgreSQL answers (Redis down is "degraded"), else 503."""

    status: ReadyStatus
    checks: dict[str, str]  # "ok" or what failed, per dependency
    leaders: dict[str, Leader]  # by lease name
