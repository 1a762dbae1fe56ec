"""Schedules over the API, firing by the elected leader, fencing of a deposed leader, misfire
policies after an outage, and delayed tasks due in the same second."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskstream.scheduler.cron import LEADER_ROLE, Cron
from taskstream.scheduler.leader import Leader
from taskstream.store.schedules import LeaseStore, ScheduleStore

from .conftest import new_task

pytestmark = pytest.mark.cluster_too  # also on a 3-master Redis Cluster

EVERY_SECOND = {
    "name": "tick",
    "cron": "* * * * * *",
    "task": {"type": "examples.echo", "payload": {"message": "tick"}},
}


async def make_cron(
    pool: Any, store: Any, producer: Any, holder: str = "s1", leads: bool = True
) -> Cron:
    leader = Leader(LeaseStore(pool), LEADER_ROLE, holder, ttl_s=3.0)
    assert await leader.run_once() is leads
    return Cron(ScheduleStore(pool), store, producer, leader)


async def test_schedule_crud_and_validation(api, tenants) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    r = await api.post("/v1/schedules", json=EVERY_SECOND, headers=acme.auth())
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["timezone"] == "UTC" and s["misfire"] == "run_once" and not s["paused"]
    assert len(s["next_runs"]) == 5 and s["next_runs"] == sorted(set(s["next_runs"]))
    assert s["task"] == {
        "type": "examples.echo",
        "payload": {"message": "tick"},
        "queue": "default",
        "priority": "normal",
        "timeout_s": 10.0,
        "max_attempts": 3,
    }
    dup = await api.post("/v1/schedules", json=EVERY_SECOND, headers=acme.auth())
    assert dup.status_code == 409 and dup.json()["code"] == "schedule_exists"
    for bad, code in [
        ({"cron": "61 * * * *"}, "invalid_schedule"),
        ({"timezone": "Nowhere/City"}, "invalid_schedule"),
        ({"task": {"type": "no.such"}}, "unknown_task_type"),
        ({"task": {"type": "examples.echo", "payload": {}}}, "invalid_payload"),
    ]:
        r = await api.post(
            "/v1/schedules", json={**EVERY_SECOND, "name": "x", **bad}, headers=acme.auth()
        )
        assert (r.status_code, r.json()["code"]) == (422, code), r.text
    assert (
        await api.post("/v1/schedules", json=EVERY_SECOND, headers=acme.auth("submitter"))
    ).status_code == 403

    url = f"/v1/schedules/{s['id']}"
    assert (await api.get(url, headers=globex.auth())).status_code == 404
    listed = (await api.get("/v1/schedules", headers=acme.auth("viewer"))).json()["items"]
    assert [x["name"] for x in listed] == ["tick"]
    paused = (await api.patch(url, json={"paused": True}, headers=acme.auth())).json()
    assert paused["paused"] and paused["next_run_at"] is None and paused["next_runs"] == []
    hourly = await api.patch(
        url,
        json={"paused": False, "cron": "0 9 * * 1", "timezone": "Europe/Berlin"},
        headers=acme.auth(),
    )
    assert hourly.status_code == 200, hourly.text
    nxt = datetime.fromisoformat(hourly.json()["next_run_at"])
    assert nxt.weekday() == 0 and nxt.astimezone(UTC).hour in (7, 8)  # 09:00 Berlin
    bad = await api.patch(url, json={"cron": "nope"}, headers=acme.auth())
    assert bad.status_code == 422
    assert (await api.delete(url, headers=acme.auth())).status_code == 204
    assert (await api.get(url, headers=acme.auth())).status_code == 404


async def test_next_runs_start_with_the_next_run(api, tenants) -> None:
    body = {**EVERY_SECOND, "name": "nightly", "cron": "30 2 * * *"}
    r = await api.post("/v1/schedules", json=body, headers=tenants["acme"].auth())
    s = r.json()
    assert s["next_runs"][0] == s["next_run_at"] and len(s["next_runs"]) == 5
    assert s["next_runs"] == sorted(set(s["next_runs"]))


async def test_leader_fires_every_second_once(api, tenants, pool, store, producer) -> None:
    acme = tenants["acme"]
    sched = (await api.post("/v1/schedules", json=EVERY_SECOND, headers=acme.auth())).json()
    cron = await make_cron(pool, store, producer)
    other = await make_cron(pool, store, producer, holder="s2", leads=False)
    assert not other.leader.is_leader
    deadline = time.monotonic() + 3.2
    while time.monotonic() < deadline:
        assert await cron.leader.run_once()  # renew, as the leader loop does
        assert not await other.leader.run_once()
        await cron.run_once()
        await other.run_once()
        await cron.run_once()  # a repeated pass changes nothing
        await asyncio.sleep(0.05)
    rows = await pool.fetch(
        "SELECT idempotency_key, created_at, correlation_id FROM tasks ORDER BY created_at"
    )
    keys = [r["idempotency_key"] for r in rows]
    assert 3 <= len(keys) <= 4 and len(set(keys)) == len(keys)
    assert all(k.startswith(f"schedule:{sched['id']}:") for k in keys)
    ids = [r["correlation_id"] for r in rows]  # each fire its own, naming the schedule
    assert all(i.startswith("schedule:tick:") for i in ids) and len(set(ids)) == len(ids)
    after = (await api.get(f"/v1/schedules/{sched['id']}", headers=acme.auth())).json()
    assert after["last_run_at"] and 0 <= after["last_lag_ms"] < 1000


async def test_deposed_leader_cannot_fire(api, tenants, pool, store, producer) -> None:
    await api.post("/v1/schedules", json=EVERY_SECOND, headers=tenants["acme"].auth())
    old = await make_cron(pool, store, producer, holder="old")
    # The old leader is paused past its lease; another scheduler takes over.
    await pool.execute("UPDATE leader_leases SET expires_at = now() - interval '1 s'")
    new = await make_cron(pool, store, producer, holder="new")
    assert new.leader.epoch == old.leader.epoch + 1
    await asyncio.sleep(1.1)
    assert await old.run_once() == 0  # still believes it leads, but its writes are fenced
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0
    assert await new.run_once() >= 1


@pytest.mark.parametrize(("policy", "missed_runs"), [("skip", 0), ("run_once", 1), ("run_all", 10)])
async def test_misfire_policy_after_30s_outage(
    api, tenants, pool, store, producer, policy, missed_runs
) -> None:
    body = {**EVERY_SECOND, "misfire": policy, "misfire_grace_s": 5, "max_catch_up": 10}
    sched = (await api.post("/v1/schedules", json=body, headers=tenants["acme"].auth())).json()
    # Every scheduler was down for 30 s: the stored next run is 30 s in the past.
    await pool.execute(
        "UPDATE schedules SET next_run_at = date_trunc('second', now()) - interval '30 s'"
    )
    cron = await make_cron(pool, store, producer)
    now = datetime.now(UTC)
    await cron.run_once(now)
    fire_times = sorted(
        datetime.fromisoformat(r["idempotency_key"].split(":", 2)[2])
        for r in await pool.fetch("SELECT idempotency_key FROM tasks")
    )
    cutoff = now - timedelta(seconds=5)
    assert len([f for f in fire_times if f < cutoff]) == missed_runs
    assert 5 <= len([f for f in fire_times if f >= cutoff]) <= 6  # the last 5 s still run
    row = await pool.fetchrow("SELECT next_run_at FROM schedules WHERE id = $1::uuid", sched["id"])
    assert row["next_run_at"] > now  # caught up, persisted


async def test_ten_thousand_delayed_tasks_due_in_one_second(
    tenants, pool, store, producer, settings
) -> None:
    from taskstream.scheduler.promoter import Promoter

    await store.upsert_queue(tenants["acme"].id, "default")
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    news = [new_task(tenants["acme"].id, run_at=due) for _ in range(10_000)]
    for i in range(0, len(news), 1000):
        await store.insert_many(news[i : i + 1000])
    promoter = Promoter(settings, store, producer)
    while datetime.now(UTC) < due + timedelta(seconds=3):
        await promoter.run_once()
        await asyncio.sleep(0.01)
    lag = await pool.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT id) AS d, "
        "max(extract(epoch FROM published_at - run_at)) AS worst FROM tasks "
        "WHERE status = 'pending' AND published_at IS NOT NULL"
    )
    print(f"10,000 tasks due at once: all published within {lag['worst'] * 1000:.0f} ms")
    assert lag["n"] == lag["d"] == 10_000  # all promoted and published, none twice
    # The figure (~0.5 s here) is reported above; the bound only catches a broken promoter
    # (say, one batch per poll interval), not a slow machine: timing is the benchmarks' job.
    assert lag["worst"] < 3.0
