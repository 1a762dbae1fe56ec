"""What operators look at: queue depths of their tenant, the live workers, and Prometheus."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from ..core.breakers import effective
from ..core.errors import BrokerUnavailable
from ..core.models import Priority
from ..core.rbac import Action
from ..observability.metrics import breaker_exposition, exposition
from .openapi import BEARER, problems


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


@get(
    "/v1/queues",
    summary="Depth per queue and priority, delayed, processing, dead, oldest age",
    responses=problems(),
    security=BEARER,
)
async def list_queues(request: Request[Any, Any, Any], state: State) -> QueuesOut:
    who = await state.auth.principal(request, Action.READ)
    return QueuesOut(items=_queues(await state.workers.queue_stats(who.tenant_id)))


@get(
    "/v1/workers",
    summary="Live workers that serve a queue of this tenant, with only its queues",
    responses=problems(403),
    security=BEARER,
)
async def list_workers(request: Request[Any, Any, Any], state: State) -> WorkersOut:
    who = await state.auth.principal(request, Action.OPERATE)
    rows = await state.workers.live(who.tenant_id, state.settings.visibility_timeout_s + 5)
    return WorkersOut(
        items=[msgspec.convert(r, WorkerOut, from_attributes=False, strict=False) for r in rows]
    )


async def _metrics_tenant(request: Request[Any, Any, Any], state: State) -> UUID | None:
    """Whose queue depths a scrape may see: every tenant's with the operator's metrics token
    (None), else the tenant of an admin key. Anything else is a 401 or 403."""
    token: str | None = state.settings.metrics_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # Bytes: compare_digest refuses str with non-ASCII characters, which a header may hold.
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    ):
        return None
    # No action is "admin only" by name, but only the admin role has ADMIN (core/rbac.py).
    who = await state.auth.principal(request, Action.ADMIN)
    tenant_id: UUID = who.tenant_id
    return tenant_id


@get(
    "/metrics",
    summary="Prometheus metrics: the metrics token, or an admin key (its tenant's depths only)",
    media_type="text/plain; version=0.0.4",
    responses={
        200: ResponseSpec(
            str,
            description="Prometheus text format",
            media_type="text/plain",
            generate_examples=False,
        ),
        **problems(403),
    },
    security=BEARER,
)
async def metrics(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    tenant_id = await _metrics_tenant(request, state)
    rows = await state.workers.depths(tenant_id)
    body = exposition((t, q, Priority(p).label, s, n, age) for t, q, p, s, n, age in rows)
    return Response(
        body + await _breakers(state, tenant_id), media_type="text/plain; version=0.0.4"
    )


async def _breakers(state: State, tenant_id: UUID | None) -> bytes:
    """The breakers' series, from Redis; left out while Redis is unreachable (the depths,
    from PostgreSQL, are still served)."""
    try:
        stored, now_ms = await state.breakers.scrape(tenant_id)
    except BrokerUnavailable:
        return b""
    return breaker_exposition((n, effective(s, now_ms).value, s.postponed) for n, s in stored)


ROUTES = [list_queues, list_workers, metrics]
