"""`/v1/schedules`: cron schedules of a tenant."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from itertools import islice
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import PathParameter

from ..core.errors import NotFound, Unprocessable
from ..core.ids import uuid7
from ..core.rbac import Action
from ..core.schedule import (
    InvalidSchedule,
    fires_after,
    next_fire,
    shortest_interval_s,
    validate,
)
from ..store.schedules import ScheduleRow
from .auth import actor
from .body import decode_body
from .intake import build
from .openapi import BEARER, problems, request_body
from .schemas import Name, PriorityName, SubmitTask

# msgspec matches a pattern with re.search, where `$` also matches before a final newline: the
# newline is refused in ScheduleIn.__post_init__ (a `\Z` here would not mean the same to the
# schema's readers, JSON Schema patterns being ECMA-262).
NAME = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
ScheduleId = Annotated[
    str, PathParameter(description="A schedule id (UUID); any other text is a 404")
]
MisfireName = Literal["run_once", "run_all", "skip"]
_encode = msgspec.json.Encoder().encode


class TaskTemplateIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Name
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    queue: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    priority: PriorityName = "normal"
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None


class ScheduleIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: NAME
    cron: str
    task: TaskTemplateIn
    timezone: str = "UTC"
    misfire: MisfireName = "run_once"
    misfire_grace_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 60.0
    max_catch_up: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    paused: bool = False

    def __post_init__(self) -> None:
        if self.name.endswith("\n"):
            raise ValueError("a schedule name may not end in a newline")


class SchedulePatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    cron: str | msgspec.UnsetType = msgspec.UNSET
    timezone: str | msgspec.UnsetType = msgspec.UNSET
    task: TaskTemplateIn | msgspec.UnsetType = msgspec.UNSET
    misfire: MisfireName | msgspec.UnsetType = msgspec.UNSET
    misfire_grace_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    max_catch_up: Annotated[int, msgspec.Meta(ge=1, le=1000)] | msgspec.UnsetType = msgspec.UNSET
    paused: bool | msgspec.UnsetType = msgspec.UNSET


class ScheduleOut(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    cron: str
    timezone: str
    task: msgspec.Raw
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

    @classmethod
    def of(cls, r: ScheduleRow) -> ScheduleOut:
        upcoming: list[datetime] = []
        if not r.paused:  # the next run first (when still ahead), then the fires after it
            start = max(r.next_run_at, datetime.now(UTC))
            upcoming = [r.next_run_at] if start == r.next_run_at else []
            upcoming += islice(fires_after(r.cron, r.timezone, start), 5 - len(upcoming))
        return cls(
            id=r.id, name=r.name, cron=r.cron, timezone=r.timezone,
            task=msgspec.Raw(r.task.encode()), misfire=r.misfire,
            misfire_grace_s=r.misfire_grace_s, max_catch_up=r.max_catch_up, paused=r.paused,
            next_run_at=None if r.paused else r.next_run_at, next_runs=upcoming,
            last_run_at=r.last_run_at, last_lag_ms=r.last_lag_ms, created_at=r.created_at,
            updated_at=r.updated_at,
        )  # fmt: skip


class ScheduleList(msgspec.Struct, kw_only=True):
    items: list[ScheduleOut]


async def _check_cron(cron: str, timezone: str, min_interval_s: float | None) -> None:
    """422 ``invalid_schedule`` for what is not a schedule; with ``min_interval_s``, 422
    ``schedule_too_frequent`` for an expression that fires more often."""
    try:
        validate(cron, timezone)
        if min_interval_s is None:
            return
        # Off the event loop: an expression that fires once a day or less costs up to 0.2 s of
        # CPU (the walk over its days).
        interval_s = await asyncio.to_thread(shortest_interval_s, cron)
    except InvalidSchedule as exc:
        raise Unprocessable(str(exc), code="invalid_schedule") from None
    if interval_s < min_interval_s:
        raise Unprocessable(
            f"{cron!r} fires as often as every {interval_s} s; the shortest interval allowed "
            f"between two fires is {min_interval_s:g} s",
            code="schedule_too_frequent",
            interval_s=interval_s,
            min_interval_s=min_interval_s,
        )


async def _template(state: State, tenant_id: UUID, t: TaskTemplateIn) -> tuple[str, str]:
    """Validate the task like a submission; the template to store, with the type's defaults
    resolved, and its queue (recorded by the caller when the schedule is written)."""
    body = SubmitTask(
        type=t.type,
        payload=t.payload,
        queue=t.queue,
        priority=t.priority,
        timeout_s=t.timeout_s,
        max_attempts=t.max_attempts,
    )
    new = await build(body, tenant_id, state.catalog, state.settings, None, datetime.now(UTC))
    template = _encode({
        "type": new.type, "payload": msgspec.Raw(new.payload_json), "queue": new.queue,
        "priority": new.priority.label, "timeout_s": new.timeout_s,
        "max_attempts": new.max_attempts,
    })  # fmt: skip
    return template.decode(), new.queue


def _schedule_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("schedule not found", code="schedule_not_found") from None


@post(
    "/v1/schedules",
    summary="Create a cron schedule",
    status_code=201,
    response_description="The schedule, created",
    opt=request_body(ScheduleIn),
    responses=problems(403, 409, 413, 415, 422),
    security=BEARER,
)
async def create_schedule(request: Request[Any, Any, Any], state: State) -> ScheduleOut:
    who = await state.auth.principal(request, Action.OPERATE)
    body = await decode_body(request, ScheduleIn)
    await _check_cron(body.cron, body.timezone, state.settings.min_schedule_interval_s)
    task, queue = await _template(state, who.tenant_id, body.task)
    now = datetime.now(UTC)
    row = ScheduleRow(
        id=uuid7(), tenant_id=who.tenant_id, name=body.name, cron=body.cron,
        timezone=body.timezone, task=task,
        misfire=body.misfire, misfire_grace_s=body.misfire_grace_s,
        max_catch_up=body.max_catch_up, paused=body.paused,
        next_run_at=next_fire(body.cron, body.timezone, now), last_run_at=None,
        last_lag_ms=None, created_at=now, updated_at=now,
    )  # fmt: skip
    created = await state.schedules.create(
        row, queue=queue, max_per_tenant=state.settings.max_schedules_per_tenant,
        by=actor(who, request, now),
    )  # fmt: skip
    return ScheduleOut.of(created)


@get("/v1/schedules", summary="List schedules", responses=problems(), security=BEARER)
async def list_schedules(request: Request[Any, Any, Any], state: State) -> ScheduleList:
    who = await state.auth.principal(request, Action.READ)
    rows = await state.schedules.list_all(who.tenant_id)
    return ScheduleList(items=[ScheduleOut.of(r) for r in rows])


@get(
    "/v1/schedules/{schedule_id:str}",
    summary="Get a schedule with its next run times",
    responses=problems(404),
    security=BEARER,
)
async def get_schedule(
    request: Request[Any, Any, Any], state: State, schedule_id: ScheduleId
) -> ScheduleOut:
    who = await state.auth.principal(request, Action.READ)
    return ScheduleOut.of(await state.schedules.get(who.tenant_id, _schedule_id(schedule_id)))


@patch(
    "/v1/schedules/{schedule_id:str}",
    summary="Change, pause or resume a schedule",
    opt=request_body(SchedulePatch),
    responses=problems(403, 404, 413, 415, 422),
    security=BEARER,
)
async def patch_schedule(
    request: Request[Any, Any, Any], state: State, schedule_id: ScheduleId
) -> ScheduleOut:
    who = await state.auth.principal(request, Action.OPERATE)
    change = await decode_body(request, SchedulePatch)
    row = await state.schedules.get(who.tenant_id, _schedule_id(schedule_id))
    updates = {k: v for k, v in msgspec.structs.asdict(change).items()
               if v is not msgspec.UNSET and k != "task"}  # fmt: skip
    new = msgspec.structs.replace(row, **updates)
    # The floor holds for a new expression; one stored before the floor was raised can still
    # be paused, resumed or given another task.
    floor_s = state.settings.min_schedule_interval_s if new.cron != row.cron else None
    await _check_cron(new.cron, new.timezone, floor_s)
    if change.task is not msgspec.UNSET:
        task, queue = await _template(state, who.tenant_id, change.task)
        await state.tasks.upsert_queue(who.tenant_id, queue)
        new = msgspec.structs.replace(new, task=task)
    timing_changed = (new.cron, new.timezone) != (row.cron, row.timezone)
    if timing_changed or (row.paused and not new.paused):
        # A new expression, or a resume, starts from now: no catch-up for the paused time.
        new = msgspec.structs.replace(
            new, next_run_at=next_fire(new.cron, new.timezone, datetime.now(UTC))
        )
    action = ("schedule.pause" if new.paused and not row.paused
              else "schedule.resume" if row.paused and not new.paused
              else "schedule.update")  # fmt: skip
    by = actor(who, request, datetime.now(UTC))
    return ScheduleOut.of(await state.schedules.update(new, by=by, action=action))


@delete(
    "/v1/schedules/{schedule_id:str}",
    summary="Delete a schedule",
    status_code=204,
    responses=problems(403, 404),
    security=BEARER,
)
async def delete_schedule(
    request: Request[Any, Any, Any], state: State, schedule_id: ScheduleId
) -> None:
    who = await state.auth.principal(request, Action.OPERATE)
    by = actor(who, request, datetime.now(UTC))
    await state.schedules.delete(who.tenant_id, _schedule_id(schedule_id), by=by)


ROUTES = [create_schedule, list_schedules, get_schedule, patch_schedule, delete_schedule]
