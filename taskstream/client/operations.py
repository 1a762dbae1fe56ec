"""Every API call as an operation (``protocol.Op``): the request it sends and what it returns.

``Client`` and ``AsyncClient`` expose these one to one; the documentation of each call is here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec

from ..core.models import TaskStatus
from .errors import WaitTimeout
from .models import (
    Attempt,
    Attempts,
    BatchResult,
    Page,
    Priority,
    Queue,
    Queues,
    Replayed,
    Schedule,
    Schedules,
    Submitted,
    Task,
    TaskTemplate,
    Worker,
    Workers,
)
from .protocol import Op, Pacing, Plan, Sleep, call, exchange

T = TypeVar("T")
MAX_BATCH = 1000  # tasks per /v1/tasks/batch request (the API's limit)
WAIT_FIRST_S = 0.05  # wait() polls after this long, then backs off
WAIT_MAX_S = 2.0  # and never waits longer than this between two looks
_encode = msgspec.json.Encoder().encode
_TASK = msgspec.json.Decoder(Task)
_PAGE = msgspec.json.Decoder(Page)
_BATCH = msgspec.json.Decoder(BatchResult)


class Submission(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A task to submit (``POST /v1/tasks``'s body): what ``submit_many`` takes. Fields left
    None are not sent: the task type's defaults apply."""

    type: str
    payload: Any = msgspec.field(default_factory=dict)
    queue: str | None = None
    priority: Priority | None = None
    timeout_s: float | None = None
    max_attempts: int | None = None
    idempotency_key: str | None = None
    run_at: datetime | None = None
    delay_s: float | None = None
    visibility_timeout_s: float | None = None
    region: str | None = None


def new_idempotency_key() -> str:
    """Made once per submit that names none, so a retried request cannot enqueue twice."""
    return f"tsc-{uuid.uuid4().hex}"


def keyed(task: Submission) -> Submission:
    """``task`` with an idempotency key: its own, else one made here (once per submit)."""
    if task.idempotency_key is not None:
        return task
    return msgspec.structs.replace(task, idempotency_key=new_idempotency_key())


def submissions(tasks: Iterable[Submission | Mapping[str, Any]]) -> list[Submission]:
    """``submit_many``'s tasks (Submissions, or dicts of their fields), each keyed."""
    return [
        keyed(t if isinstance(t, Submission) else msgspec.convert(t, Submission)) for t in tasks
    ]


def _id(task_id: uuid.UUID | str) -> str:
    return quote(str(task_id), safe="")


def _query(**params: object) -> dict[str, str] | None:
    """Query parameters that were given, as text."""
    given = {k: str(v) for k, v in params.items() if v is not None}
    return given or None


