"""End to end through the real CLI: tenants and keys, API, scheduler and workers as separate
processes, tasks over HTTP, graceful stop, and recovery from a worker killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskstream.core.config import Settings

from .conftest import Cluster, query, wait_until

pytestmark = pytest.mark.slow

PRIORITIES = ["critical", "high", "normal", "low"]


def counts(settings: Settings) -> dict[str, int]:
    rows = query(settings.database_url, "SELECT status, count(*) AS n FROM tasks GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


def fetch(settings: Settings, sql: str) -> list[Any]:
    return query(settings.database_url, sql)


def test_thousand_tasks_two_tenants_four_priorities(cluster: Cluster, settings: Settings) -> None:
    assert "up to date" in cluster.cli("migrate") + "up to date"  # idempotent on a migrated db
    keys = {}
    for name in ("acme", "globex"):
        tenant_id = cluster.cli("tenant", "create", name).strip()
        assert len(tenant_id) == 36
        out = cluster.cli("key", "create", "--tenant", name, "--role", "submitter")
        assert out.count("\n") == 1 and out.startswith("tsk_")  # the key alone on one line
        keys[name] = out.strip()
    url = cluster.start_api()
    cluster.start("scheduler")
    supervisor = cluster.start(
        "worker",
        "--app",
        "testapp",
        "--app",
        "taskstream.examples.tasks",
        "--processes",
        "2",
        "--concurrency",
        "20",
    )
    plain = cluster.start(
        "worker", "--app", "testapp", "--app", "taskstream.examples.tasks", "--concurrency", "20"
    )
    wait_until(
        lambda: fetch(settings, "SELECT count(*) AS n FROM task_types")[0]["n"] >= 8,
        30,
        "workers to register their task types",
    )

    submitted = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for name, key in keys.items():
            auth = {"Authorization": f"Bearer {key}"}
            for p in PRIORITIES:
                batch = [
                    {
                        "type": "examples.echo",
                        "payload": {"message": f"{name}-{p}-{i}"},
                        "priority": p,
                    }
                    for i in range(120)
                ]
                r = client.post("/v1/tasks/batch", json={"tasks": batch}, headers=auth)
                assert r.status_code == 201, r.text
                submitted += [i["task"]["id"] for i in r.json()["items"]]
            for i in range(5):  # and some single submissions
                r = client.post(
                    "/v1/tasks",
                    json={"type": "examples.echo", "payload": {"message": str(i)}},
                    headers=auth,
                )
                assert r.status_code == 201, r.text
                submitted.append(r.json()["id"])
    assert len(submitted) == 970 and len(set(submitted)) == 970
    with httpx.Client(base_url=url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {keys['acme']}"}
        r = client.post(
            "/v1/tasks/batch",
            headers=auth,
            json={
                "tasks": [
                    {"type": "examples.sleep", "payload": {"seconds": 0.01}, "priority": "low"}
                ]
                * 30
            },
        )
        assert r.status_code == 201
    wait_until(lambda: counts(settings).get("completed", 0) == 1000, 90, "1,000 completions")
    assert counts(settings) == {"completed": 1000}
    rows = fetch(settings, "SELECT attempts, tenant_id, priority FROM tasks")
    assert Counter(r["attempts"] for r in rows) == {1: 1000}  # each ran once
    assert len({r["tenant_id"] for r in rows}) == 2
    assert {r["priority"] for r in rows} == {0, 1, 2, 3}

    # A user reads a result back.
    with httpx.Client(base_url=url) as client:
        task = client.get(
            f"/v1/tasks/{submitted[0]}", headers={"Authorization": f"Bearer {keys['acme']}"}
        ).json()
    assert task["status"] == "completed" and task["result"]["echo"].startswith("acme-critical")

    # Graceful stop: every process exits 0 on SIGTERM, the supervisor takes its children along.
    for proc in (plain, supervisor, *cluster.procs):
        assert cluster.stop(proc) == 0


def test_worker_killed_mid_task_loses_nothing(cluster: Cluster, settings: Settings) -> None:
    """SIGKILL a worker while it holds tasks: after the visibility timeout another worker
    reclaims them; every task completes, and the transaction-backed effect exists once."""
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    cluster.env["TASKSTREAM_VISIBILITY_TIMEOUT_S"] = "2"
    url = cluster.start_api()
    cluster.start("scheduler")
    fetch(
        settings,
        "CREATE TABLE test_effects (id bigserial PRIMARY KEY, task_id uuid NOT NULL,"
        " value int NOT NULL, lease_epoch bigint NOT NULL)",
    )
    victim = cluster.start("worker", "--app", "testapp", "--concurrency", "50")
    wait_until(
        lambda: fetch(settings, "SELECT count(*) AS n FROM task_types")[0]["n"] >= 2,
        30,
        "the worker to register its task types",
    )
    with httpx.Client(base_url=url, timeout=30) as client:
        body = {
            "tasks": [
                {"type": "test.effect", "payload": {"value": i, "sleep_s": 1.5}} for i in range(40)
            ]
        }
        r = client.post("/v1/tasks/batch", json=body, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 201
    wait_until(lambda: counts(settings).get("processing", 0) == 40, 20, "tasks in flight")
    cluster.stop(victim, signal.SIGKILL)
    cluster.start("worker", "--app", "testapp", "--concurrency", "50")
    wait_until(lambda: counts(settings).get("completed", 0) == 40, 60, "recovery")
    rows = fetch(settings, "SELECT attempts FROM tasks")
    # The killed attempt counts (a loaded machine may lose a lease once more: at least once).
    assert all(r["attempts"] >= 2 for r in rows)
    effects = fetch(settings, "SELECT task_id, count(*) AS n FROM test_effects GROUP BY task_id")
    assert len(effects) == 40 and all(e["n"] == 1 for e in effects)  # exactly one effect each


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_supervisor_restarts_a_dead_worker(cluster: Cluster, settings: Settings) -> None:
    """`worker --processes 2`: a child killed with SIGKILL is replaced; SIGTERM stops all."""
    supervisor = cluster.start("worker", "--app", "taskstream.examples.tasks", "--processes", "2")
    wait_until(lambda: len(children(supervisor.pid)) == 2, 30, "two worker processes")
    first = children(supervisor.pid)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(children(supervisor.pid) - first) == 1 and len(children(supervisor.pid)) == 2,
        30,
        "a replacement worker",
    )
    assert victim not in children(supervisor.pid)
    kids = children(supervisor.pid)
    assert cluster.stop(supervisor) == 0
    for kid in kids:  # the children went with it (gone, or a zombie awaiting its reaper)
        status = Path(f"/proc/{kid}/status")
        assert not status.exists() or "zombie" in status.read_text()


def test_api_processes_share_one_port(cluster: Cluster, settings: Settings) -> None:
    """`api --processes 2`: two servers on one port (SO_REUSEPORT); SIGTERM stops both."""
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "submitter").strip()
    url = cluster.start_api("--processes", "2")
    supervisor = cluster.api_proc
    assert supervisor is not None
    wait_until(lambda: len(children(supervisor.pid)) == 2, 30, "two API processes")
    kids = children(supervisor.pid)
    cluster.start("worker", "--app", "taskstream.examples.tasks")
    wait_until(
        lambda: fetch(settings, "SELECT count(*) AS n FROM task_types")[0]["n"] > 0,
        30,
        "task types",
    )
    headers = {"Authorization": f"Bearer {key}"}
    body = {"type": "examples.noop", "payload": {}}
    statuses: Counter[int] = Counter()
    for _ in range(40):  # a new connection each time, so the kernel spreads them
        with httpx.Client(base_url=url, headers=headers) as client:
            statuses[client.post("/v1/tasks", json=body).status_code] += 1
    assert statuses == Counter({201: 40})
    assert fetch(settings, "SELECT count(*) AS n FROM tasks")[0]["n"] == 40
    assert cluster.stop(supervisor) == 0
    for kid in kids:
        status = Path(f"/proc/{kid}/status")
        assert not status.exists() or "zombie" in status.read_text()


def test_bench_verb_against_a_running_deployment(cluster: Cluster, settings: Settings) -> None:
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "submitter").strip()
    url = cluster.start_api()
    cluster.start("scheduler")
    cluster.start("worker", "--app", "taskstream.examples.tasks", "--concurrency", "50")
    wait_until(
        lambda: fetch(settings, "SELECT count(*) AS n FROM task_types")[0]["n"] > 0,
        30,
        "task types",
    )
    out = cluster.cli("bench", "--url", url, "--key", key, "--n", "2000", "--batch", "400")
    result = json.loads(out)["queue_test"]
    assert result["tasks"] == 2000 and result["throughput_per_s"] > 0
    rows = fetch(settings, "SELECT queue, status, count(*) AS n FROM tasks GROUP BY 1, 2")
    assert len(rows) == 1 and rows[0]["status"] == "completed" and rows[0]["n"] == 2000
    assert rows[0]["queue"].startswith("bench-")
