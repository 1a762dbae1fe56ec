"""From a submitted body to a stored, published task.

``build`` checks one submission against its type (cached, no database round trip) and returns a
``NewTask``. ``Intake.submit`` group-commits: concurrent requests share one INSERT and one
pipelined XADD, so throughput grows with load while a lone request waits for nobody.

The "published" mark (which keeps the relay from publishing a row again) is written later, in
batches, off the request path: a worker usually claims the task first, and a claimed row needs no
mark, so under normal load most marks cost nothing. Written at once, the mark held row locks that
the worker's claim of the same rows had to wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import fastjsonschema
import msgspec
import structlog

from ..broker.producer import Producer
from ..core.config import Settings
from ..core.errors import PayloadTooLarge, Unavailable, Unprocessable
from ..core.ids import uuid7
from ..core.models import Dispatch, NewTask, Priority, TaskRecord, TaskStatus
from ..store.tasks import Inserted, TaskStore
from .catalog import Catalog
from .schemas import SubmitTask

log = structlog.get_logger("taskstream.api")
# How long published ids wait before their mark is written; well inside the relay's grace
# (TASKSTREAM_PUBLISH_GRACE_S, 2 s by default), after which a row without a mark is republished.
MARK_DELAY_S = 0.25
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_encode = msgspec.json.Encoder().encode


async def build(
    body: SubmitTask,
    tenant_id: UUID,
    catalog: Catalog,
    settings: Settings,
    correlation_id: str | None,
    now: datetime,
) -> NewTask:
    """Validate one submission; raises a 4xx problem for anything wrong."""
    known = await catalog.get(body.type)
    if known is None:
        raise Unprocessable(f"unknown task type {body.type!r}", code="unknown_task_type")
    payload_json = _encode(body.payload)
    if len(payload_json) > settings.max_payload_bytes:
        raise PayloadTooLarge(
            f"payload is {len(payload_json)} bytes; the limit is {settings.max_payload_bytes}",
            code="payload_too_large",
        )
    try:
        known.validate(body.payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise Unprocessable(
            f"payload does not match {body.type!r}: {exc.message}",
            code="invalid_payload",
            errors=[
                {"path": "/".join(str(p) for p in (exc.path or [])[1:]), "message": exc.message}
            ],
        ) from None
    queue = body.queue or known.row.queue
    if not QUEUE_NAME.fullmatch(queue):
        raise Unprocessable(
            "queue names are 1-64 letters, digits, '_', '.', ':' or '-'", code="invalid_queue"
        )
    return NewTask(
        id=uuid7(),
        tenant_id=tenant_id,
        type=body.type,
        queue=queue,
        priority=Priority.parse(body.priority),
        payload_json=payload_json,
        max_attempts=body.max_attempts or known.row.max_attempts,
        timeout_s=body.timeout_s or known.row.timeout_s,
        idempotency_key=body.idempotency_key,
        request_hash=hashlib.sha256(_encode(body)).digest() if body.idempotency_key else None,
        correlation_id=correlation_id,
        run_at=_run_at(body, now),
        visibility_timeout_s=body.visibility_timeout_s or known.row.visibility_timeout_s,
    )


def _run_at(body: SubmitTask, now: datetime) -> datetime | None:
    if body.run_at is not None and body.delay_s is not None:
        raise Unprocessable("give run_at or delay_s, not both", code="invalid_schedule")
    if body.delay_s:
        return now + timedelta(seconds=body.delay_s)
    if body.run_at is not None:
        if body.run_at.tzinfo is None:
            raise Unprocessable("run_at needs a time zone (RFC 3339)", code="invalid_schedule")
        return body.run_at if body.run_at > now else None
    return None


class Intake:
    """Group commit of concurrent submissions."""

    def __init__(self, store: TaskStore, producer: Producer) -> None:
        self.store = store
        self.producer = producer
        self._waiting: list[tuple[Sequence[NewTask], asyncio.Future[list[Inserted]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._queues: set[tuple[UUID, str]] = set()
        self._unmarked: list[UUID] = []
        self._marker: asyncio.Task[None] | None = None

    async def submit(self, tasks: Sequence[NewTask]) -> list[Inserted]:
        for t in tasks:
            if (t.tenant_id, t.queue) not in self._queues:
                await self.store.upsert_queue(t.tenant_id, t.queue)
                self._queues.add((t.tenant_id, t.queue))
        future: asyncio.Future[list[Inserted]] = asyncio.get_running_loop().create_future()
        self._waiting.append((tasks, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            tasks = [t for ts, _ in group for t in ts]
            try:
                inserted = await self.store.insert_many(tasks)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            fresh = [i.task for i in inserted if i.created and i.task.status is TaskStatus.PENDING]
            published = await self._publish(fresh)
            start = 0
            for ts, future in group:
                if not future.done():
                    future.set_result(inserted[start : start + len(ts)])
                start += len(ts)
            if published:
                self._mark_later(published)

    def _mark_later(self, ids: Sequence[UUID]) -> None:
        self._unmarked.extend(ids)
        if self._marker is None or self._marker.done():
            self._marker = asyncio.create_task(self._mark(MARK_DELAY_S))

    async def _mark(self, delay_s: float) -> None:
        while self._unmarked:
            await asyncio.sleep(delay_s)  # every batch waits: by then most rows are claimed
            ids, self._unmarked = self._unmarked, []
            try:
                await self.store.mark_published(ids)
            except Unavailable as exc:  # the relay publishes a duplicate; claims dedupe
                log.warning("could not mark tasks published", error=str(exc), tasks=len(ids))
            except Exception:  # same: a lost mark costs a duplicate entry, never a task
                log.exception("could not mark tasks published", tasks=len(ids))

    async def close(self) -> None:
        """Write the marks still waiting (shutdown): not needed for safety, it saves the relay
        from publishing those tasks a second time."""
        if self._marker is not None and not self._marker.done():
            self._marker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._marker
        await self._mark(0)

    async def publish_now(self, tasks: Sequence[TaskRecord]) -> None:
        """Publish tasks made pending outside a submission (replays); the relay covers a miss."""
        published = await self._publish([t for t in tasks if t.status is TaskStatus.PENDING])
        if published:
            await self.store.mark_published(published)

    async def _publish(self, tasks: Sequence[TaskRecord]) -> list[UUID]:
        items = [Dispatch(t.id, t.tenant_id, t.queue, t.priority) for t in tasks]
        try:
            await self.producer.publish(items)
        except Unavailable as exc:
            # The row is the truth: the relay publishes it when Redis is back.
            log.warning("publish deferred to the relay", error=str(exc), tasks=len(items))
            return []
        return [d.task_id for d in items]


def now_utc() -> datetime:
    return datetime.now(UTC)