class Operations:
    """Builds each call's operation; holds the retry pacing they share."""

    def __init__(self, pacing: Pacing) -> None:
        self.pacing = pacing

    def _call(self, plan: Plan, decoder: msgspec.json.Decoder[T]) -> Op[T]:
        return call(plan, self.pacing, decoder)

    # -- tasks ------------------------------------------------------------------------------

    def submit(self, task: Submission) -> Op[Task]:
        """``POST /v1/tasks``: 201 created, or 200 the task its idempotency key already named
        (as when a retry follows a lost answer). Retried safely: the key, made once here when
        the caller gave none, travels with every copy."""
        plan = Plan("POST", "/v1/tasks", body=_encode(keyed(task)), idempotent=True)
        return self._call(plan, _TASK)

    def submit_many(self, tasks: Iterable[Submission | Mapping[str, Any]]) -> Op[list[Submitted]]:
        """``POST /v1/tasks/batch``, 1,000 tasks a request; one item per task, in order. If a
        task is invalid the API writes none of its request (422, raised as InvalidRequest).
        Each task without an idempotency key gets one, so a retried request adds nothing."""
        bodies = submissions(tasks)
        items: list[Submitted] = []
        for start in range(0, len(bodies), MAX_BATCH):
            chunk = {"tasks": bodies[start : start + MAX_BATCH]}
            plan = Plan("POST", "/v1/tasks/batch", body=_encode(chunk), idempotent=True)
            result = yield from self._call(plan, _BATCH)
            items.extend(result.items)
        return items

    def get(self, task_id: uuid.UUID | str) -> Op[Task]:
        return self._call(Plan("GET", f"/v1/tasks/{_id(task_id)}", idempotent=True), _TASK)

    def wait(self, task_id: uuid.UUID | str, timeout_s: float) -> Op[Task]:
        """Poll the task until it is completed, failed or cancelled; WaitTimeout after
        ``timeout_s``. Polls soon at first, then less often (up to every 2 s)."""
        clock = self.pacing.monotonic
        deadline = clock() + timeout_s
        pause_s = WAIT_FIRST_S
        while True:
            task = yield from self.get(task_id)
            left_s = deadline - clock()
            if task.done:
                return task
            if left_s <= 0:
                raise WaitTimeout(str(task_id), timeout_s, task.status)
            yield Sleep(min(pause_s, left_s))
            pause_s = min(WAIT_MAX_S, pause_s * 1.5)

    def tasks_page(
        self,
        *,
        status: TaskStatus | str | None = None,
        type: str | None = None,  # noqa: A002 - the API's filter
        queue: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Op[Page]:
        """``GET /v1/tasks``: one page, newest first; ``limit`` 1-500."""
        params = _query(status=status, type=type, queue=queue, limit=limit, cursor=cursor)
        return self._call(Plan("GET", "/v1/tasks", params=params, idempotent=True), _PAGE)

    def cancel(self, task_id: uuid.UUID | str) -> Op[Task]:
        """A pending or scheduled task; any other state is a Conflict (``invalid_state``)."""
        return self._call(Plan("POST", f"/v1/tasks/{_id(task_id)}/cancel"), _TASK)

    def retry(self, task_id: uuid.UUID | str) -> Op[Task]:
        """Send a failed task (dead letter) back to its queue; any other state: Conflict."""
        return self._call(Plan("POST", f"/v1/tasks/{_id(task_id)}/retry"), _TASK)

    def attempts(self, task_id: uuid.UUID | str) -> Op[list[Attempt]]:
        plan = Plan("GET", f"/v1/tasks/{_id(task_id)}/attempts", idempotent=True)
        return _items(self._call(plan, _ATTEMPTS))

    # -- operations -------------------------------------------------------------------------

    def queues(self) -> Op[list[Queue]]:
        return _items(self._call(Plan("GET", "/v1/queues", idempotent=True), _QUEUES))

    def workers(self) -> Op[list[Worker]]:
        """Live workers serving the tenant's queues (operator role or above)."""
        return _items(self._call(Plan("GET", "/v1/workers", idempotent=True), _WORKERS))

    def dead_letters_page(
        self,
        *,
        type: str | None = None,  # noqa: A002 - the API's filter
        queue: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Op[Page]:
        """``GET /v1/dead-letters``: failed tasks, newest first."""
        params = _query(type=type, queue=queue, limit=limit, cursor=cursor)
        return self._call(Plan("GET", "/v1/dead-letters", params=params, idempotent=True), _PAGE)

    def replay(
        self,
        ids: Iterable[uuid.UUID | str] | None = None,
        *,
        type: str | None = None,  # noqa: A002 - the API's filter
        queue: str | None = None,
        limit: int = 100,
    ) -> Op[Replayed]:
        """Send failed tasks matching every filter given back to their queues (at most
        ``limit``, 1-1,000, per call)."""
        body: dict[str, Any] = {"limit": limit}
        if ids is not None:
            body["ids"] = [str(i) for i in ids]
        body.update({k: v for k, v in (("type", type), ("queue", queue)) if v is not None})
        plan = Plan("POST", "/v1/dead-letters/replay", body=_encode(body))
        return self._call(plan, _REPLAYED)

    # -- schedules --------------------------------------------------------------------------

    def create_schedule(
        self, name: str, cron: str, task: TaskTemplate, **options: Any
    ) -> Op[Schedule]:
        """``POST /v1/schedules``; ``options``: timezone, misfire, misfire_grace_s,
        max_catch_up, paused. A name already used is a Conflict (``schedule_exists``)."""
        body = {"name": name, "cron": cron, "task": task, **options}
        return self._call(Plan("POST", "/v1/schedules", body=_encode(body)), _SCHEDULE)

    def schedules(self) -> Op[list[Schedule]]:
        return _items(self._call(Plan("GET", "/v1/schedules", idempotent=True), _SCHEDULES))

    def get_schedule(self, schedule_id: uuid.UUID | str) -> Op[Schedule]:
        plan = Plan("GET", f"/v1/schedules/{_id(schedule_id)}", idempotent=True)
        return self._call(plan, _SCHEDULE)

    def update_schedule(
        self, schedule_id: uuid.UUID | str, changes: Mapping[str, Any]
    ) -> Op[Schedule]:
        """``PATCH``: only the fields in ``changes`` (cron, timezone, task, misfire, paused...)."""
        plan = Plan(
            "PATCH", f"/v1/schedules/{_id(schedule_id)}", body=_encode(changes), idempotent=True
        )
        return self._call(plan, _SCHEDULE)

    def delete_schedule(self, schedule_id: uuid.UUID | str) -> Op[None]:
        yield from exchange(Plan("DELETE", f"/v1/schedules/{_id(schedule_id)}"), self.pacing)


def _items(op: Op[Any]) -> Op[Any]:
    """The ``items`` of a list answer."""
    answer = yield from op
    return list(answer.items)


_ATTEMPTS = msgspec.json.Decoder(Attempts)
_QUEUES = msgspec.json.Decoder(Queues)
_WORKERS = msgspec.json.Decoder(Workers)
_REPLAYED = msgspec.json.Decoder(Replayed)
_SCHEDULE = msgspec.json.Decoder(Schedule)
_SCHEDULES = msgspec.json.Decoder(Schedules)
