"""Kill storm: workers SIGKILLed at random and one SIGSTOPped past its lease while thousands of
tasks run. Every task must end in exactly one terminal state, with exactly one effect, and
Redis must be left with no pending or stray entries."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest

from taskstream.broker.connection import connect_blocking
from taskstream.core.config import Settings

from .conftest import Cluster, wait_until
from .conftest import query as run_query

pytestmark = [pytest.mark.slow, pytest.mark.cluster_too]  # and on a 3-master Redis Cluster

TASKS = 5000
POISON = 5
WORKERS = 3
VT_S = 2.0


def query(settings: Settings, sql: str) -> list[Any]:
    return run_query(settings.database_url, sql)


def redis_leftovers(settings: Settings) -> tuple[int, int]:
    """(entries still in streams, entries pending in the consumer group)."""
    client = connect_blocking(settings.redis_url)
    try:
        length = pending = 0
        # Every stream has a hash tag in braces ({tenant/queue}); no other key has one.
        streams = list(client.scan_iter(match=f"{settings.redis_prefix}:{{*}}:*", count=1000))
        assert streams, "no stream found: the pattern no longer matches the key layout"
        for key in streams:
            length += client.xlen(key)
            pending += client.xpending(key, f"{settings.redis_prefix}:workers")["pending"]
        return length, pending
    finally:
        client.close()


@pytest.mark.timeout(600)
def test_kill_storm(cluster: Cluster, settings: Settings) -> None:
    rng = random.Random(20261128)
    cluster.env["TASKSTREAM_VISIBILITY_TIMEOUT_S"] = str(VT_S)
    cluster.env["TASKSTREAM_LOG_LEVEL"] = "warning"
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    query(
        settings,
        "CREATE TABLE test_effects (id bigserial PRIMARY KEY, task_id uuid NOT NULL,"
        " value int NOT NULL, lease_epoch bigint NOT NULL)",
    )
    url = cluster.start_api()
    cluster.start("scheduler")

    def start_worker() -> subprocess.Popen[bytes]:
        return cluster.start("worker", "--app", "testapp", "--concurrency", "20")

    workers = [start_worker() for _ in range(WORKERS)]
    wait_until(
        lambda: query(settings, "SELECT count(*) AS n FROM task_types")[0]["n"] >= 2,
        30,
        "task types",
    )
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=60) as client:
        for start in range(0, TASKS, 500):
            body = {
                "tasks": [
                    {
                        "type": "test.effect",
                        "payload": {"value": i, "sleep_s": 0.25},
                        "max_attempts": 25,
                    }
                    for i in range(start, start + 500)
                ]
            }
            assert client.post("/v1/tasks/batch", json=body, headers=auth).status_code == 201
        poison = {"tasks": [{"type": "test.crash", "payload": {}}] * POISON}
        assert client.post("/v1/tasks/batch", json=poison, headers=auth).status_code == 201

    def terminal() -> int:
        rows = query(
            settings,
            "SELECT count(*) AS n FROM tasks WHERE status IN ('completed', 'failed', 'cancelled')",
        )
        return int(rows[0]["n"])

    kills = stops = 0
    deadline = time.monotonic() + 400
    stopped_once = False
    while terminal() < TASKS + POISON:
        assert time.monotonic() < deadline, "kill storm did not converge"
        time.sleep(rng.uniform(0.5, 2.0))
        for i, w in enumerate(workers):  # poison tasks kill workers too: restart the dead
            if w.poll() is not None:
                workers[i] = start_worker()
        victim = rng.randrange(len(workers))
        if not stopped_once and kills >= 3:
            # A paused worker: its leases run out and others take its tasks; when it resumes
            # it must not complete or ack anything it no longer owns.
            cluster.stop_signal(workers[victim], signal.SIGSTOP)
            time.sleep(VT_S * 2.5)
            cluster.stop_signal(workers[victim], signal.SIGCONT)
            stopped_once, stops = True, stops + 1
            continue
        cluster.stop(workers[victim], signal.SIGKILL)
        kills += 1
        workers[victim] = start_worker()
    print(f"kill storm: {kills} SIGKILLs, {stops} SIGSTOP past the lease")
    assert kills >= 5 and stops == 1

    rows = query(settings, "SELECT type, status, last_error, attempts FROM tasks")
    assert len(rows) == TASKS + POISON
    effect = [r for r in rows if r["type"] == "test.effect"]
    crash = [r for r in rows if r["type"] == "test.crash"]
    assert {r["status"] for r in effect} == {"completed"}
    assert {r["status"] for r in crash} == {"failed"}
    assert all(r["last_error"].startswith("worker_lost") for r in crash)
    effects = query(
        settings, "SELECT count(*) AS n, count(DISTINCT task_id) AS d FROM test_effects"
    )[0]
    assert effects["n"] == effects["d"] == TASKS  # exactly one effect per task
    lost = query(settings, "SELECT count(*) AS n FROM task_attempts WHERE outcome='worker_lost'")
    assert lost[0]["n"] >= POISON  # crashes are counted as attempts

    # Workers reclaim what dead consumers left pending and ack it as done; then nothing is left.
    wait_until(lambda: redis_leftovers(settings) == (0, 0), VT_S * 10 + 30, "Redis to drain")
