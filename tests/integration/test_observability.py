"""Observability (issue 14): correlation ids on every request (given or made, echoed, stored
with the tasks), the API's request metrics by route template, and the worker's and the
scheduler's /metrics after real work. Real API, worker, PostgreSQL and Redis."""

from __future__ import annotations

import re
import socket
from typing import Any

import httpx
import pytest

from taskstream.observability.stats import Family, Stats, merge, metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_correlation_ids_are_given_or_made_and_echoed(
    api: Any, tenants: Any, pool: Any
) -> None:
    acme = tenants["acme"]
    r = await api.post("/v1/tasks", json={"type": "examples.noop"},
                       headers={**acme.auth(), "X-Correlation-Id": "order-42"})  # fmt: skip
    assert r.status_code == 201 and r.headers["x-correlation-id"] == "order-42"
    assert r.json()["correlation_id"] == "order-42"
    r = await api.post("/v1/tasks", json={"type": "examples.noop"}, headers=acme.auth())
    made = r.headers["x-correlation-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", made) and r.json()["correlation_id"] == made
    for bad in (" padded", "x" * 129, "tab\there"):
        r = await api.get("/v1/tasks", headers={**acme.auth(), "X-Correlation-Id": bad})
        assert (r.status_code, r.json()["code"]) == (400, "invalid_correlation_id")
        assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-correlation-id"])
    r = await api.get("/no/such/path")
    assert r.status_code == 404 and r.headers["x-correlation-id"]


async def test_requests_are_counted_by_route_template(api: Any, tenants: Any) -> None:
    acme = tenants["acme"]
    ids = []
    for _ in range(3):
        r = await api.post("/v1/tasks", json={"type": "examples.noop"}, headers=acme.auth())
        ids.append(r.json()["id"])
    for task_id in ids:
        await api.get(f"/v1/tasks/{task_id}", headers=acme.auth())
    await api.get("/nowhere")
    text = (await api.get("/metrics", headers=acme.auth())).text
    route = "/v1/tasks/{task_id}"
    assert sample(text, "http_requests_total", route="/v1/tasks", method="POST", status="201") >= 3
    assert sample(text, "http_requests_total", route=route, method="GET", status="200") >= 3
    assert sample(text, "http_requests_total", route="unmatched", method="GET", status="404") >= 1
    assert sample(text, "http_request_duration_seconds_count", route=route, method="GET") >= 3
    assert not any(task_id in text for task_id in ids)  # paths never become labels
    assert "task_queue_depth" in text and "dead_letter_depth" in text


async def test_worker_metrics_after_work(
    api: Any, tenants: Any, start_worker: Any, promoter: Any, until: Any
) -> None:
    acme = tenants["acme"]
    port = free_port()
    await start_worker(metrics_port=port)
    bodies = [{"type": "examples.noop"}] * 3 + [
        {"type": "examples.flaky", "payload": {"fail_times": 1}},
        {"type": "examples.fail", "payload": {"reason": "no"}},
    ]
    for body in bodies:
        assert (await api.post("/v1/tasks", json=body, headers=acme.auth())).status_code == 201

    async def scraped() -> bool:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        failed = sample(text, "tasks_completed_total", type="examples.fail", status="failed")
        retried = sample(text, "tasks_completed_total", type="examples.flaky", status="completed")
        return failed == retried == 1

    await until(scraped)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert sample(text, "tasks_completed_total", type="examples.noop", queue="default",
                  status="completed") == 3  # fmt: skip
    assert sample(text, "tasks_completed_total", type="examples.flaky", status="retry") == 1
    assert sample(text, "tasks_completed_total", type="examples.flaky", status="completed") == 1
    assert sample(text, "task_retries_total", type="examples.flaky", queue="default") == 1
    assert sample(text, "task_duration_seconds_count", type="examples.noop") == 3
    assert sample(text, "task_pickup_latency_seconds_count", queue="default") == 6
    assert (
        sample(text, "worker_slots", state="busy") + sample(text, "worker_slots", state="free")
        == 10
    )


def test_snapshots_add_up() -> None:
    fams = [Family("jobs_total", "jobs", "counter", ("kind",)),
            Family("wait_seconds", "waits", "histogram", (), buckets=(1.0, 2.0)),
            Family("slots", "slots", "gauge", ("state",))]  # fmt: skip
    a, b = Stats(fams), Stats(fams)
    a.count("jobs_total", ("x",))
    b.count("jobs_total", ("x",), 2)
    b.count("jobs_total", ("y",))
    a.observe("wait_seconds", (), 0.5)
    b.observe("wait_seconds", (), 1.5)
    b.observe("wait_seconds", (), 9.0)
    a.set("slots", ("busy",), 3)
    b.set("slots", ("busy",), 4)
    total = merge([a.snapshot(), b.snapshot()])
    out = {m.name: m for m in metrics({f.name: f for f in fams}, total)}
    jobs = {s.labels["kind"]: s.value for s in out["jobs"].samples if s.name == "jobs_total"}
    assert jobs == {"x": 3, "y": 1}
    buckets = {s.labels["le"]: s.value for s in out["wait_seconds"].samples
               if s.name == "wait_seconds_bucket"}  # fmt: skip
    assert buckets == {"1.0": 1, "2.0": 2, "+Inf": 3}
    assert [s.value for s in out["slots"].samples] == [7]


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
