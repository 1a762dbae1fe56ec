"""The audit log (issue 13): every submission and every state-changing call is recorded with who,
what, on what, when and in which request; the API's role cannot change or delete a row; the
hash chain names the first row edited or deleted. Real API, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from taskstream.api.app import create_app
from taskstream.core.audit import Actor, Entry
from taskstream.core.config import Settings
from taskstream.store.audit import AuditStore
from taskstream.store.database import API_ROLE
from taskstream.store.tenants import TenantStore


async def entries(api: Any, tenant: Any, **params: Any) -> list[dict[str, Any]]:
    r = await api.get("/v1/audit", params=params, headers=tenant.auth())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def broken(pool: Any) -> list[Any]:
    return [b async for _, _, b in AuditStore(pool).verify() if b is not None]


async def test_submissions_and_calls_are_recorded(
    api: Any, tenants: Any, pool: Any, start_worker: Any
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    prefix = acme.key.split("_")[1]
    r = await api.post(
        "/v1/tasks", json={"type": "examples.noop", "payload": {}},
        headers={**acme.auth("submitter"), "X-Correlation-Id": "req-one"},
    )  # fmt: skip
    one = r.json()["id"]
    r = await api.post(
        "/v1/tasks/batch",
        json={"tasks": [{"type": "examples.noop", "delay_s": 3600}] * 3},
        headers=acme.auth(),
    )
    batch = [i["task"]["id"] for i in r.json()["items"]]
    # An idempotent repeat changes nothing and records nothing; a refused submit neither.
    same = {"type": "examples.noop", "idempotency_key": "k", "payload": {}}
    for _ in range(2):
        await api.post("/v1/tasks", json=same, headers=acme.auth())
    await api.post("/v1/tasks", json={"type": "nope"}, headers=acme.auth())
    assert (await api.post(f"/v1/tasks/{batch[0]}/cancel", headers=acme.auth())).status_code == 200
    sched = await api.post(
        "/v1/schedules",
        json={"name": "nightly", "cron": "0 3 * * *", "task": {"type": "examples.noop"}},
        headers=acme.auth(),
    )
    sid = sched.json()["id"]
    await api.patch(f"/v1/schedules/{sid}", json={"paused": True}, headers=acme.auth())
    await api.patch(f"/v1/schedules/{sid}", json={"paused": False}, headers=acme.auth())
    await api.delete(f"/v1/schedules/{sid}", headers=acme.auth())
    made = (await api.post("/v1/keys", json={"role": "viewer"}, headers=acme.auth())).json()
    await api.delete(f"/v1/keys/{made['prefix']}", headers=acme.auth())

    log = await entries(api, acme, limit=100)
    seen = [(e["action"], e["target"]) for e in reversed(log)]
    assert seen[:4] == [("task.submit", one)] + [("task.submit", t) for t in batch]
    assert seen[4][0] == "task.submit"  # the idempotency key's first submit only
    assert seen[5:] == [
        ("task.cancel", batch[0]),
        ("schedule.create", "nightly"),
        ("schedule.pause", "nightly"),
        ("schedule.resume", "nightly"),
        ("schedule.delete", "nightly"),
        ("key.create", f"{made['prefix']} (viewer)"),
        ("key.revoke", made["prefix"]),
    ]
    first = log[-1]
    assert first["actor"] == f"key:{acme.submitter_key.split('_')[1]}"
    assert first["request_id"] == "req-one" and first["seq"] == 1
    assert {e["actor"] for e in log[:-1]} == {f"key:{prefix}"}
    assert all(e["request_id"] for e in log)
    assert [e["seq"] for e in log] == list(range(len(log), 0, -1))
    # Filters, pagination, and tenants apart.
    assert [e["target"] for e in await entries(api, acme, action="task.cancel")] == [batch[0]]
    page = await entries(api, acme, limit=3)
    r = await api.get("/v1/audit", params={"limit": 3}, headers=acme.auth())
    rest = await entries(api, acme, limit=100, cursor=r.json()["next_cursor"])
    assert [e["seq"] for e in page + rest] == [e["seq"] for e in log]
    assert await entries(api, globex) == []
    assert (await api.get("/v1/audit", headers=acme.auth("viewer"))).status_code == 403
    assert await broken(pool) == []


async def test_replays_and_retries_are_recorded(
    api: Any, tenants: Any, start_worker: Any, until: Any
) -> None:
    acme = tenants["acme"]
    await start_worker()
    ids = []
    for _ in range(3):
        r = await api.post(
            "/v1/tasks", json={"type": "examples.fail", "payload": {"reason": "no"}},
            headers=acme.auth(),
        )  # fmt: skip
        ids.append(r.json()["id"])

    async def dead() -> bool:
        r = await api.get("/v1/dead-letters", headers=acme.auth())
        return len(r.json()["items"]) == 3

    await until(dead)
    assert (await api.post(f"/v1/tasks/{ids[0]}/retry", headers=acme.auth())).status_code == 200
    await until(dead)
    r = await api.post("/v1/dead-letters/replay", json={"ids": ids[1:]}, headers=acme.auth())
    assert r.json()["replayed"] == 2
    log = await entries(api, acme, limit=100)
    assert [(e["action"], e["target"]) for e in log if e["action"] != "task.submit"] == [
        ("dead_letter.replay", ids[2]), ("dead_letter.replay", ids[1]), ("task.retry", ids[0]),
    ]  # fmt: skip


async def test_the_api_role_cannot_change_or_delete_a_row(
    settings: Settings, api: Any, tenants: Any
) -> None:
    acme = tenants["acme"]
    await api.post("/v1/tasks", json={"type": "examples.noop"}, headers=acme.auth())
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f"SET ROLE {API_ROLE}")
        await conn.execute("SELECT set_config('taskstream.tenants', $1, false)", f"{{{acme.id}}}")
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1  # it can read
        for statement in (
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "DELETE FROM audit_heads",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_verify_names_the_first_edited_or_deleted_row(
    api: Any, tenants: Any, pool: Any
) -> None:
    acme = tenants["acme"]
    for n in range(3):  # three blocks of 4 rows
        r = await api.post(
            "/v1/tasks/batch", json={"tasks": [{"type": "examples.noop"}] * 4},
            headers=acme.auth(),
        )  # fmt: skip
        assert r.status_code == 201, n
    assert await broken(pool) == []
    row = "WHERE tenant_id = $1 AND seq = $2"

    async def tamper(sql: str, seq: int, *extra: Any) -> Any:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute(sql.replace("{row}", row), acme.id, seq, *extra)
            found = await broken(conn_pool(conn))
            await tx.rollback()
        return found

    (edited,) = await tamper("UPDATE audit_log SET actor = 'key:someone' {row}", 6)
    assert (edited.seq, edited.tenant_id) == (6, acme.id) and "edited" in edited.reason
    # An edit with its digest made to match: the block's chain breaks.
    six = await pool.fetchrow(f"SELECT * FROM audit_log {row}", acme.id, 6)
    fields = {k: six[k] for k in ("tenant_id", "at", "actor", "action", "request_id")}
    forged = Entry(**fields, target="x").digest
    (rehashed,) = await tamper("UPDATE audit_log SET target = 'x', digest = $3 {row}", 6, forged)
    assert rehashed.seq == 8 and "chain" in rehashed.reason
    (gap,) = await tamper("DELETE FROM audit_log {row}", 2)
    assert gap.seq == 2 and "missing" in gap.reason
    (tail,) = await tamper("DELETE FROM audit_log WHERE tenant_id = $1 AND seq >= $2", 9)
    assert tail.seq == 9 and "missing" in tail.reason
    assert await broken(pool) == []  # all rolled back


def conn_pool(conn: Any) -> Any:
    """A stand-in pool that hands out one connection (to verify inside a transaction)."""

    class One:
        def acquire(self) -> Any:
            class Ctx:
                async def __aenter__(self) -> Any:
                    return conn

                async def __aexit__(self, *_: Any) -> None:
                    return None

            return Ctx()

    return One()


async def test_concurrent_writers_never_fork_the_chain(
    settings: Settings, api: Any, tenants: Any, pool: Any
) -> None:
    """Two API apps (two processes' worth of group commits) and the CLI's calls, all at once,
    for two tenants: every row numbered once, the chain intact."""
    acme, globex = tenants["acme"], tenants["globex"]
    store = TenantStore(pool)
    async with AsyncTestClient(app=create_app(settings)) as other:

        async def submit(client: Any, tenant: Any, n: int) -> None:
            for _ in range(n):
                r = await client.post(
                    "/v1/tasks/batch", json={"tasks": [{"type": "examples.noop"}] * 5},
                    headers=tenant.auth(),
                )  # fmt: skip
                assert r.status_code == 201

        async def keys(tenant: Any) -> None:
            for _ in range(5):
                by = Actor(name="cli:test", request_id=None, at=datetime.now(UTC))
                await store.create_key(tenant.id, "viewer", by=by)

        await asyncio.gather(
            *(submit(c, t, 10) for c in (api, other) for t in (acme, globex)),
            *(submit(api, acme, 1) for _ in range(20)),
            keys(acme),
            keys(globex),
        )
    rows = await pool.fetch(
        "SELECT tenant_id, count(*) AS n, max(seq) AS top FROM audit_log GROUP BY tenant_id"
    )
    counts = {r["tenant_id"]: (r["n"], r["top"]) for r in rows}
    assert counts == {acme.id: (205, 205), globex.id: (105, 105)}
    assert await broken(pool) == []
    heads = {r["tenant_id"]: r["seq"] for r in await pool.fetch("SELECT * FROM audit_heads")}
    assert heads[acme.id] == 205 and heads[UUID(str(globex.id))] == 105


async def test_submissions_can_be_left_out(settings: Settings, api: Any, tenants: Any) -> None:
    """TASKSTREAM_AUDIT_SUBMISSIONS=false: calls are still recorded, submissions are not."""
    acme = tenants["acme"]
    quiet = msgspec.structs.replace(settings, audit_submissions=False)
    async with AsyncTestClient(app=create_app(quiet)) as client:
        r = await client.post(
            "/v1/tasks", json={"type": "examples.noop", "delay_s": 60}, headers=acme.auth()
        )
        task = r.json()["id"]
        await client.post("/v1/tasks/batch", json={"tasks": [{"type": "examples.noop"}]},
                          headers=acme.auth())  # fmt: skip
        assert (await client.post(f"/v1/tasks/{task}/cancel", headers=acme.auth())).is_success
    assert [(e["action"], e["target"]) for e in await entries(api, acme)] == [("task.cancel", task)]
