"""The dead-letter queue (failed tasks), replays, and a task's attempt history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from ..core.errors import Conflict
from ..core.rbac import Action
from .schemas import TaskOut, TaskPage
from .tasks import decode_body, page_args, parse_task_id, to_json


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


@get("/v1/dead-letters", summary="Failed tasks (the dead-letter queue), newest first")
async def list_dead_letters(
    request: Request[Any, Any, Any],
    state: State,
    type: FromQuery[str | None] = None,  # noqa: A002 - the query parameter's name
    queue: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    who = await state.auth.principal(request, Action.READ)
    rows = await state.tasks.list_dead(
        who.tenant_id, task_type=type, queue=queue, before=page_args(limit, cursor), limit=limit
    )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return to_json(TaskPage(items=[TaskOut.of(r) for r in rows], next_cursor=next_cursor))


@post("/v1/tasks/{task_id:str}/retry", summary="Replay one failed task", status_code=200)
async def retry_task(
    request: Request[Any, Any, Any], state: State, task_id: FromPath[str]
) -> Response[bytes]:
    who = await state.auth.principal(request, Action.OPERATE)
    tid = parse_task_id(task_id)
    replayed = await state.tasks.replay(
        who.tenant_id, ids=[tid], task_type=None, queue=None, limit=1, by=who.key_prefix
    )
    if not replayed:
        current = await state.tasks.get(who.tenant_id, tid)  # 404 if missing / other tenant
        raise Conflict(
            f"only failed tasks can be retried; this one is {current.status}",
            code="invalid_state",
        )
    await state.intake.publish_now(replayed)
    return to_json(TaskOut.of(replayed[0]))


@post("/v1/dead-letters/replay", summary="Replay failed tasks matching a filter", status_code=200)
async def replay_dead_letters(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    who = await state.auth.principal(request, Action.OPERATE)
    f = await decode_body(request, ReplayFilter)
    replayed = await state.tasks.replay(
        who.tenant_id,
        ids=f.ids,
        task_type=f.type,
        queue=f.queue,
        limit=f.limit,
        by=who.key_prefix,
    )
    await state.intake.publish_now(replayed)
    return to_json(ReplayOut(replayed=len(replayed), items=[TaskOut.of(t) for t in replayed]))


@get("/v1/tasks/{task_id:str}/attempts", summary="A task's attempt history")
async def list_attempts(
    request: Request[Any, Any, Any], state: State, task_id: FromPath[str]
) -> Response[bytes]:
    who = await state.auth.principal(request, Action.READ)
    rows = await state.tasks.attempts(who.tenant_id, parse_task_id(task_id))
    return to_json(AttemptsOut(items=[msgspec.convert(r, AttemptOut) for r in rows]))


ROUTES = [list_dead_letters, retry_task, replay_dead_letters, list_attempts]
