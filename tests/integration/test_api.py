"""The REST surface against real PostgreSQL and Redis: happy paths and every 4xx."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from taskstream.core.models import Priority

pytestmark = pytest.mark.cluster_too  # also on a 3-master Redis Cluster

ECHO = {"type": "examples.echo", "payload": {"message": "hi"}}


def json_body(tenant: Any) -> dict[str, str]:
    """Headers for a raw body: the door refuses one not labelled application/json (415)."""
    return {**tenant.auth(), "content-type": "application/json"}


async def count_tasks(pool: Any) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM tasks"))


async def test_submit_then_complete(api, tenants, start_worker, promoter, until) -> None:
    acme = tenants["acme"]
    await start_worker()
    r = await api.post("/v1/tasks", json=ECHO, headers=acme.auth("submitter"))
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["status"] in {"pending", "processing", "completed"}
    assert task["priority"] == "normal" and task["queue"] == "default"
    assert task["max_attempts"] == 3 and task["timeout_s"] == 10.0

    async def done() -> bool:
        got = await api.get(f"/v1/tasks/{task['id']}", headers=acme.auth("viewer"))
        return got.json()["status"] == "completed"

    await until(done)
    final = (await api.get(f"/v1/tasks/{task['id']}", headers=acme.auth())).json()
    assert final["result"] == {"echo": "hi", "attempt": 1}
    assert final["attempts"] == 1
    assert final["created_at"] <= final["started_at"] <= final["finished_at"]
    for field in (
        "id",
        "type",
        "queue",
        "priority",
        "status",
        "payload",
        "result",
        "last_error",
        "attempts",
        "max_attempts",
        "timeout_s",
        "idempotency_key",
        "correlation_id",
        "run_at",
        "created_at",
        "started_at",
        "finished_at",
    ):
        assert field in final


async def test_batch_submit_and_list(api, tenants, start_worker, until) -> None:
    acme = tenants["acme"]
    body = {
        "tasks": [
            {"type": "examples.echo", "payload": {"message": str(i)}, "priority": p}
            for i, p in enumerate(["low", "high", "critical"])
        ]
    }
    r = await api.post("/v1/tasks/batch", json=body, headers=acme.auth())
    assert r.status_code == 201, r.text
    items = r.json()["items"]
    assert [i["status"] for i in items] == [201, 201, 201]
    assert [i["task"]["priority"] for i in items] == ["low", "high", "critical"]

    page1 = (await api.get("/v1/tasks?limit=2", headers=acme.auth())).json()
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    page2 = (
        await api.get(f"/v1/tasks?limit=2&cursor={page1['next_cursor']}", headers=acme.auth())
    ).json()
    ids = [t["id"] for t in page1["items"] + page2["items"]]
    assert sorted(ids, reverse=True) == ids and len(set(ids)) == 3  # newest first, no repeats
    filtered = (
        await api.get(
            "/v1/tasks?type=examples.echo&status=pending&queue=default", headers=acme.auth()
        )
    ).json()
    assert len(filtered["items"]) == 3


async def test_tenants_are_isolated(api, tenants) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    task = (await api.post("/v1/tasks", json=ECHO, headers=acme.auth())).json()
    r = await api.get(f"/v1/tasks/{task['id']}", headers=globex.auth())
    assert r.status_code == 404 and r.json()["code"] == "task_not_found"
    r = await api.post(f"/v1/tasks/{task['id']}/cancel", headers=globex.auth())
    assert r.status_code == 404
    assert (await api.get("/v1/tasks", headers=globex.auth())).json()["items"] == []
    # A missing id looks exactly like another tenant's.
    r = await api.get("/v1/tasks/01a221ec-0000-7000-8000-000000000000", headers=globex.auth())
    assert r.status_code == 404 and r.json()["code"] == "task_not_found"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_api_key"),
        ({"Authorization": "Bearer tsk_nope_nope"}, 401, "invalid_api_key"),
        ({"Authorization": "Bearer garbage"}, 401, "invalid_api_key"),
        ({"Authorization": "Basic abc"}, 401, "missing_api_key"),
    ],
)
async def test_bad_credentials(api, tenants, pool, headers, status, code) -> None:
    r = await api.post("/v1/tasks", json=ECHO, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code
    assert await count_tasks(pool) == 0


async def test_wrong_key_of_real_prefix(api, tenants, pool) -> None:
    prefix = tenants["acme"].key.split("_")[1]
    r = await api.post(
        "/v1/tasks", json=ECHO, headers={"Authorization": f"Bearer tsk_{prefix}_wrongsecret"}
    )
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
    assert await count_tasks(pool) == 0


async def test_viewer_cannot_submit_or_cancel(api, tenants, pool) -> None:
    acme = tenants["acme"]
    r = await api.post("/v1/tasks", json=ECHO, headers=acme.auth("viewer"))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    task = (await api.post("/v1/tasks", json=ECHO, headers=acme.auth("submitter"))).json()
    r = await api.post(f"/v1/tasks/{task['id']}/cancel", headers=acme.auth("submitter"))
    assert r.status_code == 403
    assert await count_tasks(pool) == 1


BAD_BODIES = [
    (b'{"type": "examples.echo", "payload": ', 400, "malformed_json"),
    (b"[]", 422, "invalid_body"),
    (b'{"type": "nope.nothing", "payload": {}}', 422, "unknown_task_type"),
    (b'{"type": "examples.echo", "payload": {"message": 5}}', 422, "invalid_payload"),
    (b'{"type": "examples.echo", "payload": {}}', 422, "invalid_payload"),
    (
        b'{"type": "examples.echo", "payload": {"message": "x"}, "priority": "urgent"}',
        422,
        "invalid_body",
    ),
    (b'{"type": "examples.echo", "payload": {"message": "x"}, "bogus": 1}', 422, "invalid_body"),
    (
        b'{"type": "examples.echo", "payload": {"message": "x"}, "queue": "a b{c}"}',
        422,
        "invalid_queue",
    ),
    (
        b'{"type": "examples.echo", "payload": {"message": "x"}, "max_attempts": 0}',
        422,
        "invalid_body",
    ),
    (
        b'{"type": "examples.echo", "payload": {"message": "x"}, "delay_s": 1, '
        b'"run_at": "2030-01-01T00:00:00Z"}',
        422,
        "invalid_schedule",
    ),
    (
        b'{"type": "examples.echo", "payload": {"message": "x"}, "run_at": "2030-01-01T00:00:00"}',
        422,
        "invalid_schedule",
    ),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
async def test_bad_bodies_write_nothing(api, tenants, pool, body, status, code) -> None:
    r = await api.post("/v1/tasks", content=body, headers=json_body(tenants["acme"]))
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["code"] == code and problem["status"] == status and problem["detail"]
    assert await count_tasks(pool) == 0


async def test_oversized_payload_is_413(api, tenants, pool) -> None:
    big = {"type": "examples.echo", "payload": {"message": "x" * 300_000}}
    r = await api.post("/v1/tasks", json=big, headers=tenants["acme"].auth())
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert await count_tasks(pool) == 0


async def test_batch_with_one_bad_item_writes_nothing(api, tenants, pool) -> None:
    body = {"tasks": [ECHO, {"type": "examples.echo", "payload": {"message": 1}}, ECHO]}
    r = await api.post("/v1/tasks/batch", json=body, headers=tenants["acme"].auth())
    assert r.status_code == 422 and r.json()["code"] == "invalid_batch"
    assert [e["index"] for e in r.json()["errors"]] == [1]
    assert await count_tasks(pool) == 0
    too_many = {"tasks": [ECHO] * 1001}
    r = await api.post("/v1/tasks/batch", json=too_many, headers=tenants["acme"].auth())
    assert r.status_code == 422
    assert await count_tasks(pool) == 0


async def test_idempotency_keys(api, tenants, pool) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    body = {**ECHO, "idempotency_key": "order-42"}
    first = await api.post("/v1/tasks", json=body, headers=acme.auth())
    again = await api.post("/v1/tasks", json=body, headers=acme.auth())
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await api.post(
        "/v1/tasks", json={**body, "payload": {"message": "changed"}}, headers=acme.auth()
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    # Keys are per tenant: the same key in another tenant is a new task.
    theirs = await api.post("/v1/tasks", json=body, headers=globex.auth())
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    assert await count_tasks(pool) == 2


async def test_cancelled_delayed_task_never_runs(
    api, tenants, start_worker, promoter, pool
) -> None:
    acme = tenants["acme"]
    await start_worker()
    task = (await api.post("/v1/tasks", json={**ECHO, "delay_s": 0.5}, headers=acme.auth())).json()
    assert task["status"] == "scheduled"
    r = await api.post(f"/v1/tasks/{task['id']}/cancel", headers=acme.auth())
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # Well past its due time, with the promoter and a worker running, it has not run.
    import asyncio

    await asyncio.sleep(1.5)
    final = (await api.get(f"/v1/tasks/{task['id']}", headers=acme.auth())).json()
    assert final["status"] == "cancelled" and final["started_at"] is None
    assert final["attempts"] == 0
    again = await api.post(f"/v1/tasks/{task['id']}/cancel", headers=acme.auth())
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"


async def test_delayed_task_runs_when_due(api, tenants, start_worker, promoter, until) -> None:
    acme = tenants["acme"]
    await start_worker()
    task = (await api.post("/v1/tasks", json={**ECHO, "delay_s": 0.3}, headers=acme.auth())).json()
    assert task["status"] == "scheduled"

    async def done() -> bool:
        r = await api.get(f"/v1/tasks/{task['id']}", headers=acme.auth())
        return r.json()["status"] == "completed"

    await until(done, timeout_s=10)


async def test_health_and_openapi(api) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "postgresql": "ok",
        "redis": "ok",
    }
    schema = (await api.get("/schema/openapi.json")).json()
    assert "/v1/tasks" in schema["paths"] and "/v1/tasks/{task_id}" in schema["paths"]


async def test_unknown_route_and_bad_query_are_problems(api, tenants) -> None:
    r = await api.get("/v1/nothing", headers=tenants["acme"].auth())
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await api.get("/v1/tasks?limit=abc", headers=tenants["acme"].auth())
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem")
    r = await api.get("/v1/tasks?status=weird", headers=tenants["acme"].auth())
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameter"
    r = await api.get("/v1/tasks?cursor=zzz", headers=tenants["acme"].auth())
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"


async def test_idempotency_key_expires_after_the_window(api, tenants, pool) -> None:
    acme = tenants["acme"]
    body = {**ECHO, "idempotency_key": "nightly-2026-11-28"}
    first = (await api.post("/v1/tasks", json=body, headers=acme.auth())).json()
    # Time passes beyond the window (24 h by default).
    await pool.execute("UPDATE tasks SET created_at = now() - interval '25 hours'")
    again = await api.post("/v1/tasks", json=body, headers=acme.auth())
    assert again.status_code == 201 and again.json()["id"] != first["id"]
    old = await api.get(f"/v1/tasks/{first['id']}", headers=acme.auth())
    assert old.json()["idempotency_key"] is None  # it gave its key up
    assert await count_tasks(pool) == 2


async def test_oversized_request_and_wrong_method_are_problems(api, tenants, pool) -> None:
    huge = b'{"type": "examples.echo", "payload": {"message": "' + b"x" * 9_000_000 + b'"}}'
    r = await api.post("/v1/tasks", content=huge, headers=json_body(tenants["acme"]))
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem")
    assert r.json()["code"] == "payload_too_large"
    r = await api.delete("/v1/tasks", headers=tenants["acme"].auth())
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    r = await api.post("/v1/tasks", content=b"", headers=json_body(tenants["acme"]))
    assert r.status_code == 400 and r.json()["code"] == "malformed_json"
    assert await count_tasks(pool) == 0


async def test_publish_mark_follows_the_response_and_stops_the_relay(
    api, tenants, pool, producer, promoter, settings, until
) -> None:
    """The "published" mark is written after the response, in a batch; once it is there the
    relay leaves the row alone, so an unclaimed task has exactly one stream entry."""
    acme = tenants["acme"]
    r = await api.post("/v1/tasks", json=ECHO, headers=acme.auth("submitter"))
    assert r.status_code == 201, r.text
    task_id = UUID(r.json()["id"])

    async def marked() -> bool:
        sql = "SELECT published_at IS NOT NULL FROM tasks WHERE id = $1"
        return bool(await pool.fetchval(sql, task_id))

    await until(marked)
    await asyncio.sleep(settings.publish_grace_s * 3)  # several relay passes past the grace
    stream = producer.keys.stream("acme", "default", Priority.NORMAL)
    assert await producer.redis.xlen(stream) == 1
    assert await pool.fetchval("SELECT status FROM tasks WHERE id = $1", task_id) == "pending"
