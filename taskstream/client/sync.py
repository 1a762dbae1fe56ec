"""``Client``: the blocking client. Every call is an operation of ``operations.py``, driven
here over a pooled ``httpx.Client``."""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx

from ..core.models import TaskStatus
from .models import (
    Attempt,
    Page,
    Priority,
    Queue,
    Replayed,
    Schedule,
    Submitted,
    Task,
    TaskTemplate,
    Worker,
)
from .operations import Operations, Submission
from .protocol import Op, Outcome, Plan, Sleep
from .retries import RetryPolicy
from .transport import failure, pacing, pool_options, reply, request_args

T = TypeVar("T")
Id = uuid.UUID | str


class Client:
    """A tenant's view of the API, with an API key; one keep-alive connection pool.

    >>> with Client("http://127.0.0.1:8000", key) as client:   # doctest: +SKIP
    ...     task = client.submit("examples.echo", {"message": "hi"})
    ...     client.wait(task.id, timeout_s=30).result
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 10,
    ) -> None:
        self._http = httpx.Client(**pool_options(url, key, timeout_s, max_connections))
        self._ops = Operations(pacing(retry or RetryPolicy()))

    def _run(self, op: Op[T]) -> T:
        outcome: Outcome = None
        while True:
            try:
                step = op.send(outcome)
            except StopIteration as done:
                return cast(T, done.value)
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                outcome = None
            else:
                outcome = self._send(step)

    def _send(self, plan: Plan) -> Outcome:
        try:
            return reply(self._http.request(**request_args(plan)))
        except httpx.TransportError as exc:
            return failure(exc)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- tasks (see operations.Operations for each call) -------------------------------------

    def submit(
        self,
        type: str,  # noqa: A002 - the task type, as the API names it
        payload: Any = None,
        *,
        queue: str | None = None,
        priority: Priority | None = None,
        delay_s: float | None = None,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        max_attempts: int | None = None,
        region: str | None = None,
        visibility_timeout_s: float | None = None,
    ) -> Task:
        """Submit one task (``payload``: a dict or a msgspec Struct). Without an
        ``idempotency_key`` one is made for this call, so retries never enqueue it twice."""
        task = Submission(
            type=type, payload={} if payload is None else payload, queue=queue,
            priority=priority, delay_s=delay_s, run_at=run_at, idempotency_key=idempotency_key,
            timeout_s=timeout_s, max_attempts=max_attempts, region=region,
            visibility_timeout_s=visibility_timeout_s,
        )  # fmt: skip
        return self._run(self._ops.submit(task))

    def submit_many(self, tasks: Iterable[Submission | Mapping[str, Any]]) -> list[Submitted]:
        """Submit many tasks (Submissions or dicts of their fields), 1,000 per request; each
        gets an idempotency key if it has none."""
        return self._run(self._ops.submit_many(tasks))

    def get(self, task_id: Id) -> Task:
        return self._run(self._ops.get(task_id))

    def wait(self, task_id: Id, timeout_s: float = 60.0) -> Task:
        """The task once finished; ``WaitTimeout`` if it is not within ``timeout_s``."""
        return self._run(self._ops.wait(task_id, timeout_s))

    def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        type: str | None = None,  # noqa: A002 - the API's filter
        queue: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Task]:
        """Every task matching the filters, newest first, page after page (keyset cursor)."""
        return self._paged(
            lambda cursor: self._ops.tasks_page(
                status=status, type=type, queue=queue, limit=page_size, cursor=cursor
            )
        )

    def _paged(self, page: Callable[[str | None], Op[Page]]) -> Iterator[Task]:
        cursor: str | None = None
        while True:
            found = self._run(page(cursor))
            yield from found.items
            if found.next_cursor is None:
                return
            cursor = found.next_cursor

    def cancel(self, task_id: Id) -> Task:
        return self._run(self._ops.cancel(task_id))

    def retry(self, task_id: Id) -> Task:
        return self._run(self._ops.retry(task_id))

    def attempts(self, task_id: Id) -> builtins.list[Attempt]:
        return self._run(self._ops.attempts(task_id))

    # -- operations ---------------------------------------------------------------------------

    def queues(self) -> builtins.list[Queue]:
        return self._run(self._ops.queues())

    def workers(self) -> builtins.list[Worker]:
        return self._run(self._ops.workers())

    def dead_letters(
        self,
        *,
        type: str | None = None,  # noqa: A002 - the API's filter
        queue: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Task]:
        """Every failed task matching the filters, newest first, page after page."""
        return self._paged(
            lambda cursor: self._ops.dead_letters_page(
                type=type, queue=queue, limit=page_size, cursor=cursor
            )
        )

    def replay(
        self,
        ids: Iterable[Id] | None = None,
        *,
        type: str | None = None,  # noqa: A002 - the API's filter
        queue: str | None = None,
        limit: int = 100,
    ) -> Replayed:
        return self._run(self._ops.replay(ids, type=type, queue=queue, limit=limit))

    # -- schedules ----------------------------------------------------------------------------

    def create_schedule(self, name: str, cron: str, task: TaskTemplate, **options: Any) -> Schedule:
        return self._run(self._ops.create_schedule(name, cron, task, **options))

    def schedules(self) -> builtins.list[Schedule]:
        return self._run(self._ops.schedules())

    def get_schedule(self, schedule_id: Id) -> Schedule:
        return self._run(self._ops.get_schedule(schedule_id))

    def update_schedule(self, schedule_id: Id, **changes: Any) -> Schedule:
        return self._run(self._ops.update_schedule(schedule_id, changes))

    def pause_schedule(self, schedule_id: Id) -> Schedule:
        return self._run(self._ops.update_schedule(schedule_id, {"paused": True}))

    def resume_schedule(self, schedule_id: Id) -> Schedule:
        return self._run(self._ops.update_schedule(schedule_id, {"paused": False}))

    def delete_schedule(self, schedule_id: Id) -> None:
        self._run(self._ops.delete_schedule(schedule_id))
