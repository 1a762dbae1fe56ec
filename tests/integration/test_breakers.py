"""Dependency breakers on real Redis and PostgreSQL: the Lua script agrees with the pure rules,
one probe at a time, and workers that open a tenant's breaker on failures, postpone its tasks
without spending attempts (other tenants' run), and close it after a probe."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import msgspec
import pytest

from taskstream.broker.breakers import Breakers
from taskstream.broker.connection import connect
from taskstream.broker.producer import Producer
from taskstream.core.breakers import (
    CLOSED,
    Breaker,
    BreakerPolicy,
    BreakerState,
    Stored,
    Verdict,
    admit,
    record,
)
from taskstream.core.config import Settings
from taskstream.core.models import Dispatch, Priority
from taskstream.store.tasks import TaskStore
from taskstream.worker.context import TaskContext
from taskstream.worker.registry import Registry
from taskstream.worker.runner import Worker

from .conftest import new_task

pytestmark = pytest.mark.cluster_too  # one key per script: also on a 3-master Redis Cluster

SMTP = Breaker("smtp", failures=3, cooldown_s=1.0)
POLICY = BreakerPolicy(failures=3, cooldown_s=1.0)
REG = Registry()
CALLS: list[tuple[UUID, bool]] = []  # (tenant, ok) of every handler run


class Send(msgspec.Struct):
    ok: bool


@REG.task("brk.send", breakers=[SMTP], max_attempts=1)
async def send(ctx: TaskContext, payload: Send) -> dict[str, bool]:
    CALLS.append((ctx.tenant_id, payload.ok))
    if not payload.ok:
        raise ConnectionError("smtp down")
    return {"sent": True}


class Maybe(msgspec.Struct):
    use: bool


@REG.task("brk.maybe", max_attempts=1)
async def maybe(ctx: TaskContext, payload: Maybe) -> dict[str, str]:
    if payload.use:
        async with ctx.breaker(SMTP):
            return {"path": "smtp"}
    return {"path": "local"}


@REG.task("brk.plain", max_attempts=1)
async def plain(ctx: TaskContext, payload: dict[str, Any]) -> None:
    return None


@pytest.fixture
async def breakers(settings: Settings) -> AsyncIterator[Breakers]:
    redis = connect(settings.redis_url)
    yield Breakers.of(redis, settings)
    await redis.aclose()


# -- the script against the rules ---------------------------------------------------------------

STATES = [
    CLOSED,
    Stored(failures=2, postponed=4),
    Stored(state=BreakerState.OPEN, failures=3, opened_at=1_000, reopens_at=11_000),
    Stored(
        state=BreakerState.HALF_OPEN,
        failures=3,
        opened_at=1_000,
        reopens_at=11_000,
        probe="a",
        probe_until=20_000,
    ),
    Stored(state=BreakerState.HALF_OPEN, failures=3, reopens_at=11_000),  # probe released
]
NOWS = [5_000, 11_000, 15_000, 20_000]


async def _seed(b: Breakers, tenant: UUID, s: Stored) -> None:
    key = b.keys.breakers(tenant)
    await b.redis.delete(key)
    if s != CLOSED:
        await b.redis.hset(key, "smtp", msgspec.json.encode(s))


async def _stored(b: Breakers, tenant: UUID) -> Stored:
    got, _ = await b.states(tenant)
    return got.get("smtp", CLOSED)


async def test_script_records_as_the_rules_say(breakers: Breakers) -> None:
    tenant = UUID(int=1)
    cases = itertools.product(STATES, Verdict, ["a", "b"], NOWS)
    for before, verdict, token, now in cases:
        await _seed(breakers, tenant, before)
        await breakers.record(tenant, [SMTP], token, verdict, now_ms=now)
        want = record(before, verdict, token, now, POLICY)
        assert await _stored(breakers, tenant) == want, (before, verdict, token, now)


async def test_script_admits_as_the_rules_say(breakers: Breakers) -> None:
    tenant = UUID(int=2)
    for before, token, now in itertools.product(STATES, ["a", "b"], NOWS):
        await _seed(breakers, tenant, before)
        gate = await breakers.admit(tenant, [SMTP], token, 9_000, now_ms=now)
        want, writes = admit({"smtp": before}, {"smtp": POLICY}, now, token, 9_000)
        assert gate.admission == want, (before, token, now)
        assert await _stored(breakers, tenant) == writes.get("smtp", before)


async def test_one_probe_among_many_and_a_tenant_of_its_own(
    breakers: Breakers, settings: Settings
) -> None:
    """Two clients (two workers' connections) share one state; one probe among ten asks."""
    other_redis = connect(settings.redis_url)
    other = Breakers.of(other_redis, settings)
    acme, globex = UUID(int=3), UUID(int=4)
    for _ in range(3):
        await other.record(acme, [SMTP], "t", Verdict.FAILURE)
    states, _ = await breakers.states(acme)
    assert states["smtp"].state is BreakerState.OPEN
    assert (await breakers.admit(globex, [SMTP], "g", 1_000)).admission.postpone is None
    await asyncio.sleep(1.05)  # the injected cool-down
    gates = await asyncio.gather(
        *((breakers, other)[i % 2].admit(acme, [SMTP], f"w{i}", 5_000) for i in range(10))
    )
    await other_redis.aclose()
    probes = [i for i, g in enumerate(gates) if g.admission.probes == ("smtp",)]
    waits = [g.admission.postpone for g in gates if g.admission.postpone is not None]
    assert len(probes) == 1 and len(waits) == 9
    assert {w.state for w in waits} == {BreakerState.HALF_OPEN}
    changed = await breakers.record(acme, [SMTP], f"w{probes[0]}", Verdict.SUCCESS)
    assert changed == [("smtp", BreakerState.CLOSED)]
    final = (await breakers.states(acme))[0]["smtp"]
    assert final.state is BreakerState.CLOSED and final.postponed == 9


async def test_scrape_one_tenant_or_all(breakers: Breakers) -> None:
    acme, globex = UUID(int=5), UUID(int=6)
    await breakers.record(acme, [SMTP], "t", Verdict.FAILURE)
    await breakers.record(globex, [Breaker("bank")], "t", Verdict.FAILURE)
    mine, _ = await breakers.scrape(acme)
    assert [n for n, _ in mine] == ["smtp"]
    every, now_ms = await breakers.scrape(None)  # SCAN: on every node of a cluster
    assert sorted(n for n, _ in every) == ["bank", "smtp"] and now_ms > 0


# -- workers ------------------------------------------------------------------------------------


async def _submit(
    store: TaskStore, producer: Producer, tenant: UUID, type_: str, payload: dict[str, Any]
) -> UUID:
    t = new_task(tenant, type=type_, payload_json=msgspec.json.encode(payload), max_attempts=1)
    await store.insert_many([t])
    await producer.publish([Dispatch(t.id, tenant, "default", Priority.NORMAL)])
    return t.id


async def _row(pool: Any, task_id: UUID) -> Any:
    return await pool.fetchrow(
        "SELECT status, attempts, last_error, (SELECT count(*) FROM task_attempts a"
        " WHERE a.task_id = t.id) AS logged FROM tasks t WHERE id = $1",
        task_id,
    )


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[list[Worker]]:
    """Two workers sharing the breakers (through Redis), stopped gracefully at the end."""
    s = msgspec.structs.replace(settings, breaker_cooldown_s=60.0)  # SMTP sets its own
    started = [Worker(s, REG, concurrency=4) for _ in range(2)]
    stop = asyncio.Event()
    runs = [asyncio.create_task(w.run(stop)) for w in started]
    for w in started:
        await asyncio.wait_for(w.ready.wait(), 10)
    yield started
    stop.set()
    await asyncio.gather(*runs)


async def test_open_postpone_probe_close(
    workers, tenants, store, producer, promoter, pool, breakers, until
) -> None:
    acme, globex = tenants["acme"].id, tenants["globex"].id
    CALLS.clear()
    failing = [await _submit(store, producer, acme, "brk.send", {"ok": False}) for _ in range(3)]

    async def opened() -> bool:
        s = (await breakers.states(acme))[0].get("smtp")
        failed = [(await _row(pool, t))["status"] for t in failing] == ["failed"] * 3
        return failed and s is not None and s.state is BreakerState.OPEN

    await until(opened, timeout_s=10)

    # Open for acme: its tasks wait with their attempts unspent; globex's run.
    held = [await _submit(store, producer, acme, "brk.send", {"ok": True}) for _ in range(3)]
    other = await _submit(store, producer, globex, "brk.send", {"ok": True})
    free = await _submit(store, producer, acme, "brk.plain", {})

    async def settled() -> bool:
        rows = [await _row(pool, t) for t in (*held, other, free)]
        return [r["status"] for r in rows] == ["scheduled"] * 3 + ["completed"] * 2

    await until(settled, timeout_s=10)
    for tid in held:
        row = await _row(pool, tid)
        assert row["attempts"] == 0 and row["logged"] == 0, dict(row)
        assert "breaker 'smtp' is open" in row["last_error"]
    assert (acme, True) not in CALLS  # no acme task ran while open
    assert (await breakers.states(acme))[0]["smtp"].postponed >= 3

    # After the cool-down one probe goes through; it succeeds and closes the breaker, then the
    # rest run: each in one attempt.
    async def all_done() -> bool:
        return all([(await _row(pool, t))["status"] == "completed" for t in held])

    await until(all_done, timeout_s=15)
    for tid in held:
        row = await _row(pool, tid)
        assert row["attempts"] == 1 and row["logged"] == 1, dict(row)
    assert (await breakers.states(acme))[0]["smtp"].state is BreakerState.CLOSED
    assert CALLS.count((acme, True)) == 3


async def test_ctx_breaker_postpones_only_the_path_that_uses_it(
    workers, tenants, store, producer, pool, breakers, until
) -> None:
    acme = tenants["acme"].id
    for _ in range(3):
        await breakers.record(acme, [SMTP], "elsewhere", Verdict.FAILURE)
    uses = await _submit(store, producer, acme, "brk.maybe", {"use": True})
    local = await _submit(store, producer, acme, "brk.maybe", {"use": False})

    async def settled() -> bool:
        return [(await _row(pool, t))["status"] for t in (uses, local)] == [
            "scheduled",
            "completed",
        ]

    await until(settled, timeout_s=10)
    row = await _row(pool, uses)
    assert row["attempts"] == 0 and row["logged"] == 0


# -- the API ------------------------------------------------------------------------------------


async def test_api_lists_resets_and_serves_metrics(api, tenants, breakers, pool) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    for _ in range(3):
        await breakers.record(acme.id, [SMTP], "t", Verdict.FAILURE)
    await breakers.record(acme.id, [Breaker("bank")], "t", Verdict.FAILURE)
    await breakers.admit(acme.id, [SMTP], "u", 1_000)  # postponed once

    r = await api.get("/v1/breakers", headers=acme.auth("viewer"))
    assert r.status_code == 200, r.text
    items = {b["name"]: b for b in r.json()["items"]}
    assert items["smtp"]["state"] == "open" and items["smtp"]["failures"] == 3
    assert items["smtp"]["postponed"] == 1 and items["smtp"]["probing"] is False
    assert items["smtp"]["reopens_at"] > items["smtp"]["opened_at"]
    assert items["bank"] == {"name": "bank", "state": "closed", "failures": 1, "opened_at": None,
                             "reopens_at": None, "probing": False, "postponed": 0}  # fmt: skip
    r = await api.get("/v1/breakers", headers=globex.auth())
    assert r.json() == {"items": []}  # another tenant's breakers are its own

    r = await api.get("/metrics", headers=acme.auth())
    assert r.status_code == 200
    assert 'breaker_state{breaker="smtp"} 2.0' in r.text
    assert 'breaker_state{breaker="bank"} 0.0' in r.text
    assert 'breaker_postponed_total{breaker="smtp"} 1.0' in r.text
    assert "breaker_state{" not in (await api.get("/metrics", headers=globex.auth())).text

    path = "/v1/breakers/smtp/reset"
    assert (await api.post(path, headers=acme.auth("viewer"))).status_code == 403
    assert (await api.post("/v1/breakers/nope/reset", headers=acme.auth())).status_code == 404
    assert (await api.post(path, headers=globex.auth())).status_code == 404
    r = await api.post(path, headers=acme.auth())
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "closed" and r.json()["postponed"] == 1
    gate = await breakers.admit(acme.id, [SMTP], "v", 1_000)
    assert gate.admission.postpone is None
    audit = await pool.fetch("SELECT action, target, tenant_id FROM audit_log")
    resets = [(a["target"], a["tenant_id"]) for a in audit if a["action"] == "breaker.reset"]
    assert resets == [("smtp", acme.id)]
