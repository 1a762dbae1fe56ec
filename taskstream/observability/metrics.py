"""Prometheus metrics, declared once. The API serves them at /metrics; depths are read from
PostgreSQL at scrape time, so every API instance reports the same truth."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
HTTP_REQUESTS = Counter(
    "http_requests_total", "Requests by route template, method and status",
    ["route", "method", "status"], registry=REGISTRY,
)  # fmt: skip
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "Time from a request's arrival to its last response byte",
    ["route", "method"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)  # fmt: skip


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
