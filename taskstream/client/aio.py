"""``AsyncClient``: the asyncio client. The same operations as ``Client`` (``operations.py``),
driven here over a pooled ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
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


class AsyncClient:
    """A tenant's view of the API, with an API key; one keep-alive connection pool.

    >>> async with AsyncClient("http://127.0.0.1:8000", key) as client:   # doctest: +SKIP
    ...     task = await client.submit("examples.echo", {"message": "hi"})
    ...     (await client.wait(task.id, timeout_s=30)).result
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
        self._http = httpx.AsyncClient(**pool_options(url, key, timeout_s, max_connections))
        self._ops = Operations(pacing(retry or RetryPolicy()))

    async def _run(self, op: Op[T]) -> T:
        outcome: Outcome = None
        while True:
            try:
                step = op.send(outcome)
            except StopIteration as done:
                return cast(T, done.value)
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                outcome = None
            else:
                outcome = await self._send(step)

    async def _send(self, plan: Plan) -> Outcome:
        try:
            return reply(await self._http.request(**request_args(plan)))
        except httpx.TransportError as exc:
            return failure(exc)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- tasks (see operations.Operations for each call) -------------------------------------

    async def submit(
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
        return await self._run(self._ops.submit(task))

    async def submit_many(self, tasks: Iterable[Submission | Mapping[str, Any]]) -> list[Submitted]:
        """Submit many tasks (Submissions or dicts of their fields), 1,000 per request; each
        gets an idempotency key if it has none."""
        return await self._run(self._ops.submit_many(tasks))

    async def get(self, task_id: Id) -> Task:
        return await self._run(self._ops.get(task_id))

    async def wait(self, task_id: Id, timeout_s: float = 60.0) -> Task:
        """The task once finished; ``WaitTimeout`` if it is not within ``timeout_s``."""
        return await self._run(self._ops.wait(task_id, timeout_s))

    def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        type: str | None = None,  # noqa: A002 - the API's filter
        queue: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Task]:
        """Every task matching the filters, newest first, page after page (keyset cursor)."""
        return self._paged(
            lambda cursor: self._ops.tasks_page(
                status=status, type=type, queue=queue, limit=page_size, cursor=cursor
            )
        )

    async def _paged(self, page: Callable[[str | None], Op[Page]]) -> AsyncIterator[Task]:
        cursor: str | None = None
        while True:
            found = await self._run(page(cursor))
            for task in found.items:
                yield task
            if found.next_cursor is None:
                return
            cursor = found.next_cursor

    async def cancel(self, task_id: Id) -> Task:
        return await self._run(self._ops.cancel(task_id))

    async def retry(self, task_id: Id) -> Task:
        return await self._run(self._ops.retry(task_id))

    async def attempts(self, task_id: Id) -> builtins.list[Attempt]:
        return await self._run(self._ops.attempts(task_id))

    # -- operations ---------------------------------------------------------------------------

    async def queues(self) -> builtins.list[Queue]:
        return await self._run(self._ops.queues())

    async def workers(self) -> builtins.list[Worker]:
        return await self._run(self._ops.workers())

    def dead_letters(
        self,
        *,
        type: str | None = None,  # noqa: A002 - the API's filter
        queue: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Task]:
        """Every failed task matching the filters, newest first, page after page."""
        return self._paged(
            lambda cursor: self._ops.dead_letters_page(
                type=type, queue=queue, limit=page_size, cursor=cursor
            )
        )

    async def replay(
        self,
        ids: Iterable[Id] | None = None,
        *,
        type: str | None = None,  # noqa: A002 - the API's filter
        queue: str | None = None,
        limit: int = 100,
    ) -> Replayed:
        return await self._run(self._ops.replay(ids, type=type, queue=queue, limit=limit))

    # -- schedules ----------------------------------------------------------------------------

    async def create_schedule(
        self, name: str, cron: str, task: TaskTemplate, **options: Any
    ) -> Schedule:
        return await self._run(self._ops.create_schedule(name, cron, task, **options))

    async def schedules(self) -> builtins.list[Schedule]:
        return await self._run(self._ops.schedules())

    async def get_schedule(self, schedule_id: Id) -> Schedule:
        return await self._run(self._ops.get_schedule(schedule_id))

    async def update_schedule(self, schedule_id: Id, **changes: Any) -> Schedule:
        return await self._run(self._ops.update_schedule(schedule_id, changes))

    async def pause_schedule(self, schedule_id: Id) -> Schedule:
        return await self._run(self._ops.update_schedule(schedule_id, {"paused": True}))

    async def resume_schedule(self, schedule_id: Id) -> Schedule:
        return await self._run(self._ops.update_schedule(schedule_id, {"paused": False}))

    async def delete_schedule(self, schedule_id: Id) -> None:
        await self._run(self._ops.delete_schedule(schedule_id))
