"""`taskstream bench`: a load test against a running deployment, over its public API only.

Submits N tasks of a type (in batches) to a queue of their own, waits until that queue has
nothing pending, scheduled or processing, and reports submit and completion rates. Workers must
serve the queue (they read every queue unless started with --queues). Standard library only, so
it runs wherever taskstream is installed.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LoadTest:
    url: str
    key: str
    n: int
    batch: int
    task_type: str
    payload: dict[str, Any]
    timeout_s: float


class Api:
    def __init__(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                               timeout=60)  # fmt: skip
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request; past the tenant's rate limit (429) or backlog bound (503) it waits as
        long as ``Retry-After`` says and sends it again (nothing was written)."""
        data = None if body is None else json.dumps(body).encode()
        while True:
            self.conn.request(method, path, body=data, headers=self.headers)
            response = self.conn.getresponse()
            raw = response.read()
            retry_after = response.getheader("Retry-After")
            if response.status not in (429, 503) or retry_after is None:
                return response.status, json.loads(raw) if raw else None
            code = json.loads(raw).get("code") if raw else response.status
            _say(f"{method} {path}: {code}, retrying in {retry_after} s")
            time.sleep(float(retry_after))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _open_tasks(api: Api, queue: str) -> int:
    status, body = api.call("GET", "/v1/queues")
    if status != 200:
        raise SystemExit(f"GET /v1/queues answered {status}: {body}")
    for q in body["items"]:
        if q["queue"] == queue:
            return int(sum(q["pending"].values()) + q["scheduled"] + q["processing"])
    return 0


def run(test: LoadTest) -> dict[str, float]:
    api = Api(test.url, test.key)
    queue = f"bench-{os.urandom(3).hex()}"
    started = time.monotonic()
    sent = 0
    while sent < test.n:
        size = min(test.batch, test.n - sent)
        tasks = [{"type": test.task_type, "payload": test.payload, "queue": queue}] * size
        status, body = api.call("POST", "/v1/tasks/batch", {"tasks": tasks})
        if status != 201:
            raise SystemExit(f"POST /v1/tasks/batch answered {status}: {body}")
        sent += size
        _say(f"submitted {sent:,}/{test.n:,}")
    submitted = time.monotonic()
    while (left := _open_tasks(api, queue)) > 0:
        if time.monotonic() - started > test.timeout_s:
            raise SystemExit(f"{left:,} tasks still open after {test.timeout_s:.0f} s")
        _say(f"waiting: {left:,} open, {test.n - left:,} done")
        time.sleep(1.0)  # a poll a second: well inside the default rate limit
    done = time.monotonic()
    return {
        "tasks": test.n,
        "submit_rate_per_s": round(test.n / max(submitted - started, 1e-9), 1),
        "throughput_per_s": round(test.n / max(done - started, 1e-9), 1),
        "wall_s": round(done - started, 3),
    }


def main(url: str, key: str, n: int, batch: int, task_type: str, payload: str,
         timeout_s: float) -> int:  # fmt: skip
    result = run(LoadTest(url, key, n, batch, task_type, json.loads(payload), timeout_s))
    print(json.dumps({"queue_test": result}), flush=True)
    return 0
