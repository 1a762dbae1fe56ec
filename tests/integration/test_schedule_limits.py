"""Limits on a tenant's schedules, through the API against real PostgreSQL: the shortest interval
between fires (on create and on patch) and the number of schedules (also under parallel
creates)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from taskstream.api.app import create_app
from taskstream.core.config import Settings

from .conftest import Tenant

Client = AsyncTestClient[Any]
BASE = "http://testserver.local"
DEFAULT_FLOOR_S = Settings().min_schedule_interval_s  # 10 s; the suite's fixture lowers it to 1 s


def schedule(name: str, cron: str, queue: str = "default") -> dict[str, Any]:
    return {
        "name": name,
        "cron": cron,
        "task": {"type": "examples.echo", "payload": {"message": name}, "queue": queue},
    }


@pytest.fixture
async def app_with(
    api: Client, settings: Settings
) -> Callable[..., contextlib.AbstractAsyncContextManager[Client]]:
    """An API built with some settings changed (``api`` first: it registers the task types)."""

    @contextlib.asynccontextmanager
    async def build(**changes: Any) -> AsyncIterator[Client]:
        changed = msgspec.structs.replace(settings, **changes)
        async with AsyncTestClient(app=create_app(changed)) as client:
            yield client

    return build


@pytest.fixture
async def floored(app_with: Any) -> AsyncIterator[Client]:
    async with app_with(min_schedule_interval_s=DEFAULT_FLOOR_S) as client:
        yield client


async def test_too_frequent_schedules_are_refused_on_create(
    floored: Client, tenants: dict[str, Tenant], pool: Any
) -> None:
    acme = tenants["acme"]
    # Seconds are the LAST field: "*/10 * * * * *" is every second of minutes 0, 10, 20...
    for cron, interval_s in [("* * * * * *", 1), ("*/10 * * * * *", 1), ("* * * * * */5", 5)]:
        r = await floored.post("/v1/schedules", json=schedule("fast", cron), headers=acme.auth())
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["code"] == "schedule_too_frequent"
        assert f"every {interval_s} s" in problem["detail"] and "10 s" in problem["detail"]
        assert problem["extra"] == {"interval_s": interval_s, "min_interval_s": DEFAULT_FLOOR_S}
    assert await pool.fetchval("SELECT count(*) FROM schedules") == 0
    for name, cron in [("every-10s", "* * * * * */10"), ("every-minute", "* * * * *")]:
        r = await floored.post("/v1/schedules", json=schedule(name, cron), headers=acme.auth())
        assert r.status_code == 201, r.text
    # Still a cron expression first: what is not one stays invalid_schedule.
    r = await floored.post("/v1/schedules", json=schedule("x", "61 * * * *"), headers=acme.auth())
    assert (r.status_code, r.json()["code"]) == (422, "invalid_schedule")


async def test_too_frequent_schedules_are_refused_on_patch(
    api: Client, floored: Client, tenants: dict[str, Tenant]
) -> None:
    acme = tenants["acme"]
    r = await floored.post(
        "/v1/schedules", json=schedule("hourly", "0 * * * *"), headers=acme.auth()
    )
    url = f"/v1/schedules/{r.json()['id']}"
    r = await floored.patch(url, json={"cron": "* * * * * *"}, headers=acme.auth())
    assert (r.status_code, r.json()["code"]) == (422, "schedule_too_frequent"), r.text
    assert (await floored.get(url, headers=acme.auth())).json()["cron"] == "0 * * * *"
    r = await floored.patch(url, json={"cron": "* * * * * */10"}, headers=acme.auth())
    assert r.status_code == 200 and r.json()["cron"] == "* * * * * */10", r.text

    # A schedule made under a lower floor keeps running; it can be paused, resumed or given
    # another task, but not another expression under the floor.
    r = await api.post("/v1/schedules", json=schedule("old", "* * * * * *"), headers=acme.auth())
    assert r.status_code == 201, r.text
    old = f"/v1/schedules/{r.json()['id']}"
    for change in ({"paused": True}, {"paused": False, "cron": "* * * * * *"}):
        r = await floored.patch(old, json=change, headers=acme.auth())
        assert r.status_code == 200, r.text
    r = await floored.patch(old, json={"cron": "* * * * * 0-59/2"}, headers=acme.auth())
    assert (r.status_code, r.json()["code"]) == (422, "schedule_too_frequent"), r.text


async def test_the_quota_refuses_one_more_and_writes_nothing(
    app_with: Any, tenants: dict[str, Tenant], pool: Any
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    async with app_with(max_schedules_per_tenant=3) as api:
        for i in range(3):
            r = await api.post(
                "/v1/schedules", json=schedule(f"s{i}", "0 * * * *"), headers=acme.auth()
            )
            assert r.status_code == 201, r.text
        fourth = schedule("s3", "0 * * * *", queue="only-for-the-fourth")
        r = await api.post("/v1/schedules", json=fourth, headers=acme.auth())
        assert r.status_code == 409, r.text
        problem = r.json()
        assert problem["code"] == "schedule_quota_exceeded" and "3" in problem["detail"]
        assert problem["extra"] == {"max_schedules": 3}
        # Nothing written: neither the schedule nor its task's queue.
        assert await pool.fetchval("SELECT count(*) FROM schedules") == 3
        assert (
            await pool.fetchval("SELECT count(*) FROM queues WHERE name = 'only-for-the-fourth'")
            == 0
        )
        # The quota is per tenant, and a delete makes room.
        r = await api.post("/v1/schedules", json=fourth, headers=globex.auth())
        assert r.status_code == 201, r.text
        listed = (await api.get("/v1/schedules", headers=acme.auth())).json()["items"]
        assert (
            await api.delete(f"/v1/schedules/{listed[0]['id']}", headers=acme.auth())
        ).status_code == 204
        r = await api.post("/v1/schedules", json=fourth, headers=acme.auth())
        assert r.status_code == 201, r.text
        assert (
            await pool.fetchval("SELECT count(*) FROM queues WHERE name = 'only-for-the-fourth'")
            == 2
        )


# Each insert takes 0.2 s, so every create counts before any commits: without the lock they
# would all see 2 schedules and all be written.
SLOW_INSERTS = """
CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$;
CREATE TRIGGER slow_insert BEFORE INSERT ON schedules FOR EACH ROW EXECUTE FUNCTION slow_insert();
"""


async def test_parallel_creates_at_quota_minus_one_admit_exactly_one(
    api: Client, settings: Settings, tenants: dict[str, Tenant], pool: Any
) -> None:
    acme = tenants["acme"]
    parallel = 8
    # Not the test client: it hands each request to the app's thread and waits for the answer,
    # so its requests never overlap. Here they share this event loop, as a server's do.
    app = create_app(
        msgspec.structs.replace(settings, max_schedules_per_tenant=3, db_pool_size=parallel + 2)
    )
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url=BASE) as api:
        for i in range(2):
            r = await api.post(
                "/v1/schedules", json=schedule(f"s{i}", "0 * * * *"), headers=acme.auth()
            )
            assert r.status_code == 201, r.text
        await pool.execute(SLOW_INSERTS)
        answers = await asyncio.gather(*(
            api.post("/v1/schedules", json=schedule(f"p{i}", "0 * * * *"), headers=acme.auth())
            for i in range(parallel)
        ))  # fmt: skip
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * (parallel - 1), [r.text for r in answers]
    refused = {r.json()["code"] for r in answers if r.status_code == 409}
    assert refused == {"schedule_quota_exceeded"}
    assert await pool.fetchval("SELECT count(*) FROM schedules") == 3
