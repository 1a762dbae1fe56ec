"""Encryption at rest (issue 13): payloads and results are sealed in PostgreSQL (AES-256-GCM,
key id stored with them), shown in clear to their owner through the API, opened by workers;
rotation moves rows to the first key; a missing or wrong key is an error naming the key id.
Real API, worker, PostgreSQL and Redis."""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from taskstream.api.app import create_app
from taskstream.core.config import Settings
from taskstream.core.crypto import keyring
from taskstream.store.sealing import Resealer

MARKER = "plain-marker-7f3a9c"
K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
K2 = "k2:" + base64.b64encode(bytes(range(32, 64))).decode()
K1_OTHER = "k1:" + base64.b64encode(bytes(range(64, 96))).decode()  # same id, other key


async def submit(client: AsyncTestClient[Any], tenant: Any, message: str = MARKER) -> str:
    r = await client.post(
        "/v1/tasks",
        json={"type": "examples.echo", "payload": {"message": message}},
        headers=tenant.auth(),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def completed(client: AsyncTestClient[Any], tenant: Any, task_id: str, until: Any) -> Any:
    async def done() -> bool:
        r = await client.get(f"/v1/tasks/{task_id}", headers=tenant.auth())
        return bool(r.json()["status"] == "completed")

    await until(done)
    return (await client.get(f"/v1/tasks/{task_id}", headers=tenant.auth())).json()


async def table_text(pool: Any) -> str:
    return "\n".join(r["t"] for r in await pool.fetch("SELECT t::text AS t FROM tasks t"))


async def test_sealed_in_the_table_clear_through_the_api(
    settings: Settings, api: Any, tenants: Any, pool: Any, start_worker: Any, until: Any
) -> None:
    sealed = msgspec.structs.replace(settings, encryption_keys=K1)
    await start_worker(encryption_keys=K1)
    acme = tenants["acme"]
    async with AsyncTestClient(app=create_app(sealed)) as client:
        task_id = await submit(client, acme)
        task = await completed(client, acme, task_id, until)
    assert task["payload"] == {"message": MARKER}
    assert task["result"] == {"echo": MARKER, "attempt": 1}
    assert MARKER not in await table_text(pool)
    row = await pool.fetchrow(
        "SELECT payload_key, result_key, jsonb_typeof(payload) AS kind FROM tasks WHERE id = $1",
        UUID(task_id),
    )
    assert (row["payload_key"], row["result_key"], row["kind"]) == ("k1", "k1", "string")
    # The API without the key refuses, naming it; never the sealed text as a payload.
    r = await api.get(f"/v1/tasks/{task_id}", headers=acme.auth())
    assert r.status_code == 503
    assert r.json()["code"] == "encryption_key_missing"
    assert "'k1'" in r.json()["detail"]


async def test_rotation_then_reencrypt_then_only_the_new_key(
    settings: Settings, tenants: Any, pool: Any, start_worker: Any, until: Any
) -> None:
    acme = tenants["acme"]
    await start_worker(encryption_keys=f"{K2},{K1}")
    async with AsyncTestClient(
        app=create_app(msgspec.structs.replace(settings, encryption_keys=K1))
    ) as client:
        old = await submit(client, acme, "old one")
    async with AsyncTestClient(
        app=create_app(msgspec.structs.replace(settings, encryption_keys=f"{K2},{K1}"))
    ) as client:
        new = await submit(client, acme, "new one")
        # Both open while both keys are configured; the old task's result is sealed with k2.
        assert (await completed(client, acme, old, until))["payload"] == {"message": "old one"}
        assert (await completed(client, acme, new, until))["result"]["echo"] == "new one"
    keys = {str(r["id"]): r["payload_key"] for r in await pool.fetch("SELECT * FROM tasks")}
    assert keys == {old: "k1", new: "k2"}

    lines: list[str] = []
    done = await Resealer(pool, keyring(f"{K2},{K1}")).run(batch=1, progress=lines.append)
    assert (done.moved, done.changed) == (1, 0)
    assert lines[0] == "1 rows to seal with key 'k2'"
    stale = await pool.fetchval(
        "SELECT count(*) FROM tasks WHERE payload_key <> 'k2' OR result_key <> 'k2'"
    )
    assert stale == 0
    async with AsyncTestClient(
        app=create_app(msgspec.structs.replace(settings, encryption_keys=K2))
    ) as client:
        for task_id, message in ((old, "old one"), (new, "new one")):
            r = await client.get(f"/v1/tasks/{task_id}", headers=acme.auth())
            assert r.status_code == 200, r.text
            assert r.json()["payload"] == {"message": message}
            assert r.json()["result"]["echo"] == message
    assert (await Resealer(pool, keyring(K2)).run(progress=lines.append)).moved == 0


async def test_clear_rows_are_sealed_by_reencrypt(
    settings: Settings, api: Any, tenants: Any, pool: Any
) -> None:
    acme = tenants["acme"]
    task_id = await submit(api, acme)  # the API fixture has no keys: stored clear
    assert MARKER in await table_text(pool)
    done = await Resealer(pool, keyring(K1)).run(progress=lambda _: None)
    assert done.moved == 1
    assert MARKER not in await table_text(pool)
    async with AsyncTestClient(
        app=create_app(msgspec.structs.replace(settings, encryption_keys=K1))
    ) as client:
        r = await client.get(f"/v1/tasks/{task_id}", headers=acme.auth())
    assert r.json()["payload"] == {"message": MARKER}


async def test_a_swapped_or_edited_value_never_opens(
    settings: Settings, api: Any, tenants: Any, pool: Any
) -> None:
    acme = tenants["acme"]
    async with AsyncTestClient(
        app=create_app(msgspec.structs.replace(settings, encryption_keys=K1))
    ) as client:
        a = await submit(client, acme, "task a")
        b = await submit(client, acme, "task b")
        # b's sealed payload copied onto a: bound to b, it does not open as a's.
        await pool.execute(
            "UPDATE tasks SET payload = (SELECT payload FROM tasks WHERE id = $2) WHERE id = $1",
            UUID(a), UUID(b),
        )  # fmt: skip
        r = await client.get(f"/v1/tasks/{a}", headers=acme.auth())
        assert r.status_code == 500
        assert r.json()["code"] == "decryption_failed"
        assert "'k1'" in r.json()["detail"]
        assert "task b" not in r.text
    # The same id with another key: refused the same way, not garbage.
    async with AsyncTestClient(
        app=create_app(msgspec.structs.replace(settings, encryption_keys=K1_OTHER))
    ) as client:
        r = await client.get(f"/v1/tasks/{b}", headers=acme.auth())
        assert (r.status_code, r.json()["code"]) == (500, "decryption_failed")


async def test_a_worker_without_the_key_names_it(
    settings: Settings, api: Any, tenants: Any, pool: Any, start_worker: Any, until: Any
) -> None:
    acme = tenants["acme"]
    await start_worker(encryption_keys=K2)  # lacks k1
    async with AsyncTestClient(
        app=create_app(msgspec.structs.replace(settings, encryption_keys=K1))
    ) as client:
        task_id = await submit(client, acme)

    async def attempted() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM task_attempts") >= 1)

    await until(attempted)
    error = await pool.fetchval("SELECT error FROM task_attempts WHERE task_id = $1", UUID(task_id))
    assert error.startswith("encryption_key_missing:")
    assert "'k1'" in error


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("k1", "entry 1 is not kid:base64-key"),
        ("k1:not base64!", "key 'k1' is not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "key 'k1' is 5 bytes"),
        (f"{K1},{K1}", "key id 'k1' appears twice"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "entry 1 is not"),
    ],
)
def test_bad_key_lists_are_refused_naming_the_key(spec: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        keyring(spec)
    assert base64.b64encode(bytes(range(32))).decode() not in str(caught.value)
