"""What counting for /metrics costs per attempt and per request, measured directly (issue 14).

The paired drains of `make bench-instrumentation` compare whole deployments with
TASKSTREAM_METRICS off and on; on a shared machine their rounds swing by tens of percent, more
than the effect. This measures the effect itself, in one process, with nothing else in the loop:

* the worker's `Meter.started` + `Meter.ended` of one attempt (counting vs off);
* the API's outermost layer (`api/observe.Observe`) around one request whose app does nothing
  (counting vs off: the difference is the request counter and the duration histogram).

Divide by a task's CPU in the worker and a request's in the API (the drain table's "CPU
µs/task" rows) for the share: `.venv/bin/python bench/instrumentation_cost.py`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

from taskstream.api.observe import Observe
from taskstream.core.models import ClaimedTask, Finish, TaskStatus
from taskstream.worker.meter import Meter

ROUNDS = 7
ATTEMPTS = 200_000
REQUESTS = 100_000


def per_attempt_us(counting: bool) -> float:
    now = time.time()
    task = ClaimedTask(
        id=uuid.uuid4(), tenant_id=uuid.uuid4(), type="examples.noop", queue="default",
        payload_json="{}", attempt=1, max_attempts=3, timeout_s=10.0, lease_epoch=1,
        idempotency_key=None, correlation_id=None, created_unix=now, run_unix=now, lease_s=30.0,
    )  # fmt: skip
    finish = Finish(task_id=task.id, lease_epoch=1, status=TaskStatus.COMPLETED, duration_s=1e-3)
    meter = Meter(10, counting=counting)
    started = time.perf_counter()
    for _ in range(ATTEMPTS):
        meter.started(task)
        meter.ended(task, finish)
    return (time.perf_counter() - started) / ATTEMPTS * 1e6


async def per_request_us(counting: bool) -> float:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: Any) -> None:
        return None

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/tasks", "path_template": "/v1/tasks",
             "headers": [(b"host", b"bench")]}  # fmt: skip
    layer = Observe(app, counting=counting)
    started = time.perf_counter()
    for _ in range(REQUESTS):
        await layer(dict(scope), receive, send)
    return (time.perf_counter() - started) / REQUESTS * 1e6


def main() -> None:
    costs: dict[str, list[float]] = {"attempt": [], "request": []}
    for i in range(1, ROUNDS + 1):
        # Paired: on and off back to back, the order alternating.
        order = (True, False) if i % 2 else (False, True)
        attempt = {c: per_attempt_us(c) for c in order}
        request = {c: asyncio.run(per_request_us(c)) for c in order}
        costs["attempt"].append(attempt[True] - attempt[False])
        costs["request"].append(request[True] - request[False])
        print(
            f"[bench] round {i}/{ROUNDS}: attempt {attempt[True]:.2f} vs {attempt[False]:.2f} "
            f"us, request {request[True]:.2f} vs {request[False]:.2f} us (counting vs off)",
            flush=True,
        )
    for what, values in costs.items():
        print(f"counting costs {statistics.median(values):.2f} us per {what} (median of "
              f"{ROUNDS} paired rounds; {min(values):.2f}-{max(values):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
