"""The front door against real PostgreSQL and Redis: a poisoned submission fails alone, a Redis
that refuses writes is not an outage of the API, request heads are bounded, bad targets are 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest

from taskstream.api.intake import Intake
from taskstream.core.config import Settings
from taskstream.core.errors import StoreRefused
from taskstream.services import api_service
from taskstream.store.database import create_pool
from taskstream.worker.runner import Worker

from .conftest import REGISTRY, new_task

ECHO = {"type": "examples.echo", "payload": {"message": "hi"}}
FAR = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # overflows once stored with an offset
POISON: list[dict[str, Any]] = [
    {"payload_json": b'{"message":"\\u0000"}'},
    {"idempotency_key": "k\x00"},
    {"correlation_id": "c\x00"},
    {"run_at": datetime.fromisoformat("9999-12-31T23:59:59-14:00")},
]


async def test_poisoned_submits_fail_alone(store, producer, tenants) -> None:
    """A tenant flooding submissions PostgreSQL refuses (built past the door's checks) changes
    nothing for another tenant submitting at the same time, in the same group commits."""
    acme, globex = tenants["acme"], tenants["globex"]
    intake = Intake(store, producer)

    async def poisoned(i: int) -> BaseException | None:
        try:
            await intake.submit([new_task(acme.id, **POISON[i % len(POISON)])])
        except Exception as exc:
            return exc
        return None

    async def valid() -> bool:
        (result,) = await intake.submit([new_task(globex.id)])
        return result.created

    for _ in range(5):
        results = await asyncio.gather(
            *(poisoned(i) for i in range(40)), *(valid() for _ in range(40))
        )
        failures, created = results[:40], results[40:]
        assert all(isinstance(f, StoreRefused) for f in failures), failures
        assert created == [True] * 40
    assert len(await store.list_tasks(globex.id, limit=500)) == 200
    assert await store.list_tasks(acme.id, limit=500) == []


async def test_a_refused_value_through_the_api_is_422_not_500(api, tenants) -> None:
    r = await api.post(
        "/v1/tasks",
        json={**ECHO, "run_at": "9999-12-31T23:59:59-14:00"},
        headers=tenants["acme"].auth(),
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_schedule"


# --- the API served by uvicorn on a real socket ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[str]:
    """api_service in-process on a free port; stopping it must finish within the grace."""
    worker = Worker(settings, REGISTRY)
    worker._pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        await worker.register_types()
    finally:
        await worker._pool.close()
    port = _free_port()
    stop = asyncio.Event()
    running = asyncio.create_task(api_service(settings, "127.0.0.1", port)(stop))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
    try:
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)  # the API stops: nothing left waiting forever


@pytest.fixture
def full_redis() -> Iterator[str]:
    """A private Redis that refuses every write: OOM command not allowed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not on PATH")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxmemory", "1", "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_redis_refusing_writes_is_not_an_outage(settings, tenants, full_redis) -> None:
    """XADD answered with OOM: the row is committed, the submit is 201, the relay publishes it
    later, and the API still stops when asked."""
    s = msgspec.structs.replace(settings, redis_url=full_redis)
    async with serve(s) as url, httpx.AsyncClient(base_url=url, timeout=5) as client:
        for _ in range(3):
            r = await client.post("/v1/tasks", json=ECHO, headers=tenants["acme"].auth())
            assert r.status_code == 201, r.text


async def test_oversized_request_head_is_431(settings, tenants) -> None:
    async with serve(settings) as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        answer = b""
        with contextlib.suppress(ConnectionError):
            for _ in range(16):  # 1 MB, in 64 KiB writes
                writer.write(b"a" * 65536)
                await writer.drain()
            writer.write(b"\r\n\r\n")
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b"application/problem+json" in head
        assert msgspec.json.decode(body)["code"] == "request_header_fields_too_large"
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            # A new connection still works, and so do heads just under the limit, kept alive.
            near = {"X-Pad": "p" * (settings.max_header_bytes - 200)}
            for _ in range(3):
                assert (await client.get("/healthz", headers=near)).status_code == 200
            r = await client.post("/v1/tasks", json=ECHO, headers=tenants["acme"].auth())
            assert r.status_code == 201


@pytest.mark.parametrize("size", [20_000, 40_000, 200_000])
async def test_a_head_over_the_limit_in_one_write_is_431(settings, tenants, size) -> None:
    """A head that arrives whole in the read where it begins is measured too (seen with curl
    -H 'X-Big: <40 KB>' on `taskstream dev`: 200)."""
    async with serve(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            big = {**tenants["acme"].auth(), "X-Big": "b" * size}
            r = await client.get("/v1/tasks", headers=big)
            assert r.status_code == 431, r.text
            assert r.json()["code"] == "request_header_fields_too_large"
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            assert (
                await client.get("/v1/tasks", headers=tenants["acme"].auth())
            ).status_code == 200


async def test_big_body_after_a_small_head_is_not_431(settings, tenants) -> None:
    """Only the head counts: a body far over the header limit is fine."""
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=5) as client:
        body = {"type": "examples.echo", "payload": {"message": "m" * 200_000}}
        r = await client.post("/v1/tasks", json=body, headers=tenants["acme"].auth())
        assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "target",
    [
        "/v1/tasks?type=%00",
        "/v1/tasks?queue=a%0Ab",
        "/v1/tasks?type=%FF%FE",
        "/v1/dead-letters?type=%00",
        "/v1/tasks/%00",
        "/v1/tasks/%C3",
    ],
)
async def test_bad_targets_are_400(settings, tenants, target) -> None:
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=5) as client:
        r = await client.get(target, headers=tenants["acme"].auth())
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "invalid_parameter"
        ok = await client.get("/v1/tasks?type=examples.echo", headers=tenants["acme"].auth())
        assert ok.status_code == 200
