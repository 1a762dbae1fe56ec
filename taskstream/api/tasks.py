"""`/v1/tasks` routes."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar, cast
from uuid import UUID

import msgspec
import structlog
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery, PathParameter, QueryParameter

from ..core.errors import Conflict, InvalidRequest, NotFound, ProblemError, Unprocessable
from ..core.models import NewTask, TaskStatus
from ..core.rbac import Action
from ..observability import logging, tracing
from ..observability.metrics import TASKS_SUBMITTED
from ..store.tasks import Inserted
from .auth import actor
from .body import decode_body
from .intake import build, now_utc
from .observe import correlation_id
from .openapi import BEARER, problems, request_body
from .schemas import BatchItem, BatchOut, SubmitBatch, SubmitTask, TaskOut, TaskPage

log = structlog.get_logger("taskstream.api")

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size")]
Cursor = Annotated[
    str | None, QueryParameter(description="`next_cursor` of the previous page: continue after it")
]
# A filter PostgreSQL can compare: no NUL (text cannot hold one) and bounded.
Filter = Annotated[str | None, QueryParameter(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
TaskId = Annotated[str, PathParameter(description="A task id (UUID); any other text is a 404")]
T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


def encoded(value: T, status_code: int) -> Response[T]:
    """``value`` as a JSON response, encoded here by msgspec. The hot routes answer this way:
    Litestar's generic rendering (serializer look-up, media-type match, header merging) cost a
    few microseconds more per request. The annotation still says ``T``, so the schema is typed;
    the content is bytes, which Litestar sends as they are."""
    return Response(cast(T, _encode(value)), status_code=status_code, media_type="application/json")


def cursor_id(cursor: str | None) -> UUID | None:
    """The id a keyset page continues before."""
    try:
        return UUID(cursor) if cursor else None
    except ValueError:
        raise InvalidRequest("malformed cursor", code="invalid_cursor") from None


def next_cursor(rows: list[Any], limit: int) -> str | None:
    return str(rows[-1].id) if len(rows) == limit else None


def parse_task_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("task not found", code="task_not_found") from None


def _correlation_id(request: Request[Any, Any, Any]) -> str | None:
    """The request's (``api/observe.py``: the one it gave, or one made for it)."""
    return correlation_id(request.scope)


async def _submit(state: Any, news: list[NewTask]) -> list[Inserted]:
    """Commit and publish ``news`` in a producer span (tracing on: its context is stored with
    each task); counted, and logged per task at debug level (with the request's correlation id
    from the log context)."""
    one = news[0] if len(news) == 1 else None
    with tracing.send(
        one.queue if one else "batch", len(news), one.type if one else None
    ) as parent:
        if parent is not None:
            news = [msgspec.structs.replace(n, trace_context=parent) for n in news]
        results: list[Inserted] = await state.intake.submit(news)
    if state.settings.metrics:
        TASKS_SUBMITTED.inc(sum(r.created for r in results))
    if logging.DEBUG:
        for r in results:
            log.debug("task submitted", task_id=str(r.task.id), created=r.created)
    return results


@post(
    "/v1/tasks",
    summary="Submit a task",
    status_code=201,
    response_description="The task, created",
    opt=request_body(SubmitTask),
    responses={
        200: ResponseSpec(TaskOut, description="The task first submitted with this idempotency "
                          "key and the same body", generate_examples=False),
        **problems(403, 409, 413, 415, 422),
    },
    security=BEARER,
)  # fmt: skip
async def submit_task(request: Request[Any, Any, Any]) -> Response[TaskOut]:
    # The app's state, not a `state` parameter: Litestar would copy the State for each request.
    state = request.app.state
    who = await state.auth.principal(request, Action.SUBMIT)
    body = await decode_body(request, SubmitTask)
    now = now_utc()
    by = actor(who, request, now) if state.settings.audit_submissions else None
    new = await build(
        body, who.tenant_id, state.catalog, state.settings, _correlation_id(request), now, by
    )
    await state.limits.admit_tasks(who.tenant_id, 1)  # 503 queue_full: nothing written
    (result,) = await _submit(state, [new])
    if result.conflict:
        raise Conflict(
            "idempotency key was already used with a different request body",
            code="idempotency_conflict",
            task_id=str(result.task.id),
        )
    return encoded(TaskOut.of(result.task), 201 if result.created else 200)


@post(
    "/v1/tasks/batch",
    summary="Submit up to 1,000 tasks",
    status_code=201,
    response_description="One item per task, in order",
    opt=request_body(SubmitBatch),
    responses=problems(403, 413, 415, 422),
    security=BEARER,
)
async def submit_batch(request: Request[Any, Any, Any], state: State) -> BatchOut:
    """All items are validated first: if any is invalid, nothing is written (422 lists them).
    Each item answers like a single submit: 201 created, 200 the task an idempotency key
    already named, 409 that key reused with another body."""
    who = await state.auth.principal(request, Action.SUBMIT)
    batch = await decode_body(request, SubmitBatch)
    now, correlation = now_utc(), _correlation_id(request)
    by = actor(who, request, now) if state.settings.audit_submissions else None
    news, errors = [], []
    for index, item in enumerate(batch.tasks):
        try:
            news.append(
                await build(
                    item, who.tenant_id, state.catalog, state.settings, correlation, now, by
                )
            )
        except ProblemError as exc:
            errors.append({"index": index, "code": exc.code, "message": exc.detail})
    if errors:
        raise Unprocessable(
            f"{len(errors)} of {len(batch.tasks)} tasks are invalid; none was submitted",
            code="invalid_batch",
            errors=errors,
        )
    await state.limits.admit_tasks(who.tenant_id, len(news))  # all or nothing
    results = await _submit(state, news)
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
    return BatchOut(items=items)


@get(
    "/v1/tasks/{task_id:str}",
    summary="Get a task",
    responses=problems(404),
    security=BEARER,
)
async def get_task(request: Request[Any, Any, Any], state: State, task_id: TaskId) -> TaskOut:
    who = await state.auth.principal(request, Action.READ)
    return TaskOut.of(await state.tasks.get(who.tenant_id, parse_task_id(task_id)))


@get(
    "/v1/tasks",
    summary="List tasks, newest first (keyset pagination)",
    responses=problems(),
    security=BEARER,
)
async def list_tasks(
    request: Request[Any, Any, Any],
    state: State,
    status: FromQuery[TaskStatus | None] = None,
    type: Filter = None,  # noqa: A002 - the query parameter's name
    queue: Filter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> TaskPage:
    who = await state.auth.principal(request, Action.READ)
    rows = await state.tasks.list_tasks(
        who.tenant_id, status=status, type=type, queue=queue, before=cursor_id(cursor), limit=limit
    )
    return TaskPage(items=[TaskOut.of(r) for r in rows], next_cursor=next_cursor(rows, limit))


@post(
    "/v1/tasks/{task_id:str}/cancel",
    summary="Cancel a pending or scheduled task",
    status_code=200,
    responses=problems(403, 404, 409),
    security=BEARER,
)
async def cancel_task(request: Request[Any, Any, Any], state: State, task_id: TaskId) -> TaskOut:
    who = await state.auth.principal(request, Action.OPERATE)
    by = actor(who, request, now_utc())
    return TaskOut.of(await state.tasks.cancel(who.tenant_id, parse_task_id(task_id), by=by))


ROUTES = [submit_task, submit_batch, get_task, list_tasks, cancel_task]
