"""A tenant's dependency breakers (``@task(..., breakers=[...])``, ``ctx.breaker``), as every
worker sees them in Redis, and an operator's reset."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.params import PathParameter

from ..core.breakers import NAME, BreakerState, Stored, effective
from ..core.errors import NotFound
from ..core.rbac import Action
from .auth import actor
from .intake import now_utc
from .openapi import BEARER, problems

BreakerName = Annotated[str, PathParameter(description="A breaker's name, as handlers give it")]


class BreakerOut(msgspec.Struct, kw_only=True):
    """One breaker of the tenant. ``state`` is as a task asking now would find it: an open
    breaker whose cool-down is over is ``half_open`` (the next task probes)."""

    name: str
    state: Literal["closed", "open", "half_open"]
    failures: int  # consecutive failures while closed; those that opened it while open
    opened_at: datetime | None
    reopens_at: datetime | None  # open: when a probe may go through
    probing: bool  # half-open and a task's probe is running
    postponed: int  # tasks it postponed (no attempt spent), ever


class BreakersOut(msgspec.Struct, kw_only=True):
    items: list[BreakerOut]


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def breaker_out(name: str, s: Stored, now_ms: int) -> BreakerOut:
    state = effective(s, now_ms)
    return BreakerOut(
        name=name,
        state=state.value,
        failures=s.failures,
        opened_at=_time(s.opened_at) if state is not BreakerState.CLOSED else None,
        reopens_at=_time(s.reopens_at) if state is not BreakerState.CLOSED else None,
        probing=state is BreakerState.HALF_OPEN
        and s.probe is not None
        and (s.probe_until or 0) > now_ms,
        postponed=s.postponed,
    )


@get(
    "/v1/breakers",
    summary="The tenant's dependency breakers: state, failures, opened and reopen times",
    responses=problems(),
    security=BEARER,
)
async def list_breakers(request: Request[Any, Any, Any], state: State) -> BreakersOut:
    """Breakers appear once a task of the tenant failed on one (a breaker that never failed
    is closed and not listed). Scoped to the tenant: another tenant's breakers are its own."""
    who = await state.auth.principal(request, Action.READ)
    stored, now_ms = await state.breakers.states(who.tenant_id)
    return BreakersOut(items=[breaker_out(n, s, now_ms) for n, s in stored.items()])


@post(
    "/v1/breakers/{name:str}/reset",
    summary="Close a breaker by hand (operator; audited as breaker.reset)",
    status_code=200,
    responses=problems(403, 404),
    security=BEARER,
)
async def reset_breaker(
    request: Request[Any, Any, Any], state: State, name: BreakerName
) -> BreakerOut:
    """Closes the breaker at once (failures 0): its postponed tasks run when their time comes,
    new ones at once. 404 if the tenant has no such breaker."""
    who = await state.auth.principal(request, Action.OPERATE)
    if not NAME.fullmatch(name):
        raise NotFound("breaker not found", code="breaker_not_found")
    by = actor(who, request, now_utc())
    async with state.audit.recording(by, who.tenant_id, "breaker.reset", name):
        before = await state.breakers.reset(who.tenant_id, name)
        if before is None:
            raise NotFound("breaker not found", code="breaker_not_found")
    stored, now_ms = await state.breakers.states(who.tenant_id)
    return breaker_out(name, stored[name], now_ms)


ROUTES = [list_breakers, reset_breaker]
