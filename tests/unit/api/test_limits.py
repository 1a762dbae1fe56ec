"""The API's limits against fakes and a fake clock: the token bucket's arithmetic, tokens taken
in chunks and spent locally, refusals answered without another call, the local limit while
Redis is away, and the backlog bound with its counts."""

from __future__ import annotations

import math
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskstream.api.limits import Backlog, Limits, RateLimiter, RateState, TokenBucket
from taskstream.broker.rate import Grant
from taskstream.core.errors import BrokerRefused, BrokerUnavailable, QueueFull, RateLimited
from taskstream.store.tenants import TenantLimits

TENANT = uuid4()
OTHER = uuid4()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeBuckets:
    """The shared buckets, kept as TokenBuckets on the same clock (what rate.lua computes)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.buckets: dict[UUID, TokenBucket] = {}
        self.calls: list[int] = []  # tokens wanted, per call
        self.down: Exception | None = None

    async def take(self, tenant_id: UUID, per_minute: int, want: int) -> Grant:
        if self.down is not None:
            raise self.down
        self.calls.append(want)
        bucket = self.buckets.setdefault(tenant_id, TokenBucket(per_minute, self.clock()))
        return bucket.take(want, self.clock())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def buckets(clock: Clock) -> FakeBuckets:
    return FakeBuckets(clock)


@pytest.fixture
def rate(buckets: FakeBuckets, clock: Clock) -> RateLimiter:
    return RateLimiter(buckets, clock=clock)


def test_a_bucket_starts_full_and_refills_per_second() -> None:
    bucket = TokenBucket(60, now=0.0)
    assert bucket.take(100, 0.0) == Grant(60, 0, 1.0)
    assert bucket.take(1, 0.5).tokens == 0
    assert bucket.take(1, 1.0).tokens == 1
    assert bucket.take(1000, 1000.0).tokens == 60  # never more than a minute's worth


@given(
    per_minute=st.integers(1, 10**6),
    steps=st.lists(st.tuples(st.floats(0, 120), st.integers(1, 5000)), max_size=30),
)
def test_a_bucket_never_grants_more_than_its_limit_allows(
    per_minute: int, steps: list[tuple[float, int]]
) -> None:
    bucket, now, granted = TokenBucket(per_minute, 0.0), 0.0, 0
    for gap, want in steps:
        now += gap
        grant = bucket.take(want, now)
        assert 0 <= grant.tokens <= want
        assert grant.wait_s > 0 if grant.left == 0 else grant.wait_s == 0 or grant.left >= 1
        granted += grant.tokens
        # A minute's limit up front, then limit/60 per second: never more.
        assert granted <= per_minute + math.floor(now * per_minute / 60) + 1


async def test_tokens_are_taken_in_chunks_and_spent_locally(rate, buckets) -> None:
    for _ in range(1000):
        await rate.take(TENANT, 600_000)
    assert buckets.calls == [1000]  # 1/600 of the per-minute limit at once


async def test_a_small_limit_costs_one_call_per_request_and_refuses_past_it(
    rate, buckets, clock
) -> None:
    for _ in range(5):
        await rate.take(TENANT, 5)
    with pytest.raises(RateLimited) as err:
        await rate.take(TENANT, 5)
    assert err.value.status == 429 and err.value.code == "rate_limited"
    assert err.value.retry_after_s == 12  # one token every 60/5 s
    calls = len(buckets.calls)
    for _ in range(100):  # a flood while refused: answered here, no call
        with pytest.raises(RateLimited):
            await rate.take(TENANT, 5)
    assert len(buckets.calls) == calls
    clock.now += 12
    await rate.take(TENANT, 5)  # a token came back


async def test_tenants_have_budgets_of_their_own(rate) -> None:
    for _ in range(3):
        await rate.take(TENANT, 3)
    with pytest.raises(RateLimited):
        await rate.take(TENANT, 3)
    assert (await rate.take(OTHER, 3)).left == 2


async def test_remaining_counts_down_and_reset_says_when_full_again(rate) -> None:
    first = await rate.take(TENANT, 60)
    second = await rate.take(TENANT, 60)
    assert (first.left, second.left) == (59, 58)
    assert second.headers() == {
        "RateLimit-Limit": "60",
        "RateLimit-Remaining": "58",
        "RateLimit-Reset": "2",
    }
    assert RateState(100, 0).headers()["RateLimit-Reset"] == "60"


@pytest.mark.parametrize("outage", [BrokerUnavailable("down"), BrokerRefused("OOM")])
async def test_while_redis_is_away_the_limit_is_kept_locally(rate, buckets, clock, outage) -> None:
    buckets.down = outage
    for _ in range(10):
        await rate.take(TENANT, 10)
    with pytest.raises(RateLimited):
        await rate.take(TENANT, 10)
    buckets.down = None
    clock.now += 10  # past the breaker's cool-down: Redis is asked again
    await rate.take(TENANT, 10)
    assert buckets.calls == [1]


async def test_a_changed_limit_starts_a_new_budget(rate, buckets) -> None:
    await rate.take(TENANT, 600_000)
    await rate.take(TENANT, 1_200_000)
    assert buckets.calls == [1000, 2000]


class FakeCounts:
    def __init__(self) -> None:
        self.waiting: dict[UUID, int] = {}
        self.calls = 0

    async def __call__(self, tenant_id: UUID, up_to: int) -> int:
        self.calls += 1
        return min(up_to, self.waiting.get(tenant_id, 0))


async def test_the_backlog_bound_refuses_what_would_pass_it(clock) -> None:
    counts = FakeCounts()
    backlog = Backlog(counts, clock=clock)
    counts.waiting[TENANT] = 8
    await backlog.admit(TENANT, 10, 2)
    with pytest.raises(QueueFull) as err:
        await backlog.admit(TENANT, 10, 1)  # 8 counted + 2 admitted here
    assert err.value.status == 503 and err.value.code == "queue_full"
    assert err.value.retry_after_s == 1
    counts.waiting[TENANT] = 0  # the worker drained them
    clock.now += 0.3
    await backlog.admit(TENANT, 10, 10)  # a fresh count before refusing
    await backlog.admit(OTHER, 10, 10)


async def test_a_batch_is_all_or_nothing(clock) -> None:
    counts = FakeCounts()
    backlog = Backlog(counts, clock=clock)
    counts.waiting[TENANT] = 5
    with pytest.raises(QueueFull):
        await backlog.admit(TENANT, 10, 6)
    await backlog.admit(TENANT, 10, 5)  # the refused batch counted nothing


async def test_far_from_the_bound_counts_are_rare(clock) -> None:
    counts = FakeCounts()
    backlog = Backlog(counts, clock=clock)
    for _ in range(1000):
        await backlog.admit(TENANT, 1_000_000, 1)
    assert counts.calls == 1
    clock.now += 5
    await backlog.admit(TENANT, 1_000_000, 1)
    assert counts.calls == 2


class FakeSource:
    def __init__(self) -> None:
        self.limits: dict[UUID, TenantLimits] = {}
        self.loads = 0

    async def limits_of(self, tenant_id: UUID) -> TenantLimits:
        self.loads += 1
        return self.limits.get(tenant_id, TenantLimits())


async def test_limits_use_the_tenants_values_or_the_defaults(clock, rate) -> None:
    source = FakeSource()
    source.limits[TENANT] = TenantLimits(rate_limit=2)

    class Source:
        limits = staticmethod(source.limits_of)

    limits = Limits(
        Source(), rate, Backlog(FakeCounts(), clock=clock),
        default_rate=3, default_max_pending=10, ttl_s=10, clock=clock,
    )  # fmt: skip
    for _ in range(2):
        await limits.admit_request(TENANT)
    with pytest.raises(RateLimited):
        await limits.admit_request(TENANT)
    for _ in range(3):
        await limits.admit_request(OTHER)
    with pytest.raises(RateLimited):
        await limits.admit_request(OTHER)
    assert source.loads == 2  # cached for the TTL
    await limits.admit_tasks(OTHER, 10)
    with pytest.raises(QueueFull):
        await limits.admit_tasks(OTHER, 1)
