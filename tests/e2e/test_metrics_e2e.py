"""Every process's /metrics as a user scrapes them (issue 14): a worker supervisor with two
children serves one endpoint adding both up; the scheduler serves its own; the API's counters
are the same whichever of its two processes answers. Real processes."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from taskstream.core.config import Settings

from ..integration.test_observability import sample
from .conftest import Cluster, query, wait_until

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return ""


def test_metrics_of_every_process(cluster: Cluster, settings: Settings) -> None:
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    auth = {"Authorization": f"Bearer {key}"}
    workers, scheduler = free_port(), free_port()
    cluster.start("worker", "--app", "taskstream.examples.tasks", "--processes", "2",
                  "--metrics-port", str(workers))  # fmt: skip
    cluster.start("scheduler", "--metrics-port", str(scheduler))
    wait_until(lambda: bool(query(settings.database_url, "SELECT 1 FROM task_types")), 30, "types")
    url = cluster.start_api("--processes", "2")
    batches = 10
    for _ in range(batches):
        r = httpx.post(f"{url}/v1/tasks/batch", headers=auth, timeout=10,
                       json={"tasks": [{"type": "examples.noop"}] * 5})  # fmt: skip
        assert r.status_code == 201, r.text
    r = httpx.post(f"{url}/v1/tasks", headers=auth, timeout=10,
                   json={"type": "examples.noop", "delay_s": 0.5})  # fmt: skip
    assert r.status_code == 201

    def counted() -> bool:
        text = scrape(workers)
        return sample(text, "tasks_completed_total", type="examples.noop", status="completed") == 51

    wait_until(counted, 30, "both workers' completions in one scrape")
    text = scrape(workers)
    busy_and_free = sample(text, "worker_slots", state="busy") + sample(
        text, "worker_slots", state="free"
    )
    assert busy_and_free == 20  # two children of 10 slots
    assert sample(text, "task_pickup_latency_seconds_count", queue="default") == 51

    wait_until(lambda: sample(scrape(scheduler), "tasks_promoted_total") >= 1, 10, "promoted")
    assert sample(scrape(scheduler), "scheduler_leader") == 1

    # The API's counters: every process's, whichever answers the scrape.
    for _ in range(4):
        text = httpx.get(f"{url}/metrics", headers=auth, timeout=10).text
        posted = sample(text, "http_requests_total", route="/v1/tasks/batch", method="POST",
                        status="201")  # fmt: skip
        assert posted == batches
        time.sleep(0.05)
