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
from typing import Any
from uuid import UUID

import fastjsonschema
import msgspec
import structlog

from ..broker.keys import NAME as QUEUE_NAME
from ..broker.producer import Producer
from ..core.audit import Actor
from ..core.config import Settings, region_names
from ..core.errors import (
    InvalidRequest,
    PayloadTooLarge,
    StoreRefused,
    StoreUnavailable,
    Unavailable,
    Unprocessable,
)
from ..core.ids import uuid7
from ..core.models import Dispatch, NewTask, Priority, TaskRecord, TaskStatus
from ..store.tasks import Inserted, TaskStore
from .catalog import Catalog
from .schemas import SubmitTask

log = structlog.get_logger("taskstream.api")
# How long published ids wait before their mark is written; well inside the relay's grace
# (TASKSTREAM_PUBLISH_GRACE_S, 2 s by default), after which a row without a mark is republished.
MARK_DELAY_S = 0.25
# Text PostgreSQL would refuse (NUL) or that breaks logs and headers (other C0 controls, DEL).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# run_at as far ahead as delay_s may reach; also keeps it inside what PostgreSQL can store once
# its offset is applied (9999-12-31T23:59:59-14:00 overflowed).
MAX_AHEAD = timedelta(days=366)
_encode = msgspec.json.Encoder().encode


async def build(
    body: SubmitTask,
    tenant_id: UUID,
    catalog: Catalog,
    settings: Settings,
    correlation_id: str | None,
    now: datetime,
    by: Actor | None = None,
) -> NewTask:
    """Validate one submission; raises a 4xx problem for anything wrong. ``by``: who submits
    (the task is recorded in the audit log when it is created)."""
    _check_text(body, correlation_id)
    known = await catalog.get(body.type)
    if known is None:
        raise Unprocessable(f"unknown task type {body.type!r}", code="unknown_task_type")
    payload_json = _encode(body.payload)
    if b"\\u0000" in payload_json and b"\\u0000" in payload_json.replace(b"\\\\", b""):
        raise Unprocessable(
            "payload strings may not contain NUL (\\u0000)", code="invalid_character"
        )
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
    if body.region is not None and body.region not in region_names(settings.regions):
        known_regions = ", ".join(sorted(region_names(settings.regions))) or "none configured"
        raise Unprocessable(
            f"unknown region {body.region!r} (regions: {known_regions})", code="unknown_region"
        )
    queue = body.queue or known.row.queue
    if not QUEUE_NAME.fullmatch(queue):  # it names the queue's streams in Redis
        raise Unprocessable(
            "queue names are 1-64 letters, digits, '_', '.', ':' or '-'", code="invalid_queue"
        )
    task_id = uuid7()
    return NewTask(
        id=task_id,
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
        audit=None if by is None else by.entry(tenant_id, "task.submit", str(task_id)),
        region=body.region,
    )


def _check_text(body: SubmitTask, correlation_id: str | None) -> None:
    """Refuse control characters in the text fields stored as they are (PostgreSQL stores no
    NUL; the others would reach logs and response headers)."""
    for field, value in (
        ("type", body.type),
        ("idempotency_key", body.idempotency_key),
        ("region", body.region),
    ):
        if value is not None and CONTROL.search(value):
            raise Unprocessable(
                f"{field} may not contain control characters", code="invalid_character"
            )
    if correlation_id is not None and CONTROL.search(correlation_id):
        raise InvalidRequest(
            "X-Correlation-Id may not contain control characters", code="invalid_correlation_id"
        )


def _run_at(body: SubmitTask, now: datetime) -> datetime | None:
    if body.run_at is not None and body.delay_s is not None:
        raise Unprocessable("give run_at or delay_s, not both", code="invalid_schedule")
    if body.delay_s:
        return now + timedelta(seconds=body.delay_s)
    if body.run_at is None:
        return None
    if body.run_at.tzinfo is None:
        raise Unprocessable("run_at needs a time zone (RFC 3339)", code="invalid_schedule")
    try:
        run_at = body.run_at.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
        raise Unprocessable("run_at is out of range", code="invalid_schedule") from None
    if run_at > now + MAX_AHEAD:
        raise Unprocessable(
            f"run_at may be at most {MAX_AHEAD.days} days ahead", code="invalid_schedule"
        )
    return run_at if run_at > now else None


