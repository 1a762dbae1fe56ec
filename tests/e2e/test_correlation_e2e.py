"""One correlation id followed through the JSON log lines of the API, the scheduler and the
worker, as an operator greps them (issue 14); a cron fire's own id likewise; and, with
OTEL_TRACES_EXPORTER=console, one trace id across the API's and the worker's processes.
Real processes, real PostgreSQL and Redis."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskstream.core.config import Settings

from .conftest import Cluster, query, wait_until

pytestmark = pytest.mark.slow
DEBUG = {"TASKSTREAM_LOG_LEVEL": "debug"}


def json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a console exporter's pretty JSON spans lines
    return out


def log_of(cluster: Cluster, verb: str) -> Path:
    (path,) = [p for p in cluster.logs.iterdir() if p.name.startswith(f"{verb}-")]
    return path


def start_stack(cluster: Cluster, settings: Settings, env: dict[str, str]) -> tuple[str, dict]:
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    cluster.start("worker", "--app", "taskstream.examples.tasks", env=env)
    cluster.start("scheduler", env=env)
    wait_until(lambda: bool(query(settings.database_url, "SELECT 1 FROM task_types")), 30, "types")
    return cluster.start_api(env=env), {"Authorization": f"Bearer {key}"}


def status(url: str, auth: dict[str, str], task_id: str) -> str:
    return str(httpx.get(f"{url}/v1/tasks/{task_id}", headers=auth, timeout=5).json()["status"])


def test_one_correlation_id_through_api_scheduler_and_worker(
    cluster: Cluster, settings: Settings
) -> None:
    url, auth = start_stack(cluster, settings, DEBUG)
    cid = "order-4711"
    # Delayed (the scheduler promotes it) and failing once (the worker logs the failed attempt,
    # the scheduler promotes the retry).
    r = httpx.post(f"{url}/v1/tasks", headers={**auth, "X-Correlation-Id": cid}, timeout=10,
                   json={"type": "examples.flaky", "payload": {"fail_times": 1},
                         "delay_s": 0.3})  # fmt: skip
    assert r.status_code == 201 and r.headers["x-correlation-id"] == cid
    task_id = r.json()["id"]
    wait_until(lambda: status(url, auth, task_id) == "completed", 30, "the task to complete")

    def about(verb: str) -> list[dict[str, Any]]:
        return [
            line for line in json_lines(log_of(cluster, verb)) if line.get("task_id") == task_id
        ]

    def lines_everywhere() -> bool:
        return all(
            any(e["event"] == "attempt ended" for e in about("worker"))
            and len([e for e in about(v) if e["event"] in want]) >= n
            for v, want, n in (
                ("api", {"task submitted"}, 1),
                ("scheduler", {"task promoted"}, 2),  # the delay, then the retry
                ("worker", {"attempt started", "attempt failed", "attempt ended"}, 5),
            )
        )

    wait_until(lines_everywhere, 10, "log lines about the task in every process")
    for verb in ("api", "scheduler", "worker"):
        lines = about(verb)
        assert lines, verb
        # Every line about the task carries its correlation id.
        assert {line.get("correlation_id") for line in lines} == {cid}, (verb, lines)
    failed = [e for e in about("worker") if e["event"] == "attempt failed"]
    assert failed and failed[0]["level"] == "warning"
    # The API's line is written under the request's own context.
    (submitted,) = [e for e in about("api") if e["event"] == "task submitted"]
    assert submitted["created"] is True


def test_a_cron_fire_has_its_own_correlation_id(cluster: Cluster, settings: Settings) -> None:
    url, auth = start_stack(cluster, settings, DEBUG)
    r = httpx.post(f"{url}/v1/schedules", headers=auth, timeout=10, json={
        "name": "tick", "cron": "* * * * * *",
        "task": {"type": "examples.echo", "payload": {"message": "tick"}},
    })  # fmt: skip
    assert r.status_code == 201, r.text

    def fired() -> list[dict[str, Any]]:
        return [
            e for e in json_lines(log_of(cluster, "scheduler")) if e["event"] == "schedule fired"
        ]

    def ran() -> bool:
        worker = json_lines(log_of(cluster, "worker"))
        return any(
            e.get("task_id") == f["task_id"] and e["event"] == "attempt ended"
            for f in fired()
            for e in worker
        )

    wait_until(ran, 30, "a fire to run")
    worker = json_lines(log_of(cluster, "worker"))
    fire = next(f for f in fired() if any(e.get("task_id") == f["task_id"] for e in worker))
    assert re.fullmatch(r"schedule:tick:[0-9a-f]{12}", fire["correlation_id"])
    about = [e for e in worker if e.get("task_id") == fire["task_id"]]
    assert {e["correlation_id"] for e in about} == {fire["correlation_id"]}
    task = httpx.get(f"{url}/v1/tasks/{fire['task_id']}", headers=auth, timeout=5).json()
    assert task["correlation_id"] == fire["correlation_id"]


def test_one_trace_across_processes_with_the_console_exporter(
    cluster: Cluster, settings: Settings
) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    env = {"OTEL_TRACES_EXPORTER": "console"}
    url, auth = start_stack(cluster, settings, env)
    r = httpx.post(f"{url}/v1/tasks", headers=auth, timeout=10,
                   json={"type": "examples.echo", "payload": {"message": "traced"}})  # fmt: skip
    task_id = r.json()["id"]
    wait_until(lambda: status(url, auth, task_id) == "completed", 30, "the task to complete")

    def trace_ids(verb: str, name: str) -> set[str]:
        """The trace ids of the spans named ``name`` in a process's console export."""
        text = log_of(cluster, verb).read_text(errors="replace")
        spans = [json.loads(b) for b in re.findall(r"^\{\n.*?^\}$", text, flags=re.S | re.M)]
        return {s["context"]["trace_id"] for s in spans if s["name"] == name}

    wait_until(lambda: bool(trace_ids("worker", "process default")), 10, "the worker's span")
    (sent,) = trace_ids("api", "send default")
    assert trace_ids("api", "POST /v1/tasks") == {sent}
    assert trace_ids("worker", "process default") == {sent}
