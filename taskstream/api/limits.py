"""Per-tenant limits at the API: a request rate over every route (429 ``rate_limited``) and a
bound on waiting tasks for submits (503 ``queue_full``).

Rate. A tenant's budget is a token bucket in Redis holding one minute's limit, refilled
continuously (``broker/lua/rate.lua``), shared by every API process. A process takes tokens in
chunks of 1/600 of the per-minute limit (at least one) and spends them locally, so a tenant at
100 requests a minute costs one Redis call per request, and one at a million a minute one call
per 1,666 requests. Over the limit the process remembers until when the bucket is empty and
answers 429 itself meanwhile: a flood of refused requests costs Redis nothing. Every response to
a tenant's request carries ``RateLimit-Limit``, ``RateLimit-Remaining`` (the bucket as of the
last call, less what this process spent since) and ``RateLimit-Reset`` (seconds until the
bucket is full again). While Redis is unreachable (or refuses the call) the limit is kept by
each API process alone, with the same bucket in memory: fail open to a local limit, logged once
per outage, so N API processes then allow up to N times the limit.

Backlog. A submit that would take the tenant's waiting tasks (pending + scheduled) past its
``--max-pending`` is refused before anything is written; a batch is all or nothing. The count
comes from PostgreSQL (bounded by the limit, through the (tenant, status) index) at most every
5 s, or every 0.25 s once it is past half the bound, plus what this process admitted since. So
several API processes can overshoot the bound by what they admit between two counts.

Limits are read from the tenant's row (``TenantStore.limits``) and trusted for the key cache's
TTL; a tenant without its own values gets the deployment's defaults.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol
from uuid import UUID

import structlog
from litestar import Response

from ..broker.rate import Grant
from ..core.breaker import Breaker
from ..core.errors import BrokerUnavailable, QueueFull, RateLimited
from ..store.tenants import TenantLimits
from .caches import SharedCalls, remember

log = structlog.get_logger("taskstream.api")
CHUNK_SHARE = 600  # tokens taken at once: 1/600 of the per-minute limit (0.1 s of it)
MAX_CHUNK = 10_000
COUNT_EVERY_S = 5.0
COUNT_NEAR_EVERY_S = 0.25  # once the count is past half the bound
MAX_TENANTS = 10_000  # tenants whose budgets and counts a process remembers


class LimitSource(Protocol):
    async def limits(self, tenant_id: UUID) -> TenantLimits: ...


class BucketSource(Protocol):
    async def take(self, tenant_id: UUID, per_minute: int, want: int) -> Grant: ...


class TokenBucket:
    """The bucket of ``rate.lua``, in memory: the local limit while Redis is away, and the
    reference the script is tested against. Pure: ``now`` (seconds) is an argument."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.per_minute = per_minute
        self.tokens = float(per_minute)
        self.at = now

    def take(self, want: int, now: float) -> Grant:
        per_s = self.per_minute / 60
        self.tokens = min(self.per_minute, self.tokens + max(0.0, now - self.at) * per_s)
        self.at = now
        granted = min(want, math.floor(self.tokens))
        self.tokens -= granted
        wait_s = (1 - self.tokens) / per_s if self.tokens < 1 else 0.0
        return Grant(granted, math.floor(self.tokens), wait_s)


class RateState:
    """What one request's rate headers say."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int, left: int) -> None:
        self.limit = limit
        self.left = left

    def headers(self) -> dict[str, str]:
        reset_s = math.ceil((self.limit - self.left) * 60 / self.limit)
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.left),
            "RateLimit-Reset": str(max(0, reset_s)),
        }


# The current request's rate state: set when its tenant is admitted, read when its response
# (or problem) is built. Each request runs in a task of its own, so nothing leaks between them.
_CURRENT: ContextVar[RateState | None] = ContextVar("taskstream_rate", default=None)


def rate_headers() -> dict[str, str] | None:
    state = _CURRENT.get()
    return state.headers() if state is not None else None


async def add_rate_headers(response: Response[Any]) -> Response[Any]:
    """The app's ``after_request`` hook."""
    state = _CURRENT.get()
    if state is not None:
        response.headers.update(state.headers())
    return response


class _Budget:
    __slots__ = ("denied_until", "left", "local", "per_minute", "tokens")

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.tokens = 0  # taken from the shared bucket, not spent yet
        self.left = per_minute  # the shared bucket at the last call
        self.denied_until = 0.0
        self.local: TokenBucket | None = None  # while Redis is away


