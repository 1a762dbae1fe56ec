"""What operators look at: queue depths of their tenant and the live workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State

from ..core.models import Priority
from ..core.rbac import Action
from ..observability.metrics import exposition, set_depths
from .tasks import to_json


class QueueOut(msgspec.Struct, kw_only=True):
    queue: str
    pending: dict[str, int]  # by priority
    scheduled: int  # delayed or waiting for a retry
    processing: int
    dead: int  # failed: the dead-letter queue
    oldest_pending_age_s: float | None


class QueuesOut(msgspec.Struct, kw_only=True):
    items: list[QueueOut]


class WorkerOut(msgspec.Struct, kw_only=True):
    name: str
    host: str
    pid: int
    queues: list[str] | None
    concurrency: int
    running: int
    degraded: bool
    started_at: datetime
    last_seen: datetime


class WorkersOut(msgspec.Struct, kw_only=True):
    items: list[WorkerOut]


def _queues(rows: list[dict[str, Any]]) -> list[QueueOut]:
    out: dict[str, QueueOut] = {}
    for r in rows:
        q = out.setdefault(r["queue"], QueueOut(
            queue=r["queue"], pending={p.label: 0 for p in Priority}, scheduled=0,
            processing=0, dead=0, oldest_pending_age_s=None,
        ))  # fmt: skip
        if r["status"] == "pending":
            q.pending[Priority(r["priority"]).label] += r["n"]
            q.oldest_pending_age_s = max(q.oldest_pending_age_s or 0.0, r["oldest_s"])
        elif r["status"] == "failed":
            q.dead += r["n"]
        else:
            setattr(q, r["status"], getattr(q, r["status"]) + r["n"])
    return sorted(out.values(), key=lambda q: q.queue)


@get("/v1/queues", summary="Depth per queue and priority, delayed, processing, dead, oldest age")
async def list_queues(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    who = await state.auth.principal(request, Action.READ)
    return to_json(QueuesOut(items=_queues(await state.workers.queue_stats(who.tenant_id))))


@get("/v1/workers", summary="Workers that sent a heartbeat recently")
async def list_workers(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    await state.auth.principal(request, Action.OPERATE)
    rows = await state.workers.live(state.settings.visibility_timeout_s + 5)
    items = [msgspec.convert(r, WorkerOut, from_attributes=False, strict=False) for r in rows]
    return to_json(WorkersOut(items=items))


@get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    rows = await state.workers.depths()
    set_depths((q, Priority(p).label, s, n) for q, p, s, n in rows)
    return Response(exposition(), media_type="text/plain; version=0.0.4")


ROUTES = [list_queues, list_workers, metrics]
