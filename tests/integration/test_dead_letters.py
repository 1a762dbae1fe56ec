"""The dead-letter queue: listing failed tasks, replaying one or many, and attempt history."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.cluster_too  # also on a 3-master Redis Cluster


async def fail_tasks(
    api: Any, tenant: Any, n: int, until: Any, pool: Any, task_type: str = "examples.fail"
) -> list[str]:
    body = {"tasks": [{"type": task_type, "payload": {"reason": f"boom {i}"}} for i in range(n)]}
    r = await api.post("/v1/tasks/batch", json=body, headers=tenant.auth())
    assert r.status_code == 201
    ids = [i["task"]["id"] for i in r.json()["items"]]

    async def all_failed() -> bool:
        return await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'failed'") == n

    await until(all_failed)
    return ids


async def test_dead_letters_listed_and_replayed(api, tenants, start_worker, pool, until) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    await start_worker()
    ids = await fail_tasks(api, acme, 3, until, pool)
    dead = (await api.get("/v1/dead-letters", headers=acme.auth("viewer"))).json()
    assert sorted(t["id"] for t in dead["items"]) == sorted(ids)
    assert all(
        t["status"] == "failed" and t["last_error"].startswith("boom") for t in dead["items"]
    )
    assert (await api.get("/v1/dead-letters", headers=globex.auth())).json()["items"] == []

    # Attempt history records the failure.
    hist = (await api.get(f"/v1/tasks/{ids[0]}/attempts", headers=acme.auth())).json()
    assert [(a["attempt"], a["outcome"]) for a in hist["items"]] == [(1, "fail")]
    assert hist["items"][0]["worker"] and hist["items"][0]["duration_s"] >= 0

    # Single replay: back to pending, runs again (and fails again: it always does).
    r = await api.post(f"/v1/tasks/{ids[0]}/retry", headers=acme.auth("viewer"))
    assert r.status_code == 403
    r = await api.post(f"/v1/tasks/{ids[0]}/retry", headers=globex.auth())
    assert r.status_code == 404
    r = await api.post(f"/v1/tasks/{ids[0]}/retry", headers=acme.auth())
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert r.json()["attempts"] == 0

    async def attempted_twice() -> bool:
        rows = await pool.fetchval(
            "SELECT count(*) FROM task_attempts WHERE task_id = $1::uuid", ids[0]
        )
        status = await pool.fetchval("SELECT status FROM tasks WHERE id = $1::uuid", ids[0])
        return rows == 2 and status == "failed"

    await until(attempted_twice)
    replays = await pool.fetch("SELECT task_id::text, replayed_by, last_error FROM task_replays")
    assert [(r["task_id"], r["last_error"]) for r in replays] == [(ids[0], "boom 0")]
    assert acme.key.split("_")[1] == replays[0]["replayed_by"]

    # A task that is not failed cannot be retried.
    ok = (
        await api.post(
            "/v1/tasks",
            json={"type": "examples.echo", "payload": {"message": "x"}, "delay_s": 60},
            headers=acme.auth(),
        )
    ).json()
    r = await api.post(f"/v1/tasks/{ok['id']}/retry", headers=acme.auth())
    assert r.status_code == 409 and r.json()["code"] == "invalid_state"


async def test_bulk_replay_by_filter(api, tenants, start_worker, pool, until) -> None:
    acme = tenants["acme"]
    await start_worker()
    await fail_tasks(api, acme, 4, until, pool)
    r = await api.post(
        "/v1/dead-letters/replay", json={"type": "examples.fail", "limit": 3}, headers=acme.auth()
    )
    assert r.status_code == 200 and r.json()["replayed"] == 3
    r = await api.post("/v1/dead-letters/replay", json={"type": "other.type"}, headers=acme.auth())
    assert r.json()["replayed"] == 0
    r = await api.post("/v1/dead-letters/replay", json={"limit": 5000}, headers=acme.auth())
    assert r.status_code == 422
    assert await pool.fetchval("SELECT count(*) FROM task_replays") == 3


async def test_attempt_history_of_retries(
    api, tenants, start_worker, promoter, pool, until
) -> None:
    acme = tenants["acme"]
    await start_worker()
    t = (
        await api.post(
            "/v1/tasks",
            json={"type": "examples.flaky", "payload": {"fail_times": 2}},
            headers=acme.auth(),
        )
    ).json()

    async def done() -> bool:
        return (
            await pool.fetchval("SELECT status FROM tasks WHERE id = $1::uuid", t["id"])
            == "completed"
        )

    await until(done)
    hist = (await api.get(f"/v1/tasks/{t['id']}/attempts", headers=acme.auth())).json()
    assert [(a["attempt"], a["outcome"]) for a in hist["items"]] == [
        (1, "retry"),
        (2, "retry"),
        (3, "completed"),
    ]
    r = await api.get(
        "/v1/tasks/01a221ec-0000-7000-8000-000000000000/attempts", headers=acme.auth()
    )
    assert r.status_code == 404
