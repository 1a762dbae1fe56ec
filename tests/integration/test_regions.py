"""Regions (issue 13): a task runs only on workers of its region (the one it names, else its
tenant's home region); a task without one only on workers without one; an unknown region is
422. Real API, workers, PostgreSQL and Redis."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from taskstream.api.app import create_app
from taskstream.core.config import Settings
from taskstream.store.tenants import TenantStore

from .conftest import new_task


@pytest.fixture
def regional(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, regions="eu,us")


async def test_each_task_runs_in_its_region_only(
    regional: Settings, api: Any, tenants: Any, pool: Any, start_worker: Any, until: Any
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    await TenantStore(pool).update_tenant("acme", {}, region="eu")
    workers = {
        "eu": await start_worker(region="eu", regions="eu,us"),
        "us": await start_worker(region="us", regions="eu,us"),
        None: await start_worker(regions="eu,us"),
    }
    expected: dict[str, str | None] = {}
    async with AsyncTestClient(app=create_app(regional)) as client:
        for tenant, region, lands in (
            (acme, None, "eu"), (acme, "us", "us"), (globex, None, None), (globex, "eu", "eu"),
        ):  # fmt: skip
            for _ in range(5):
                body = {"type": "examples.noop", **({"region": region} if region else {})}
                r = await client.post("/v1/tasks", json=body, headers=tenant.auth())
                assert r.status_code == 201, r.text
                assert r.json()["region"] == lands
                expected[r.json()["id"]] = lands
        r = await client.post(
            "/v1/tasks", json={"type": "examples.noop", "region": "mars"}, headers=acme.auth()
        )
        assert (r.status_code, r.json()["code"]) == (422, "unknown_region")
        assert "eu, us" in r.json()["detail"]

    async def all_done() -> bool:
        n = await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'completed'")
        return bool(n == len(expected))

    await until(all_done)
    ran = await pool.fetch("SELECT task_id, worker FROM task_attempts")
    by_name = {w.name: region for region, w in workers.items()}
    assert len(ran) == len(expected)  # one attempt each
    assert {str(r["task_id"]): by_name[r["worker"]] for r in ran} == expected
    assert set(expected.values()) == {"eu", "us", None}


async def test_no_regions_configured_refuses_one(api: Any, tenants: Any) -> None:
    r = await api.post(
        "/v1/tasks", json={"type": "examples.noop", "region": "eu"}, headers=tenants["acme"].auth()
    )
    assert (r.status_code, r.json()["code"]) == (422, "unknown_region")
    assert "none configured" in r.json()["detail"]


async def test_degraded_claims_keep_to_the_region(store: Any, tenants: Any) -> None:
    """Redis down: workers claim from the table, still only their region's tasks."""
    tid = tenants["acme"].id
    tasks = {region: new_task(tid, region=region) for region in ("eu", "us", None)}
    await store.insert_many(list(tasks.values()))
    for region, task in tasks.items():
        got = await store.claim_from_table(None, 10, f"w-{region}", 30.0, region)
        assert [t.id for t in got] == [task.id], region


async def test_a_tenants_home_region_is_taken_at_submit(
    store: Any, tenants: Any, pool: Any
) -> None:
    ts = TenantStore(pool)
    await ts.update_tenant("acme", {}, region="us")
    info = next(t for t in await ts.list_tenants() if t.name == "acme")
    assert info.region == "us"
    tid = tenants["acme"].id
    (kept,) = await store.insert_many([new_task(tid)])
    assert kept.task.region == "us"
    await ts.update_tenant("acme", {}, region=None)  # moving home leaves old tasks where they are
    (later,) = await store.insert_many([new_task(tid)])
    assert later.task.region is None
    assert (await store.get(tid, kept.task.id)).region == "us"
    rows = await pool.fetch("SELECT name, region FROM queues WHERE tenant_id = $1", UUID(str(tid)))
    assert sorted((r["name"], r["region"]) for r in rows) == [("default", ""), ("default", "us")]
