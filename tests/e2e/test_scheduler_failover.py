"""Two `taskstream scheduler` processes and a schedule firing every second for over a minute;
the leader is SIGKILLed twice. No fire time is enqueued twice and no gap in enqueueing exceeds
the takeover bound (lease TTL 3 s + renew 0.5 s + a tick: under 5 s)."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from itertools import pairwise
from typing import Any

import httpx
import pytest

from taskstream.core.config import Settings

from .conftest import Cluster, wait_until
from .conftest import query as run_query

pytestmark = pytest.mark.slow
TAKEOVER_BOUND_S = 5.0


def query(settings: Settings, sql: str) -> list[Any]:
    return run_query(settings.database_url, sql)


def leader(settings: Settings) -> str | None:
    rows = query(
        settings, "SELECT holder FROM leader_leases WHERE name = 'cron' AND expires_at > now()"
    )
    return rows[0]["holder"] if rows else None


@pytest.mark.timeout(240)
def test_leader_killed_twice(cluster: Cluster, settings: Settings) -> None:
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    url = cluster.start_api()
    cluster.start("worker", "--app", "taskstream.examples.tasks")
    wait_until(
        lambda: query(settings, "SELECT count(*) AS n FROM task_types")[0]["n"] > 0,
        30,
        "task types",
    )
    with httpx.Client(base_url=url) as client:
        r = client.post(
            "/v1/schedules",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "name": "tick",
                "cron": "* * * * * *",
                "task": {"type": "examples.echo", "payload": {"message": "tick"}},
            },
        )
        assert r.status_code == 201, r.text
    schedulers = {}
    for _ in range(2):
        proc = cluster.start("scheduler")
        schedulers[proc.pid] = proc
    started = time.monotonic()
    kills = 0
    while time.monotonic() - started < 65:
        time.sleep(1)
        holder = leader(settings)
        if kills < 2 and holder and time.monotonic() - started > 15 + kills * 20:
            pid = int(holder.split(":")[1])
            cluster.stop(schedulers.pop(pid), signal.SIGKILL)
            kills += 1
            fresh = cluster.start("scheduler")  # back as a follower
            schedulers[fresh.pid] = fresh
    assert kills == 2
    rows = query(settings, "SELECT idempotency_key, created_at FROM tasks ORDER BY created_at")
    keys = [r["idempotency_key"] for r in rows]
    assert len(keys) == len(set(keys))  # no fire time enqueued twice
    fires = sorted(datetime.fromisoformat(k.split(":", 2)[2]) for k in keys)
    assert all((b - a).total_seconds() == 1 for a, b in pairwise(fires))  # none skipped
    gaps = [(b["created_at"] - a["created_at"]).total_seconds() for a, b in pairwise(rows)]
    print(
        f"{len(rows)} fires over {(fires[-1] - fires[0]).total_seconds():.0f} s, "
        f"largest enqueue gap {max(gaps):.2f} s across 2 leader kills"
    )
    assert len(rows) >= 60
    assert max(gaps) < TAKEOVER_BOUND_S