class RateLimiter:
    def __init__(
        self, buckets: BucketSource, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.buckets = buckets
        self.clock = clock
        self.breaker = Breaker(cooldown_s=1.0, max_cooldown_s=10.0, clock=clock)
        self._budgets: dict[UUID, _Budget] = {}

    async def take(self, tenant_id: UUID, per_minute: int) -> RateState:
        """One request's token, or RateLimited."""
        budget = self._budgets.get(tenant_id)
        if budget is None or budget.per_minute != per_minute:
            budget = self._budget(tenant_id, per_minute)
        if budget.tokens > 0:
            budget.tokens -= 1
            return RateState(per_minute, max(0, budget.left + budget.tokens))
        now = self.clock()
        if now < budget.denied_until:
            raise _limited(per_minute, budget.denied_until - now)
        grant = await self._grant(tenant_id, budget, now)
        if grant.tokens == 0:
            budget.denied_until = now + grant.wait_s
            raise _limited(per_minute, grant.wait_s)
        budget.tokens, budget.left = grant.tokens - 1, grant.left
        return RateState(per_minute, grant.left + budget.tokens)

    async def _grant(self, tenant_id: UUID, budget: _Budget, now: float) -> Grant:
        want = min(MAX_CHUNK, max(1, budget.per_minute // CHUNK_SHARE))
        if not self.breaker.is_open:
            try:
                grant = await self.buckets.take(tenant_id, budget.per_minute, want)
            except BrokerUnavailable as exc:  # BrokerRefused too: OOM, READONLY...
                if self.breaker.failures == 0:
                    log.warning(
                        "rate limits are kept per API process until Redis answers", error=str(exc)
                    )
                self.breaker.failure()
            else:
                if self.breaker.failures:
                    log.info("rate limits are shared through Redis again")
                self.breaker.success()
                budget.local = None
                return grant
        if budget.local is None:
            budget.local = TokenBucket(budget.per_minute, now)
        return budget.local.take(1, now)

    def _budget(self, tenant_id: UUID, per_minute: int) -> _Budget:
        budget = _Budget(per_minute)
        remember(self._budgets, tenant_id, budget, MAX_TENANTS)
        return budget


def _limited(per_minute: int, wait_s: float) -> RateLimited:
    retry_after_s = max(1, math.ceil(wait_s))
    return RateLimited(
        f"over this tenant's limit of {per_minute:,} requests a minute; retry in {retry_after_s} s",
        retry_after_s=retry_after_s,
    )


class _Count:
    __slots__ = ("added", "at", "counted")

    def __init__(self, counted: int, at: float) -> None:
        self.counted = counted
        self.at = at
        self.added = 0  # admitted by this process since the count


class Backlog:
    """Waiting tasks per tenant, counted now and then, against ``max_pending``."""

    def __init__(
        self,
        count: Callable[[UUID, int], Awaitable[int]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.count = count  # (tenant, up to) -> waiting tasks, at most `up to`
        self.clock = clock
        self._counts: dict[UUID, _Count] = {}
        self._recounts: SharedCalls[UUID, _Count] = SharedCalls()

    async def admit(self, tenant_id: UUID, max_pending: int, adding: int) -> None:
        """Count ``adding`` tasks in, or raise QueueFull (and count nothing)."""
        seen = self._counts.get(tenant_id)
        if seen is None or self.clock() - seen.at >= self._every(seen, max_pending):
            seen = await self._recount(tenant_id, max_pending)
        elif (
            seen.counted + seen.added + adding > max_pending
            and self.clock() - seen.at >= COUNT_NEAR_EVERY_S
        ):
            seen = await self._recount(tenant_id, max_pending)  # a fresh look before refusing
        if seen.counted + seen.added + adding > max_pending:
            raise QueueFull(
                f"this tenant has {max_pending:,} tasks waiting (its limit); "
                f"{adding:,} more cannot be accepted now",
                retry_after_s=1,
            )
        seen.added += adding

    @staticmethod
    def _every(seen: _Count, max_pending: int) -> float:
        near = (seen.counted + seen.added) * 2 > max_pending
        return COUNT_NEAR_EVERY_S if near else COUNT_EVERY_S

    async def _recount(self, tenant_id: UUID, max_pending: int) -> _Count:
        """One count per tenant at a time, shared by every request waiting for it."""
        return await self._recounts(tenant_id, lambda: self._count_now(tenant_id, max_pending))

    async def _count_now(self, tenant_id: UUID, max_pending: int) -> _Count:
        at = self.clock()
        fresh = _Count(await self.count(tenant_id, max_pending + 1), at)
        remember(self._counts, tenant_id, fresh, MAX_TENANTS)
        return fresh


class Limits:
    """What a tenant's request must pass after its key verified: the rate (every route) and,
    for submits, the backlog."""

    def __init__(
        self,
        source: LimitSource,
        rate: RateLimiter,
        backlog: Backlog,
        *,
        default_rate: int,
        default_max_pending: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.rate = rate
        self.backlog = backlog
        self.default_rate = default_rate
        self.default_max_pending = default_max_pending
        self.ttl_s = ttl_s
        self.clock = clock
        self._policies: dict[UUID, tuple[float, TenantLimits]] = {}
        self._loads: SharedCalls[UUID, TenantLimits] = SharedCalls()

    async def admit_request(self, tenant_id: UUID) -> None:
        policy = await self.policy(tenant_id)
        per_minute = policy.rate_limit or self.default_rate
        try:
            _CURRENT.set(await self.rate.take(tenant_id, per_minute))
        except RateLimited:
            _CURRENT.set(RateState(per_minute, 0))
            raise

    async def admit_tasks(self, tenant_id: UUID, count: int) -> None:
        policy = await self.policy(tenant_id)
        await self.backlog.admit(tenant_id, policy.max_pending or self.default_max_pending, count)

    async def policy(self, tenant_id: UUID) -> TenantLimits:
        cached = self._policies.get(tenant_id)
        if cached is not None and self.clock() - cached[0] < self.ttl_s:
            return cached[1]
        return await self._loads(tenant_id, lambda: self._load(tenant_id))

    async def _load(self, tenant_id: UUID) -> TenantLimits:
        at = self.clock()
        policy = await self.source.limits(tenant_id)
        remember(self._policies, tenant_id, (at, policy), MAX_TENANTS)
        return policy
