"""`taskstream worker` as a pool (issue 16 part 2), with real processes against real Redis and
PostgreSQL: SIGTTIN/SIGTTOU resize it (a shrink drains its child), --autoscale follows the
backlog both ways, and a child is replaced past --max-tasks-per-child, past --max-memory-mb, or
when its event loop hangs (its task comes back through the lease and completes once)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from uuid import UUID

import httpx
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

from ..integration.test_observability import sample
from .conftest import Cluster, query, wait_until

pytestmark = pytest.mark.slow
EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS test_effects (id bigserial PRIMARY KEY,"
    " task_id uuid NOT NULL, value int NOT NULL, lease_epoch bigint NOT NULL)"
)


def new_task(tenant: UUID, type_: str, payload: dict[str, object]) -> NewTask:
    return NewTask(
        id=uuid7(), tenant_id=tenant, type=type_, queue="default", priority=Priority.NORMAL,
        payload_json=json.dumps(payload).encode(), max_attempts=3, timeout_s=3600.0,
        idempotency_key=None, request_hash=None, correlation_id=None, run_at=None,
    )  # fmt: skip


def submit(settings: Settings, type_: str, payloads: list[dict[str, object]]) -> list[str]:
    """Tasks as the API writes them: rows first, then their stream entries."""

    async def go() -> list[str]:
        pool = await create_pool(settings.database_url, min_size=1, max_size=1)
        redis = connect(settings.redis_url)
        try:
            tenants = TenantStore(pool)
            tenant = await tenants.create_tenant(f"pool{os.urandom(4).hex()}")
            tasks = [new_task(tenant, type_, p) for p in payloads]
            store = TaskStore(pool)
            await store.upsert_queue(tenant, "default")
            await store.insert_many(tasks)
            producer = Producer(redis, Keys(settings.redis_prefix), tenants.names)
            await producer.publish([Dispatch(t.id, tenant, t.queue, t.priority) for t in tasks])
            return [str(t.id) for t in tasks]
        finally:
            await redis.aclose()
            await pool.close()

    return asyncio.run(go())


def children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except FileNotFoundError:
        return set()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def statuses(settings: Settings) -> Counter[str]:
    rows = query(settings.database_url, "SELECT status FROM tasks")
    return Counter(r["status"] for r in rows)


def effects_once(settings: Settings, ids: list[str]) -> bool:
    rows = query(
        settings.database_url, "SELECT task_id, count(*) AS n FROM test_effects GROUP BY 1"
    )
    return sorted(str(r["task_id"]) for r in rows) == sorted(ids) and all(r["n"] == 1 for r in rows)


def log_lines(cluster: Cluster, supervisor: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    """The JSON lines of the supervisor and its children (they share its log file)."""
    index = cluster.procs.index(supervisor)
    (path,) = cluster.logs.glob(f"*-{index}.log")
    text = path.read_text(errors="replace")
    return [json.loads(raw) for raw in text.splitlines() if raw.startswith("{")]


def events(
    cluster: Cluster, supervisor: subprocess.Popen[bytes], name: str
) -> list[dict[str, object]]:
    return [line for line in log_lines(cluster, supervisor) if line.get("event") == name]


def start_pool(cluster: Cluster, settings: Settings, *flags: str, env: dict[str, str] | None = None
               ) -> subprocess.Popen[bytes]:  # fmt: skip
    query(settings.database_url, EFFECTS_DDL)
    return cluster.start("worker", "--app", "testapp", *flags, env=env)


def test_signals_resize_the_pool_and_a_shrink_drains_its_child(
    cluster: Cluster, settings: Settings
) -> None:
    supervisor = start_pool(cluster, settings, "--processes", "2", "--concurrency", "1")
    wait_until(lambda: len(children(supervisor.pid)) == 2, 30, "two workers")
    os.kill(supervisor.pid, signal.SIGTTIN)  # to the supervisor alone, not its group
    wait_until(lambda: len(children(supervisor.pid)) == 3, 30, "a third worker")
    first = children(supervisor.pid)

    # Three tasks of 3 s, one per child (a slot each), then two children asked to go.
    ids = submit(settings, "test.effect", [{"value": i, "sleep_s": 3.0} for i in range(3)])
    wait_until(lambda: statuses(settings)["processing"] == 3, 30, "three tasks running")
    os.kill(supervisor.pid, signal.SIGTTOU)
    # Two signals sent at once may arrive as one (a pending signal is a bit, not a count).
    wait_until(lambda: events(cluster, supervisor, "pool shrank"), 10, "the first shrink")
    os.kill(supervisor.pid, signal.SIGTTOU)
    wait_until(lambda: len(children(supervisor.pid)) == 1, 30, "one worker left")
    assert children(supervisor.pid) < first  # none started meanwhile
    wait_until(lambda: statuses(settings) == {"completed": 3}, 30, "the tasks completed")
    attempts = query(settings.database_url, "SELECT task_id, outcome FROM task_attempts")
    assert sorted(r["outcome"] for r in attempts) == ["completed"] * 3  # drained, not released
    assert effects_once(settings, ids)

    os.kill(supervisor.pid, signal.SIGTTOU)  # never below one
    wait_until(lambda: events(cluster, supervisor, "pool size unchanged"), 10, "the refusal")
    assert len(children(supervisor.pid)) == 1
    assert [e["size"] for e in events(cluster, supervisor, "pool grew")] == [3]
    assert [e["size"] for e in events(cluster, supervisor, "pool shrank")] == [2, 1]
    assert cluster.stop(supervisor) == 0


def test_autoscale_grows_on_backlog_and_shrinks_when_idle(
    cluster: Cluster, settings: Settings
) -> None:
    supervisor = start_pool(
        cluster, settings, "--autoscale", "1,3", "--concurrency", "2",
        "--scale-up-after-s", "1", "--scale-down-after-s", "2",
    )  # fmt: skip
    wait_until(lambda: len(children(supervisor.pid)) == 1, 30, "one worker (MIN)")
    time.sleep(3)  # idle at MIN: it stays at MIN
    assert len(children(supervisor.pid)) == 1
    seen: set[int] = set()

    def count() -> int:
        kids = children(supervisor.pid)
        seen.update(kids)
        return len(kids)

    ids = submit(settings, "test.effect", [{"value": i, "sleep_s": 1.0} for i in range(24)])
    wait_until(lambda: count() == 3, 60, "the pool at MAX")
    wait_until(lambda: statuses(settings) == {"completed": 24}, 90, "24 completions")
    wait_until(lambda: count() == 1, 60, "the pool back at MIN")
    assert len(seen) == 3  # grew to three processes, never past MAX
    assert effects_once(settings, ids)
    grew = events(cluster, supervisor, "pool grew")
    shrank = events(cluster, supervisor, "pool shrank")
    assert [e["reason"] for e in grew] == ["backlog"] and grew[0]["size"] == 3
    assert [(e["reason"], e["size"]) for e in shrank] == [("idle", 2), ("idle", 1)]
    assert cluster.stop(supervisor) == 0


def test_a_child_past_max_tasks_is_replaced(cluster: Cluster, settings: Settings) -> None:
    supervisor = start_pool(
        cluster, settings, "--processes", "1", "--concurrency", "1", "--max-tasks-per-child", "5"
    )
    wait_until(lambda: len(children(supervisor.pid)) == 1, 30, "one worker")
    first = children(supervisor.pid)
    ids = submit(settings, "test.effect", [{"value": i} for i in range(12)])
    wait_until(lambda: statuses(settings) == {"completed": 12}, 60, "12 completions")
    per_worker = Counter(
        r["worker"] for r in query(settings.database_url, "SELECT worker FROM task_attempts")
    )
    assert sorted(per_worker.values()) == [2, 5, 5]  # each retired at 5, one at a time
    assert effects_once(settings, ids)
    wait_until(lambda: len(children(supervisor.pid)) == 1, 30, "one worker again")
    assert not children(supervisor.pid) & first
    replaced = events(cluster, supervisor, "child replaced")
    assert [e["reason"] for e in replaced] == ["max_tasks", "max_tasks"]
    assert not events(cluster, supervisor, "child exited")  # retired, not crashed
    assert cluster.stop(supervisor) == 0


def test_a_child_past_max_memory_is_replaced(cluster: Cluster, settings: Settings) -> None:
    limit_mb = 300
    supervisor = start_pool(cluster, settings, "--processes", "1", "--max-memory-mb", str(limit_mb))
    wait_until(lambda: len(children(supervisor.pid)) == 1, 30, "one worker")
    (first,) = children(supervisor.pid)
    ids = submit(settings, "test.effect", [{"value": 1}])
    wait_until(lambda: statuses(settings) == {"completed": 1}, 30, "a first task")
    assert rss_mb(first) < limit_mb and children(supervisor.pid) == {first}

    submit(settings, "test.hog", [{"mb": limit_mb + 100}])
    wait_until(lambda: first not in children(supervisor.pid), 60, "the hog's process to go")
    wait_until(lambda: len(children(supervisor.pid)) == 1, 30, "its replacement")
    assert statuses(settings) == {"completed": 2}
    (replaced,) = events(cluster, supervisor, "child replaced")
    assert replaced["reason"] == "max_memory" and replaced["pid"] == first
    assert int(str(replaced["rss_bytes"])) > limit_mb * 1024 * 1024
    assert effects_once(settings, ids)
    assert cluster.stop(supervisor) == 0


def test_a_hung_child_is_killed_and_its_task_completes_once(
    cluster: Cluster, settings: Settings
) -> None:
    supervisor = start_pool(
        cluster, settings, "--processes", "2", "--child-timeout-s", "5",
        env={"TASKSTREAM_VISIBILITY_TIMEOUT_S": "3"},
    )  # fmt: skip
    wait_until(lambda: len(children(supervisor.pid)) == 2, 30, "two workers")
    first = children(supervisor.pid)
    (task_id,) = submit(settings, "test.hang", [{"value": 7}])
    owner_sql = f"SELECT lease_owner FROM tasks WHERE id = '{task_id}' AND status = 'processing'"
    wait_until(lambda: bool(query(settings.database_url, owner_sql)), 30, "the hang to start")
    owner = query(settings.database_url, owner_sql)[0]["lease_owner"]
    hung = int(owner.split(":")[1])  # host:pid:random
    assert hung in first

    wait_until(lambda: hung not in children(supervisor.pid), 60, "the hung worker killed")
    wait_until(lambda: len(children(supervisor.pid)) == 2, 30, "its replacement")
    wait_until(lambda: statuses(settings) == {"completed": 1}, 60, "the task completed")
    (row,) = query(settings.database_url, f"SELECT attempts FROM tasks WHERE id = '{task_id}'")
    assert row["attempts"] == 2  # the hung attempt counts; the second ran to completion
    assert effects_once(settings, [task_id])
    (killed,) = events(cluster, supervisor, "child killed")
    assert killed["reason"] == "hung" and killed["pid"] == hung
    assert cluster.stop(supervisor) == 0


def test_one_metrics_endpoint_counts_processes_and_forgets_gone_children_s_slots(
    cluster: Cluster, settings: Settings
) -> None:
    """Recycled children's counters stay in the supervisor's sum; their slots do not."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    supervisor = start_pool(
        cluster, settings, "--processes", "1", "--concurrency", "2",
        "--max-tasks-per-child", "3", "--metrics-port", str(port),
    )  # fmt: skip
    wait_until(lambda: len(children(supervisor.pid)) == 1, 30, "one worker")
    submit(settings, "test.effect", [{"value": i} for i in range(9)])
    wait_until(lambda: statuses(settings) == {"completed": 9}, 60, "9 completions")
    wait_until(lambda: len(children(supervisor.pid)) == 1, 30, "one worker left")
    assert len(events(cluster, supervisor, "child replaced")) >= 2

    def scraped() -> bool:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return (
            sample(text, "tasks_completed_total", type="test.effect", status="completed") == 9
            and sample(text, "worker_processes") == 1
            and sample(text, "worker_slots", state="free") == 2  # the one process left's
        )

    wait_until(scraped, 30, "the pool's metrics")
    assert cluster.stop(supervisor) == 0
