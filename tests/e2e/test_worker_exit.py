"""A sync handler that ignores its timeout cannot hold a stopped worker process: SIGTERM, the
grace period, and the process is gone, although the handler's thread still sleeps."""

from __future__ import annotations

import asyncio
import time

import pytest

from taskstream.broker.connection import connect
from taskstream.broker.keys import Keys
from taskstream.broker.producer import Producer
from taskstream.core.config import Settings
from taskstream.core.ids import uuid7
from taskstream.core.models import Dispatch, NewTask, Priority
from taskstream.store.database import create_pool
from taskstream.store.tasks import TaskStore
from taskstream.store.tenants import TenantStore

from .conftest import Cluster, query, wait_until

pytestmark = pytest.mark.slow
GRACE_S = 1.0
MARGIN_S = 4.0  # drain bookkeeping and interpreter exit, generously


def submit_stuck_task(settings: Settings) -> str:
    """A sync handler that sleeps an hour: its row, its queue and its stream entry."""

    async def go() -> str:
        pool = await create_pool(settings.database_url, min_size=1, max_size=1)
        redis = connect(settings.redis_url)
        try:
            tenant = await TenantStore(pool).create_tenant("exit")
            task = NewTask(
                id=uuid7(), tenant_id=tenant, type="examples.sync_sleep", queue="default",
                priority=Priority.NORMAL, payload_json=b'{"seconds": 3600}', max_attempts=1,
                timeout_s=3600.0, idempotency_key=None, request_hash=None, correlation_id=None,
                run_at=None,
            )  # fmt: skip
            store = TaskStore(pool)
            await store.upsert_queue(tenant, task.queue)
            await store.insert_many([task])
            producer = Producer(redis, Keys(settings.redis_prefix), TenantStore(pool).names)
            await producer.publish([Dispatch(task.id, tenant, task.queue, task.priority)])
            return str(task.id)
        finally:
            await redis.aclose()
            await pool.close()

    return asyncio.run(go())


def test_sigterm_exits_within_grace_despite_a_stuck_sync_handler(
    cluster: Cluster, settings: Settings
) -> None:
    task_id = submit_stuck_task(settings)
    worker = cluster.start(
        "worker",
        "--app",
        "taskstream.examples.tasks",
        env={
            "TASKSTREAM_SHUTDOWN_GRACE_S": str(GRACE_S),
        },
    )
    sql = f"SELECT status FROM tasks WHERE id = '{task_id}'"
    wait_until(lambda: query(settings.database_url, sql)[0]["status"] == "processing", 30, "claim")
    started = time.monotonic()
    code = cluster.stop(worker, timeout_s=GRACE_S + MARGIN_S + 10)
    took_s = time.monotonic() - started
    assert took_s < GRACE_S + MARGIN_S, f"exit took {took_s:.1f} s"
    assert code == 0
    assert query(settings.database_url, sql)[0]["status"] == "pending"  # handed back
