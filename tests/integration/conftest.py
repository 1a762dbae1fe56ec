"""Fixtures that run the real pieces in-process: stores, the API app, workers, the promoter."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from taskstream.api.app import create_app
from taskstream.broker.connection import connect
from taskstream.broker.keys import Keys
from taskstream.broker.producer import Producer
from taskstream.core.config import Settings
from taskstream.core.ids import uuid7
from taskstream.core.models import NewTask, Priority
from taskstream.scheduler.promoter import Promoter
from taskstream.store.database import create_pool
from taskstream.store.tasks import TaskStore
from taskstream.store.tenants import TenantStore
from taskstream.worker.registry import load_apps
from taskstream.worker.runner import Worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
import testapp

REGISTRY = load_apps(["taskstream.examples.tasks", "testapp"], with_entry_points=False)


def new_task(tenant_id: UUID, **changes: Any) -> NewTask:
    """A valid submission for tests that insert through the store; ``changes`` override."""
    fields: dict[str, Any] = {
        "id": uuid7(), "tenant_id": tenant_id, "type": "examples.noop", "queue": "default",
        "priority": Priority.NORMAL, "payload_json": b"{}", "max_attempts": 3, "timeout_s": 10.0,
        "idempotency_key": None, "request_hash": None, "correlation_id": None, "run_at": None,
    }  # fmt: skip
    fields.update(changes)
    return NewTask(**fields)


class Tenant(msgspec.Struct):
    name: str
    id: UUID
    key: str  # admin
    viewer_key: str
    submitter_key: str

    def auth(self, role: str = "admin") -> dict[str, str]:
        key = {"admin": self.key, "viewer": self.viewer_key, "submitter": self.submitter_key}
        return {"Authorization": f"Bearer {key[role]}"}


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Any]:
    p = await create_pool(settings.database_url, min_size=1, max_size=10)
    await p.execute(testapp.EFFECTS_DDL)
    yield p
    await p.close()


@pytest.fixture
async def store(pool: Any) -> TaskStore:
    return TaskStore(pool)


@pytest.fixture
async def tenants(pool: Any) -> dict[str, Tenant]:
    ts = TenantStore(pool)
    out = {}
    for name in ("acme", "globex"):
        tid = await ts.create_tenant(name)
        out[name] = Tenant(
            name,
            tid,
            await ts.create_key(tid, "admin"),
            await ts.create_key(tid, "viewer"),
            await ts.create_key(tid, "submitter"),
        )
    return out


@pytest.fixture
async def producer(settings: Settings, pool: Any) -> AsyncIterator[Producer]:
    redis = connect(settings.redis_url)
    yield Producer(redis, Keys(settings.redis_prefix), TenantStore(pool).names)
    await redis.aclose()


@pytest.fixture
async def start_worker(
    settings: Settings, pool: Any
) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Start workers in the background; all are stopped (gracefully) at teardown."""
    running: list[tuple[Worker, asyncio.Event, asyncio.Task[None]]] = []

    async def start(
        concurrency: int = 10,
        region: str | None = None,
        metrics_port: int | None = None,
        **changes: Any,
    ) -> Worker:
        s = msgspec.structs.replace(settings, **changes) if changes else settings
        worker = Worker(
            s, REGISTRY, concurrency=concurrency, region=region, metrics_port=metrics_port
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        running.append((worker, stop, task))
        await asyncio.wait_for(worker.ready.wait(), 10)
        return worker

    yield start
    for _, stop, _ in running:
        stop.set()
    await asyncio.gather(*(t for _, _, t in running))


@pytest.fixture
async def promoter(
    settings: Settings, store: TaskStore, producer: Producer
) -> AsyncIterator[Promoter]:
    p = Promoter(settings, store, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(p.run(stop))
    yield p
    stop.set()
    await task


@pytest.fixture
async def api(settings: Settings, start_worker: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    """The API app in-process. Depends on a registered catalog, so types are registered first."""
    worker = Worker(settings, REGISTRY)
    worker._pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        await worker.register_types()
    finally:
        await worker._pool.close()
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, every_s: float = 0.02
) -> None:
    """Poll until ``predicate()`` holds; fail the test with the timeout otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(every_s)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    return wait_for