_Waiting = tuple[Sequence[NewTask], "asyncio.Future[list[Inserted]]"]


def _fail(group: Sequence[_Waiting], exc: BaseException) -> None:
    for _, future in group:
        if not future.done():
            future.set_exception(exc)


class Intake:
    """Group commit of concurrent submissions."""

    def __init__(self, store: TaskStore, producer: Producer) -> None:
        self.store = store
        self.producer = producer
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None
        self._unmarked: list[Dispatch] = []  # published, their mark not written yet
        self._marker: asyncio.Task[None] | None = None

    async def submit(self, tasks: Sequence[NewTask]) -> list[Inserted]:
        """Insert with the other waiting submissions (one statement), then publish."""
        future: asyncio.Future[list[Inserted]] = asyncio.get_running_loop().create_future()
        self._waiting.append((tasks, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Write what is waiting, group by group. Every future is resolved whatever happens: a
        request left waiting would never answer, and would hold the server's shutdown."""
        group: list[_Waiting] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                await self._write(group)
        except BaseException as exc:  # cancelled, or a bug: answer everyone
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("group commit failed", requests=len(group) + len(self._waiting))
            for _, future in [*group, *self._waiting]:
                if not future.done():
                    future.set_exception(StoreUnavailable(f"submission interrupted: {exc!r}"))
            self._waiting = []
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise  # a bug is logged above; nobody awaits this task to see it again

    async def _write(self, group: list[_Waiting]) -> None:
        try:
            results = await self._insert(group)
        except Exception as exc:  # noqa: BLE001 - an outage: handed to every waiting request
            _fail(group, exc)
            return
        fresh = [
            i.task
            for inserted in results.values()
            if not isinstance(inserted, BaseException)
            for i in inserted
            if i.created and i.task.status is TaskStatus.PENDING
        ]
        published = await self._publish(fresh)
        for _, future in group:
            if not future.done():
                outcome = results[id(future)]
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        if published:
            self._mark_later(published)

    async def _insert(self, group: list[_Waiting]) -> dict[int, Any]:
        """One INSERT for the group. When PostgreSQL refuses a value, the group is halved and
        each half retried, so only the request that carried the value fails (422); the others
        are written. A group with k refused requests costs about 2k·log2(n) extra INSERTs."""
        tasks = [t for ts, _ in group for t in ts]
        try:
            inserted = await self.store.insert_many(tasks)
        except StoreRefused as exc:
            if len(group) == 1:
                return {id(group[0][1]): exc}
            half = len(group) // 2
            return {**await self._insert(group[:half]), **await self._insert(group[half:])}
        out: dict[int, Any] = {}
        start = 0
        for ts, future in group:
            out[id(future)] = inserted[start : start + len(ts)]
            start += len(ts)
        return out

    def _mark_later(self, published: Sequence[Dispatch]) -> None:
        self._unmarked.extend(published)
        if self._marker is None or self._marker.done():
            self._marker = asyncio.create_task(self._mark(MARK_DELAY_S))

    async def _mark(self, delay_s: float) -> None:
        while self._unmarked:
            await asyncio.sleep(delay_s)  # every batch waits: by then most rows are claimed
            batch, self._unmarked = self._unmarked, []
            ids = [d.task_id for d in batch]
            try:
                await self.store.mark_published(ids, tenants={d.tenant_id for d in batch})
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
            await self.store.mark_published(
                [d.task_id for d in published], tenants={d.tenant_id for d in published}
            )

    async def _publish(self, tasks: Sequence[TaskRecord]) -> list[Dispatch]:
        """Publish; returns what was published (nothing when Redis refused: the relay has it)."""
        items = [Dispatch(t.id, t.tenant_id, t.queue, t.priority, t.region) for t in tasks]
        try:
            await self.producer.publish(items)
        except Unavailable as exc:
            # The row is the truth: the relay publishes it when Redis is back.
            log.warning("publish deferred to the relay", error=str(exc), tasks=len(items))
            return []
        except Exception:  # a bug: the rows are committed all the same, the relay has them
            log.exception("publish failed; deferred to the relay", tasks=len(items))
            return []
        return items


def now_utc() -> datetime:
    return datetime.now(UTC)
