"""`/v1/tasks` routes."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from ..core.errors import Conflict, InvalidRequest, NotFound, ProblemError, Unprocessable
from ..core.models import TaskStatus
from ..core.rbac import Action
from ..observability.metrics import TASKS_SUBMITTED
from .intake import build, now_utc
from .schemas import BatchItem, BatchOut, SubmitBatch, SubmitTask, TaskOut, TaskPage

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
JSON = "application/json"


def to_json(value: Any, status: int = 200) -> Response[bytes]:
    return Response(_encode(value), status_code=status, media_type=JSON)


async def decode_body(request: Request[Any, Any, Any], kind: type[T]) -> T:
    raw = await request.body()
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        result: T = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise Unprocessable(str(exc), code="invalid_body") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}", code="malformed_json") from None
    return result


def page_args(limit: int, cursor: str | None) -> UUID | None:
    """Check a keyset page request; returns the id to continue before."""
    if not 1 <= limit <= 500:
        raise InvalidRequest("limit must be between 1 and 500", code="invalid_parameter")
    try:
        return UUID(cursor) if cursor else None
    except ValueError:
        raise InvalidRequest("malformed cursor", code="invalid_cursor") from None


def parse_task_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("task not found", code="task_not_found") from None


def _correlation_id(request: Request[Any, Any, Any]) -> str | None:
    value = request.headers.get("x-correlation-id")
    return value[:128] if value else None


@post("/v1/tasks", summary="Submit a task", status_code=201)
async def submit_task(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    who = await state.auth.principal(request, Action.SUBMIT)
    body = await decode_body(request, SubmitTask)
    new = await build(
        body, who.tenant_id, state.catalog, state.settings, _correlation_id(request), now_utc()
    )
    (result,) = await state.intake.submit([new])
    TASKS_SUBMITTED.inc(int(result.created))
    if result.conflict:
        raise Conflict(
            "idempotency key was already used with a different request body",
            code="idempotency_conflict",
            task_id=str(result.task.id),
        )
    return to_json(TaskOut.of(result.task), 201 if result.created else 200)


@post("/v1/tasks/batch", summary="Submit up to 1,000 tasks", status_code=201)
async def submit_batch(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    """All items are validated first: if any is invalid, nothing is written (422 lists them)."""
    who = await state.auth.principal(request, Action.SUBMIT)
    batch = await decode_body(request, SubmitBatch)
    now, correlation = now_utc(), _correlation_id(request)
    news, errors = [], []
    for index, item in enumerate(batch.tasks):
        try:
            news.append(
                await build(item, who.tenant_id, state.catalog, state.settings, correlation, now)
            )
        except ProblemError as exc:
            errors.append({"index": index, "code": exc.code, "message": exc.detail})
    if errors:
        raise Unprocessable(
            f"{len(errors)} of {len(batch.tasks)} tasks are invalid; none was submitted",
            code="invalid_batch",
            errors=errors,
        )
    results = await state.intake.submit(news)
    TASKS_SUBMITTED.inc(sum(r.created for r in results))
    items = [
        BatchItem(
            status=409,
            code="idempotency_conflict",
            task=TaskOut.of(r.task),
            detail="idempotency key was already used with a different request body",
        )
        if r.conflict
        else BatchItem(status=201 if r.created else 200, task=TaskOut.of(r.task))
        for r in results
    ]
    return to_json(BatchOut(items=items), 201)


@get("/v1/tasks/{task_id:str}", summary="Get a task")
async def get_task(
    request: Request[Any, Any, Any], state: State, task_id: FromPath[str]
) -> Response[bytes]:
    who = await state.auth.principal(request, Action.READ)
    return to_json(TaskOut.of(await state.tasks.get(who.tenant_id, parse_task_id(task_id))))


@get("/v1/tasks", summary="List tasks, newest first (keyset pagination)")
async def list_tasks(
    request: Request[Any, Any, Any],
    state: State,
    status: FromQuery[str | None] = None,
    type: FromQuery[str | None] = None,  # noqa: A002 - the query parameter's name
    queue: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str | None] = None,
) -> Response[bytes]:
    who = await state.auth.principal(request, Action.READ)
    if status is not None and status not in TaskStatus.__members__.values():
        raise InvalidRequest(f"unknown status {status!r}", code="invalid_parameter")
    before = page_args(limit, cursor)
    rows = await state.tasks.list_tasks(
        who.tenant_id,
        status=TaskStatus(status) if status else None,
        type=type,
        queue=queue,
        before=before,
        limit=limit,
    )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return to_json(TaskPage(items=[TaskOut.of(r) for r in rows], next_cursor=next_cursor))


@post(
    "/v1/tasks/{task_id:str}/cancel", summary="Cancel a pending or scheduled task", status_code=200
)
async def cancel_task(
    request: Request[Any, Any, Any], state: State, task_id: FromPath[str]
) -> Response[bytes]:
    who = await state.auth.principal(request, Action.OPERATE)
    return to_json(TaskOut.of(await state.tasks.cancel(who.tenant_id, parse_task_id(task_id))))


ROUTES = [submit_task, submit_batch, get_task, list_tasks, cancel_task]
