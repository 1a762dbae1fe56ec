"""Prometheus metrics, declared once. The API serves them at /metrics; depths are read from
PostgreSQL at scrape time, so every API instance reports the same truth."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

TASKS_SUBMITTED = Counter(
    "tasks_submitted_total", "Tasks accepted by this API process", registry=REGISTRY
)
HTTP_PROBLEMS = Counter(
    "http_problems_total", "Problem responses by status and code", ["status", "code"],
    registry=REGISTRY,
)  # fmt: skip
QUEUE_DEPTH = Gauge(
    "task_queue_depth", "Tasks by queue, priority and status (all tenants)",
    ["queue", "priority", "status"], registry=REGISTRY,
)  # fmt: skip
DEAD_LETTER_DEPTH = Gauge("dead_letter_depth", "Failed tasks (all tenants)", registry=REGISTRY)


def set_depths(rows: Iterable[tuple[str, str, str, int]]) -> None:
    """(queue, priority, status, count) rows from the store replace the previous values."""
    QUEUE_DEPTH.clear()
    dead = 0
    for queue, priority, status, count in rows:
        if status == "failed":
            dead += count
        else:
            QUEUE_DEPTH.labels(queue, priority, status).set(count)
    DEAD_LETTER_DEPTH.set(dead)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
