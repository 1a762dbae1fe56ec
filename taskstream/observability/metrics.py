"""Prometheus metrics, declared once. The API serves them at /metrics; depths are read from
PostgreSQL at scrape time, so every API instance reports the same truth. Workers and schedulers
serve theirs on --metrics-port (observability/exporter.py)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .stats import Family

REGISTRY = CollectorRegistry(auto_describe=True)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by `api --processes N` for its children

TASKS_SUBMITTED = Counter(
    "tasks_submitted_total", "Tasks accepted by this API process", registry=REGISTRY
)
HTTP_PROBLEMS = Counter(
    "http_problems_total", "Problem responses by status and code", ["status", "code"],
    registry=REGISTRY,
)  # fmt: skip
HTTP_REQUESTS = Counter(
    "http_requests_total", "Requests by route template, method and status",
    ["route", "method", "status"], registry=REGISTRY,
)  # fmt: skip
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "Time from a request's arrival to its last response byte",
    ["route", "method"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)  # fmt: skip


# The worker's and the scheduler's, kept by observability/stats.py (cheap on the hot path) and
# served on their --metrics-port (observability/exporter.py).
WORKER = {f.name: f for f in (
    Family("tasks_completed_total", "Attempts ended, by type, queue and what came of them: "
           "completed, retry (scheduled again) or failed", "counter", ("type", "queue", "status")),
    Family("task_retries_total", "Attempts that end in a retry", "counter", ("type", "queue")),
    Family("task_duration_seconds", "Handler run time of an attempt", "histogram", ("type",)),
    Family("task_pickup_latency_seconds", "From when a task was due (submitted, or its delay or "
           "backoff over) to the start of its attempt", "histogram", ("queue",)),
    Family("worker_slots", "Task slots of the worker processes, busy or free", "gauge",
           ("state",)),
    Family("worker_degraded", "Worker processes claiming from PostgreSQL because Redis is "
           "unavailable", "gauge"),
)}  # fmt: skip
SCHEDULER = {f.name: f for f in (
    Family("scheduler_lag_seconds", "How late the last cron fire ran after its time", "gauge"),
    Family("scheduler_leader", "1 while this scheduler holds the cron lease, else 0", "gauge"),
    Family("tasks_fired_total", "Tasks created by cron schedules", "counter"),
    Family("tasks_promoted_total", "Delayed and retried tasks made pending when due", "counter"),
)}  # fmt: skip


class _Depths:
    """This scrape's depths (read from PostgreSQL for whoever scrapes), never kept: a value
    kept between scrapes could show one tenant's queues to another tenant's admin. Labelled by
    tenant name: an admin key's scrape holds one tenant; the metrics token's every tenant (as
    many series as tenants x queues x 4 priorities x 3 states: a deployment with thousands of
    tenants scrapes with their admin keys, or sums the tenant away in a recording rule)."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str, int, float]]) -> None:
        self.rows = list(rows)

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "task_queue_depth", "Tasks by tenant, queue, priority and status",
            labels=("tenant", "queue", "priority", "status"),
        )  # fmt: skip
        dead = 0
        oldest: dict[tuple[str, str], float] = {}
        for tenant, queue, priority, status, count, age_s in self.rows:
            if status == "failed":
                dead += count
            else:
                depth.add_metric((tenant, queue, priority, status), count)
            if status == "pending":
                oldest[tenant, queue] = max(oldest.get((tenant, queue), 0.0), age_s or 0.0)
        yield depth
        age = GaugeMetricFamily(
            "task_oldest_pending_seconds", "How long the oldest pending task has been due",
            labels=("tenant", "queue"),
        )  # fmt: skip
        for key, seconds in oldest.items():
            age.add_metric(key, max(0.0, seconds))
        yield age
        yield GaugeMetricFamily("dead_letter_depth", "Failed tasks (the dead-letter queue)", dead)


# A breaker's state as a number: the worst of the tenants in a scrape's scope is served.
BREAKER_LEVELS = {"closed": 0, "half_open": 1, "open": 2}


class _Breakers:
    """This scrape's dependency breakers (read from Redis, like the depths never kept). Labelled
    by breaker name only: names come from handlers' code (``@task(..., breakers=...)``,
    ``ctx.breaker``), a set the deployment's developers bound, never from a request; tenants
    are summed (postponed) or their worst state taken, so series do not grow with tenants."""

    def __init__(self, rows: Iterable[tuple[str, str, int]]) -> None:
        self.rows = list(rows)

    def collect(self) -> Iterator[Metric]:
        worst: dict[str, int] = {}
        postponed: dict[str, int] = {}
        for name, state, count in self.rows:
            worst[name] = max(worst.get(name, 0), BREAKER_LEVELS.get(state, 0))
            postponed[name] = postponed.get(name, 0) + count
        gauge = GaugeMetricFamily(
            "breaker_state", "Dependency breakers: 0 closed, 1 half-open, 2 open (the worst "
            "over the tenants in scope)", labels=("breaker",),
        )  # fmt: skip
        total = CounterMetricFamily(
            "breaker_postponed", "Tasks postponed by an open breaker, no attempt spent (summed "
            "over the tenants in scope)", labels=("breaker",),
        )  # fmt: skip
        for name in sorted(worst):
            gauge.add_metric((name,), worst[name])
            total.add_metric((name,), postponed[name])
        yield gauge
        yield total


def breaker_exposition(rows: Iterable[tuple[str, str, int]]) -> bytes:
    """``breaker_state`` and ``breaker_postponed_total`` of (breaker, state, postponed) rows."""
    now = CollectorRegistry(auto_describe=False)
    now.register(_Breakers(rows))
    return generate_latest(now)


def exposition(depths: Iterable[tuple[str, str, str, str, int, float]]) -> bytes:
    """The API's metrics: its counters (every API process's, summed, under a supervisor that
    set ``PROMETHEUS_MULTIPROC_DIR``), then ``depths`` rows (tenant, queue, priority, status,
    count, oldest pending age)."""
    if os.environ.get(MULTIPROC_ENV):
        counters = CollectorRegistry()
        MultiProcessCollector(counters)  # type: ignore[no-untyped-call]
    else:
        counters = REGISTRY
    now = CollectorRegistry(auto_describe=False)
    now.register(_Depths(depths))
    return generate_latest(counters) + generate_latest(now)
