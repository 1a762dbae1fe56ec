"""The dashboard's pages (GET). Each reads through the same stores, tenant scope and RBAC as
the REST route that shows the same data; ``X-UI-Live: 1`` asks for the page's live part alone
(``_<page>.html``), which ``static/ui.js`` fetches every few seconds."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from ...core.errors import InvalidRequest
from ...core.models import TaskStatus
from ...core.rbac import Action
from ...store.dashboard import DashboardStore
from ..schedules import ScheduleOut
from ..tasks import TaskId, cursor_id, next_cursor, parse_task_id
from .session import TOKEN_FIELD, Session, signed_in
from .views import PRIORITIES, STATUSES, queue_rows, schedule_task

LIVE_HEADER = "x-ui-live"
PAGE_SIZE = 50
REFRESH_S = 5
# A filter or search field: bounded, like the REST filters (api/tasks.py).
Text = Annotated[str | None, QueryParameter(max_length=200)]
# Messages a redirect after an action may ask for, by name: never text from the query string.
NOTICES = {
    "replayed": "Replayed: the task is pending again.",
    "paused": "Schedule paused.",
    "resumed": "Schedule resumed.",
}


def _given(value: str | None) -> str | None:
    """A form field as a filter: empty means none; a NUL can never match (400)."""
    if value is None or not value.strip():
        return None
    if "\x00" in value:
        raise InvalidRequest("a filter may not contain a NUL character", code="invalid_parameter")
    return value.strip()


def _status(value: str | None) -> TaskStatus | None:
    given = _given(value)
    if given is None:
        return None
    if given not in STATUSES:
        raise InvalidRequest(f"unknown status {given!r}", code="invalid_parameter")
    return TaskStatus(given)


def _task_id(value: str) -> UUID:
    try:
        return UUID(value.strip())
    except ValueError:
        raise InvalidRequest(
            "a task id is a UUID, like 0193a1f2-7c4e-7d1a-9b2c-3d4e5f607182", code="invalid_task_id"
        ) from None


async def render(
    request: Request[Any, Any, Any],
    session: Session,
    page: str,
    *,
    title: str,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """The full page ``<page>.html``, or only its live part for ``ui.js``."""
    live = request.headers.get(LIVE_HEADER) == "1"
    state = request.app.state
    tenant = None if live else await DashboardStore(state.pool).tenant_name(session.who.tenant_id)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return Template(
        template_name=f"_{page}.html" if live else f"{page}.html",
        context={
            "session": session, "tenant": tenant, "page": page, "title": title,
            "can_operate": session.may(Action.OPERATE), "token_field": TOKEN_FIELD,
            "notice": notice, "refresh_s": REFRESH_S, **context,
        },
        status_code=status_code,
        headers={"Vary": "X-UI-Live"},
    )  # fmt: skip


@get("/", name="ui.queues")
async def queues(request: Request[Any, Any, Any], state: State) -> Template:
    session = await signed_in(request)
    data = await DashboardStore(state.pool).queues(session.who.tenant_id)
    return await render(
        request, session, "queues", title="Queues", queues=queue_rows(data), priorities=PRIORITIES
    )


@get("/tasks", name="ui.tasks")
async def tasks(
    request: Request[Any, Any, Any],
    state: State,
    status: Text = None,
    type: Text = None,  # noqa: A002 - the filter's name
    queue: Text = None,
    id: Text = None,  # noqa: A002 - the search field's name
    cursor: Text = None,
) -> Response[Any]:
    session = await signed_in(request)
    if _given(id) is not None:
        return Redirect(f"/ui/tasks/{_task_id(id or '')}", status_code=303)
    filters = {"status": _status(status), "type": _given(type), "queue": _given(queue)}
    rows = await state.tasks.list_tasks(
        session.who.tenant_id, **filters, before=cursor_id(_given(cursor)), limit=PAGE_SIZE
    )
    names = await DashboardStore(state.pool).queue_names(session.who.tenant_id)
    return await render(
        request, session, "tasks", title="Tasks", tasks=rows, statuses=STATUSES,
        queue_names=names, filters={k: v or "" for k, v in filters.items()},
        next_cursor=next_cursor(rows, PAGE_SIZE),
    )  # fmt: skip


@get("/tasks/{task_id:str}", name="ui.task")
async def task(request: Request[Any, Any, Any], state: State, task_id: TaskId) -> Template:
    session = await signed_in(request)
    tid = parse_task_id(task_id)  # 404 for what is not a UUID, as the REST route
    record = await state.tasks.get(session.who.tenant_id, tid)
    attempts = await state.tasks.attempts(session.who.tenant_id, tid)
    return await render(
        request, session, "task", title=f"Task {tid}", task=record, attempts=attempts
    )


@get("/dead-letters", name="ui.dead_letters")
async def dead_letters(
    request: Request[Any, Any, Any],
    state: State,
    type: Text = None,  # noqa: A002 - the filter's name
    queue: Text = None,
    cursor: Text = None,
    replayed: Annotated[int | None, QueryParameter(ge=0)] = None,
) -> Template:
    session = await signed_in(request)
    filters = {"type": _given(type), "queue": _given(queue)}
    rows = await state.tasks.list_dead(
        session.who.tenant_id, task_type=filters["type"], queue=filters["queue"],
        before=cursor_id(_given(cursor)), limit=PAGE_SIZE,
    )  # fmt: skip
    names = await DashboardStore(state.pool).queue_names(session.who.tenant_id)
    return await render(
        request, session, "dead_letters", title="Dead letters", tasks=rows, queue_names=names,
        filters={k: v or "" for k, v in filters.items()}, replayed=replayed,
        next_cursor=next_cursor(rows, PAGE_SIZE),
    )  # fmt: skip


@get("/schedules", name="ui.schedules")
async def schedules(request: Request[Any, Any, Any], state: State) -> Template:
    session = await signed_in(request)
    rows = await state.schedules.list_all(session.who.tenant_id)
    items = [(ScheduleOut.of(r), schedule_task(r.task)) for r in rows]
    return await render(request, session, "schedules", title="Schedules", schedules=items)


@get("/workers", name="ui.workers")
async def workers(request: Request[Any, Any, Any], state: State) -> Template:
    # Operators and admins only, as GET /v1/workers: hosts and pids are operations' business.
    session = await signed_in(request, Action.OPERATE)
    rows = await state.workers.live(session.who.tenant_id, state.settings.visibility_timeout_s + 5)
    return await render(request, session, "workers", title="Workers", workers=rows)


PAGES = [queues, tasks, task, dead_letters, schedules, workers]
