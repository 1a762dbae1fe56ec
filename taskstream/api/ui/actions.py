"""The dashboard's sign-in and its POSTs. Every POST checks its origin (``session.py``), and
every one made while signed in carries the session's form token; each action needs the role the
REST route that does the same needs, and is recorded in the audit log the same way."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict, State
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from ...core.errors import InvalidRequest, NotFound, Unauthenticated
from ...core.rbac import Action
from ...core.schedule import next_fire
from ..auth import actor
from ..dead_letters import replay_one
from ..intake import now_utc
from ..schedules import ScheduleId
from ..tasks import TaskId, parse_task_id
from .session import (
    TOKEN_FIELD,
    Session,
    check_origin,
    check_token,
    sign_in,
    signed_in,
    signed_out,
)

_PLAIN = re.compile(r"[\x21-\x7e]+")  # printable ASCII: nothing that could break a header
MAX_REPLAY = 1000  # one bulk replay, as POST /v1/dead-letters/replay allows
Next = Annotated[str | None, QueryParameter(max_length=500)]
# Why the sign-in page is shown, by name (never text from the query string).
REASONS = {
    "signed-out": "You are signed out.",
    "expired": "Your session ended: the API key is no longer valid. Sign in with a live key.",
}


def _next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path of this site, never another site."""
    if not value or not _PLAIN.fullmatch(value):
        return "/ui"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value or not parts.path.startswith("/ui"):
        return "/ui"
    return value


def _sign_in_page(
    next_path: str, *, error: str | None = None, reason: str | None = None, status_code: int = 200
) -> Template:
    return Template(
        template_name="sign_in.html",
        context={
            "title": "Sign in",
            "next": next_path,
            "error": error,
            "reason": REASONS.get(reason or ""),
        },
        status_code=status_code,
    )


@get("/sign-in", name="ui.sign_in")
async def sign_in_page(next: Next = None, reason: Next = None) -> Template:  # noqa: A002
    return _sign_in_page(_next(next), reason=reason)


@post("/sign-in", name="ui.sign_in.submit", status_code=303)
async def sign_in_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    check_origin(request)  # no session yet: nobody may sign a visitor in from another site
    form = await request.form()
    next_path = _next(form.get("next"))
    key = form.get("key") or ""
    if not isinstance(key, str) or not key.strip():
        return _sign_in_page(next_path, error="Enter an API key.", status_code=400)
    try:
        cookie = await sign_in(request, key)
    except Unauthenticated as exc:
        return _sign_in_page(next_path, error=f"Not signed in: {exc.detail}.", status_code=401)
    return Redirect(next_path, status_code=303, cookies=[cookie])


async def _form(request: Request[Any, Any, Any], action: Action) -> tuple[Session, FormMultiDict]:
    """The session of a POST from a dashboard page, allowed to do ``action``, and its form."""
    check_origin(request)
    session = await signed_in(request, action)
    form = await request.form()
    token = form.get(TOKEN_FIELD)
    check_token(session, token if isinstance(token, str) else None)
    return session, form


@post("/sign-out", name="ui.sign_out", status_code=303)
async def sign_out(request: Request[Any, Any, Any]) -> Redirect:
    await _form(request, Action.READ)
    return Redirect("/ui/sign-in?reason=signed-out", status_code=303, cookies=[signed_out(request)])


@post("/tasks/{task_id:str}/retry", name="ui.task.retry", status_code=303)
async def retry(request: Request[Any, Any, Any], state: State, task_id: TaskId) -> Redirect:
    session, _ = await _form(request, Action.OPERATE)
    tid = parse_task_id(task_id)
    await replay_one(request, state, session.who, tid)
    return Redirect(f"/ui/tasks/{tid}?notice=replayed", status_code=303)


def _ids(values: list[Any]) -> list[UUID]:
    try:
        return [UUID(v) for v in values if isinstance(v, str)]
    except ValueError:
        raise InvalidRequest("a selected id is not a task id", code="invalid_task_id") from None


def _filter(form: FormMultiDict, name: str) -> str | None:
    value = form.get(name)
    return (value.strip()[:200] or None) if isinstance(value, str) else None


@post("/dead-letters/replay", name="ui.dead_letters.replay", status_code=303)
async def replay(request: Request[Any, Any, Any], state: State) -> Redirect:
    """The selected dead letters (``ids``), one (``only``), or every one matching the page's
    filters (``all``), up to :data:`MAX_REPLAY`."""
    session, form = await _form(request, Action.OPERATE)
    task_type, queue = _filter(form, "type"), _filter(form, "queue")
    only = form.get("only")
    ids: list[UUID] | None
    if isinstance(only, str) and only:
        ids = _ids([only])
    elif form.get("all") == "1":
        ids = None
    else:
        ids = _ids(form.getall("ids", []))[:MAX_REPLAY]
    if ids == []:
        raise InvalidRequest("select the dead letters to replay", code="nothing_selected")
    who = session.who
    replayed = await state.tasks.replay(
        who.tenant_id, ids=ids, task_type=task_type, queue=queue, limit=MAX_REPLAY,
        by=who.key_prefix, audit=(actor(who, request, now_utc()), "dead_letter.replay"),
    )  # fmt: skip
    await state.intake.publish_now(replayed)
    back = {k: v for k, v in {"type": task_type, "queue": queue}.items() if v}
    return Redirect(
        "/ui/dead-letters?" + urlencode({**back, "replayed": len(replayed)}), status_code=303
    )


def _schedule_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("schedule not found", code="schedule_not_found") from None


@post("/schedules/{schedule_id:str}/pause", name="ui.schedule.pause", status_code=303)
async def pause(request: Request[Any, Any, Any], state: State, schedule_id: ScheduleId) -> Redirect:
    return await _set_paused(request, state, schedule_id, paused=True)


@post("/schedules/{schedule_id:str}/resume", name="ui.schedule.resume", status_code=303)
async def resume(
    request: Request[Any, Any, Any], state: State, schedule_id: ScheduleId
) -> Redirect:
    return await _set_paused(request, state, schedule_id, paused=False)


async def _set_paused(
    request: Request[Any, Any, Any], state: State, schedule_id: str, *, paused: bool
) -> Redirect:
    """As ``PATCH /v1/schedules/{id} {"paused": ...}``: a resume starts from now (no catch-up
    for the paused time)."""
    session, _ = await _form(request, Action.OPERATE)
    row = await state.schedules.get(session.who.tenant_id, _schedule_id(schedule_id))
    if row.paused != paused:
        now = datetime.now(UTC)
        new = msgspec.structs.replace(row, paused=paused)
        if not paused:
            new = msgspec.structs.replace(new, next_run_at=next_fire(row.cron, row.timezone, now))
        by = actor(session.who, request, now)
        action = "schedule.pause" if paused else "schedule.resume"
        await state.schedules.update(new, by=by, action=action)
    return Redirect(f"/ui/schedules?notice={'paused' if paused else 'resumed'}", status_code=303)


ACTIONS = [sign_in_page, sign_in_submit, sign_out, retry, replay, pause, resume]
