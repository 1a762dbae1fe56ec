"""The dead-letter queue (failed tasks), replays, and a task's attempt history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, get, post
from litestar.datastructures import State

from ..core.errors import Conflict
from ..core.models import TaskRecord
from ..core.rbac import Action
from ..store.tenants import Principal
from .auth import actor
from .body import decode_body
from .intake import now_utc
from .openapi import BEARER, problems, request_body
from .schemas import TaskOut, TaskPage
from .tasks import Cursor, Filter, Limit, TaskId, cursor_id, next_cursor, parse_task_id


class ReplayFilter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which dead letters to replay: any combination; ``limit`` bounds one call."""

    ids: Annotated[list[UUID], msgspec.Meta(max_length=1000)] | None = None
    type: str | None = None
    queue: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class ReplayOut(msgspec.Struct, kw_only=True):
    replayed: int
    items: list[TaskOut]


class AttemptOut(msgspec.Struct, kw_only=True):
    attempt: int
    outcome: str
    error: str | None
    worker: str | None
    duration_s: float | None
    finished_at: datetime


class AttemptsOut(msgspec.Struct, kw_only=True):
    items: list[AttemptOut]


@get(
    "/v1/dead-letters",
    summary="Failed tasks (the dead-letter queue), newest first",
    responses=problems(),
    security=BEARER,
)
async def list_dead_letters(
    request: Request[Any, Any, Any],
    state: State,
    type: Filter = None,  # noqa: A002 - the query parameter's name
    queue: Filter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> TaskPage:
    who = await state.auth.principal(request, Action.READ)
    rows = await state.tasks.list_dead(
        who.tenant_id, task_type=type, queue=queue, before=cursor_id(cursor), limit=limit
    )
    return TaskPage(items=[TaskOut.of(r) for r in rows], next_cursor=next_cursor(rows, limit))


@post(
    "/v1/tasks/{task_id:str}/retry",
    summary="Replay one failed task",
    status_code=200,
    responses=problems(403, 404, 409),
    security=BEARER,
)
async def retry_task(request: Request[Any, Any, Any], state: State, task_id: TaskId) -> TaskOut:
    who = await state.auth.principal(request, Action.OPERATE)
    return TaskOut.of(await replay_one(request, state, who, parse_task_id(task_id)))


async def replay_one(
    request: Request[Any, Any, Any], state: State, who: Principal, tid: UUID
) -> TaskRecord:
    """Replay one failed task (audited as ``task.retry``) and publish it; 404 if it is not the
    tenant's, 409 if it is not failed. The REST route's and the dashboard's."""
    replayed = await state.tasks.replay(
        who.tenant_id, ids=[tid], task_type=None, queue=None, limit=1, by=who.key_prefix,
        audit=(actor(who, request, now_utc()), "task.retry"),
    )  # fmt: skip
    if not replayed:
        current = await state.tasks.get(who.tenant_id, tid)  # 404 if missing / other tenant
        raise Conflict(
            f"only failed tasks can be retried; this one is {current.status}",
            code="invalid_state",
        )
    await state.intake.publish_now(replayed)
    record: TaskRecord = replayed[0]
    return record


@post(
    "/v1/dead-letters/replay",
    summary="Replay failed tasks matching a filter",
    status_code=200,
    opt=request_body(ReplayFilter),
    responses=problems(403, 413, 415, 422),
    security=BEARER,
)
async def replay_dead_letters(request: Request[Any, Any, Any], state: State) -> ReplayOut:
    who = await state.auth.principal(request, Action.OPERATE)
    f = await decode_body(request, ReplayFilter)
    replayed = await state.tasks.replay(
        who.tenant_id,
        ids=f.ids,
        task_type=f.type,
        queue=f.queue,
        limit=f.limit,
        by=who.key_prefix,
        audit=(actor(who, request, now_utc()), "dead_letter.replay"),
    )
    await state.intake.publish_now(replayed)
    return ReplayOut(replayed=len(replayed), items=[TaskOut.of(t) for t in replayed])


@get(
    "/v1/tasks/{task_id:str}/attempts",
    summary="A task's attempt history",
    responses=problems(404),
    security=BEARER,
)
async def list_attempts(
    request: Request[Any, Any, Any], state: State, task_id: TaskId
) -> AttemptsOut:
    who = await state.auth.principal(request, Action.READ)
    rows = await state.tasks.attempts(who.tenant_id, parse_task_id(task_id))
    return AttemptsOut(items=[msgspec.convert(r, AttemptOut) for r in rows])


ROUTES = [list_dead_letters, retry_task, replay_dead_letters, list_attempts]
