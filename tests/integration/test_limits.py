"""Per-tenant limits through the real app on real Redis and PostgreSQL: the rate limit's 429
and headers, a tenant's own limit, the backlog bound's 503 with nothing written, the script's
arithmetic against the in-memory bucket, and the local limit while Redis is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from taskstream.api.app import create_app
from taskstream.api.limits import TokenBucket
from taskstream.broker.connection import connect
from taskstream.broker.keys import Keys
from taskstream.broker.rate import RateBuckets
from taskstream.core.config import Settings
from taskstream.store.tenants import TenantStore

pytestmark = pytest.mark.cluster_too  # also on a 3-master Redis Cluster

ECHO = {"type": "examples.echo", "payload": {"message": "hi"}}


@contextlib.asynccontextmanager
async def app_with(settings: Settings, **changes: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app on changed settings (the `api` fixture has registered the task types)."""
    async with AsyncTestClient(app=create_app(msgspec.structs.replace(settings, **changes))) as c:
        yield c


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_past_the_rate_every_route_answers_429_with_headers(api, settings, tenants) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    async with app_with(settings, tenant_rate_limit=5) as client:
        seen = []
        for path in ["/v1/tasks", "/v1/queues", "/v1/schedules", "/v1/keys"]:
            r = await client.get(path, headers=acme.auth())
            assert r.status_code == 200, r.text
            seen.append(int(r.headers["RateLimit-Remaining"]))
            assert r.headers["RateLimit-Limit"] == "5"
        assert seen == [4, 3, 2, 1]
        r = await client.post("/v1/tasks", json=ECHO, headers=acme.auth())
        assert r.status_code == 201 and r.headers["RateLimit-Remaining"] == "0"
        for path in ["/v1/tasks", "/v1/dead-letters"]:
            r = await client.get(path, headers=acme.auth())
            assert r.status_code == 429, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "rate_limited"
            assert r.headers["Retry-After"] == "12"  # one request every 60/5 s
            assert r.headers["RateLimit-Remaining"] == "0"
            assert int(r.headers["RateLimit-Reset"]) == 60
        r = await client.post("/v1/tasks", json=ECHO, headers=acme.auth())
        assert r.status_code == 429
        # Another tenant's budget is its own.
        r = await client.get("/v1/tasks", headers=globex.auth())
        assert r.status_code == 200 and r.headers["RateLimit-Remaining"] == "4"
        # A 4xx of the tenant's own still says where its rate stands.
        r = await client.get("/v1/tasks/not-a-task", headers=globex.auth())
        assert r.status_code == 404 and r.headers["RateLimit-Remaining"] == "3"
    assert await _tasks(api, acme) == 1  # the refused submit wrote nothing


async def _tasks(api: AsyncTestClient[Any], tenant: Any) -> int:
    r = await api.get("/v1/tasks", headers=tenant.auth())
    assert r.status_code == 200
    return len(r.json()["items"])


async def test_a_tenants_own_rate_limit_wins_over_the_default(api, settings, pool, tenants) -> None:
    await TenantStore(pool).update_tenant("acme", {"rate_limit": 2})
    async with app_with(settings, tenant_rate_limit=1000) as client:
        statuses = [
            (await client.get("/v1/tasks", headers=tenants["acme"].auth())).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        r = await client.get("/v1/tasks", headers=tenants["globex"].auth())
        assert r.headers["RateLimit-Limit"] == "1000"


async def test_unauthenticated_requests_carry_no_rate_headers(api, settings) -> None:
    async with app_with(settings, tenant_rate_limit=5) as client:
        r = await client.get("/v1/tasks", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and "RateLimit-Limit" not in r.headers


async def test_the_backlog_bound_is_503_and_writes_nothing(api, settings, pool, tenants) -> None:
    acme = tenants["acme"]
    await TenantStore(pool).update_tenant("acme", {"max_pending": 3})
    async with app_with(settings) as client:
        for _ in range(2):
            assert (
                await client.post("/v1/tasks", json=ECHO, headers=acme.auth())
            ).status_code == 201
        # A batch past the bound: all or nothing.
        r = await client.post("/v1/tasks/batch", json={"tasks": [ECHO, ECHO]}, headers=acme.auth())
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "queue_full" and r.headers["Retry-After"] == "1"
        assert (await client.post("/v1/tasks", json=ECHO, headers=acme.auth())).status_code == 201
        r = await client.post("/v1/tasks", json=ECHO, headers=acme.auth())
        assert r.status_code == 503 and r.json()["code"] == "queue_full"
        # Another tenant is not held back; reads are not either.
        assert (
            await client.post("/v1/tasks", json=ECHO, headers=tenants["globex"].auth())
        ).status_code == 201
        assert (await client.get("/v1/tasks", headers=acme.auth())).status_code == 200
    waiting = await pool.fetchval(
        "SELECT count(*) FROM tasks WHERE tenant_id = $1 AND status IN ('pending', 'scheduled')",
        acme.id,
    )
    assert waiting == 3


async def test_scheduled_tasks_count_as_waiting(api, settings, pool, tenants) -> None:
    acme = tenants["acme"]
    await TenantStore(pool).update_tenant("acme", {"max_pending": 1})
    async with app_with(settings) as client:
        later = {**ECHO, "delay_s": 3600}
        assert (await client.post("/v1/tasks", json=later, headers=acme.auth())).status_code == 201
        r = await client.post("/v1/tasks", json=ECHO, headers=acme.auth())
        assert r.status_code == 503


async def test_the_script_keeps_the_same_bucket_as_the_model(settings) -> None:
    redis = connect(settings.redis_url)
    keys = Keys(settings.redis_prefix)
    buckets = RateBuckets(redis, keys)
    tenant = uuid4()
    try:
        first = await buckets.take(tenant, 60, 100)
        assert (first.tokens, first.left) == (60, 0)
        assert 0.9 <= first.wait_s <= 1.0
        assert (await buckets.take(tenant, 60, 1)).tokens == 0
        # The bucket is readable and goes away once it would be full again.
        name = f"{settings.redis_prefix}:rate:{tenant}"
        assert await redis.exists(name) == 1
        assert 0 < await redis.pttl(name) <= 61_000
        model = TokenBucket(60, 0.0)
        assert model.take(100, 0.0)[:2] == (first.tokens, first.left)
    finally:
        await redis.aclose()


async def test_without_redis_each_process_keeps_the_limit_itself(api, settings, tenants) -> None:
    dead = f"redis://127.0.0.1:{_closed_port()}/0"
    async with app_with(settings, redis_url=dead, tenant_rate_limit=3) as client:
        statuses = [
            (await client.get("/v1/tasks", headers=tenants["acme"].auth())).status_code
            for _ in range(4)
        ]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize("limit", [1, 7])
async def test_concurrent_requests_never_pass_the_limit(api, settings, tenants, limit) -> None:
    async with app_with(settings, tenant_rate_limit=limit) as client:
        rs = await asyncio.gather(
            *(client.get("/v1/tasks", headers=tenants["acme"].auth()) for _ in range(20))
        )
    assert sorted(r.status_code for r in rs) == [200] * limit + [429] * (20 - limit)
