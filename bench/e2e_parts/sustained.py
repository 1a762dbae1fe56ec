"""Sustained end to end: tasks offered over HTTP at a steady rate while the worker runs, in
batches (``POST /v1/tasks/batch``) and as single ``POST /v1/tasks``.

The load is open loop: request i goes out at t0 + i * size / rate as its own asyncio task, spread
round-robin over a few keep-alive clients, so a slow answer delays nothing after it and the load
does not ease off when the service slows down. The service kept up if it completed (committed
in PostgreSQL) what was offered at the rate it was offered; latency is ``started_at -
created_at``, both PostgreSQL's clock.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from .clients import BatchOut, RawPoster, TaskRef
from .config import NOOP_TYPE
from .console import BenchError, Progress, say
from .cpu import cpu_delta
from .stack import Stack
from .stats import ms, quantile, range_stats, unfinished

# Completed rate / offered rate at or above which the service kept up. Not 1: the completed
# rate's span also holds the last tasks' pickup and run after the last submit. A service 5 %
# short of the offered rate ends a 20 s run with a second's backlog.
KEPT_UP = 0.95
ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


@dataclass
class Sent:
    status: int
    request_s: float
    late_s: float  # how far after its slot the request went out: the load generator's health
    ids: list[str] = field(default_factory=list)


async def send_one(poster: RawPoster, path: str, body: bytes, slot: float) -> Sent:
    # perf_counter, not loop.time(): uvloop's loop clock ticks in whole milliseconds.
    started = time.perf_counter()
    try:
        status, payload = await poster.post(path, body)
    except ERRORS:
        return Sent(0, time.perf_counter() - started, started - slot)
    sent = Sent(status, time.perf_counter() - started, started - slot)
    if status == 201 and path.endswith("/batch"):
        items = msgspec.json.decode(payload, type=BatchOut).items
        sent.ids = [i.task.id for i in items if i.status == 201 and i.task is not None]
    elif status == 201:
        sent.ids = [msgspec.json.decode(payload, type=TaskRef).id]
    return sent


async def offer(
    posters: list[RawPoster], size: int, rate: float, duration: float
) -> tuple[list[Sent], int]:
    """Open-loop requests of `size` tasks at `rate` tasks/s; returns (requests, tasks offered)."""
    interval = size / rate
    count = max(1, round(duration / interval))
    item = {"type": NOOP_TYPE, "payload": {}}
    path, body = (
        ("/v1/tasks/batch", msgspec.json.encode({"tasks": [item] * size}))
        if size > 1
        else ("/v1/tasks", msgspec.json.encode(item))
    )
    t0 = time.perf_counter() + 0.05
    inflight: list[asyncio.Task[Sent]] = []
    progress = Progress()
    for i in range(count):
        slot = t0 + i * interval
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        poster = posters[i % len(posters)]
        inflight.append(asyncio.create_task(send_one(poster, path, body, slot)))
        progress.maybe(f"offered {(i + 1) * size:,}/{count * size:,} tasks")
    sent = await asyncio.gather(*inflight)
    say(f"offered {count * size:,}/{count * size:,} tasks")
    return sent, count * size


async def phase_sustained(stack: Stack) -> dict[str, Any]:
    cfg = stack.cfg
    await stack.start_worker(cfg.workers)
    modes = [("batch", cfg.sustained_batch, cfg.sustained_rate)]
    if cfg.sustained_single_rate > 0:
        modes.append(("single", 1, cfg.sustained_single_rate))
    out: dict[str, Any] = {"duration_s": cfg.sustained_duration, "clients": cfg.sustained_clients}
    for mode, size, rate in modes:
        await stack.wait_idle(f"sustained {mode}")
        await asyncio.sleep(1)  # let the previous load's side work settle
        out[mode] = await sustained_once(stack, mode, size, rate)
    return out


async def sustained_once(stack: Stack, mode: str, size: int, rate: float) -> dict[str, Any]:
    cfg = stack.cfg
    say(
        f"sustained {mode}: {rate:,.0f} tasks/s for {cfg.sustained_duration:g} s, "
        f"{size} per request over {cfg.sustained_clients} clients"
    )
    probe = stack.probe()
    before = await probe.snapshot()
    posters = [RawPoster(stack.api_url, stack.api_key) for _ in range(cfg.sustained_clients)]
    try:
        sent, offered = await offer(posters, size, rate, cfg.sustained_duration)
    finally:
        for poster in posters:
            await poster.aclose()
    sent_done = time.perf_counter()
    ids = [i for s in sent for i in s.ids]
    if not ids:
        raise BenchError(f"sustained {mode}: no task accepted ({errors(sent)})")
    first, last = min(ids), max(ids)
    await wait_finished(stack, first, len(ids))
    drained_s = time.perf_counter() - sent_done
    cpu = cpu_delta(before, await probe.snapshot(), len(ids))
    stats = await range_stats(stack.pool, first, last)
    window = await window_rates(stack.pool, first, last)
    request_s = [s.request_s for s in sent]
    completed_rate = window["completed_rate"] or 0
    result = {
        "mode": mode,
        "tasks_per_request": size,
        "offered_rate": rate,
        "offered": offered,
        "accepted": len(ids),
        "http_errors": errors(sent),
        "connections_opened": sum(p.opened for p in posters),
        **window,
        "kept_up": len(ids) == offered and completed_rate >= KEPT_UP * rate,
        "drained_after_last_send_s": round(drained_s, 3),
        "http_p50_ms": ms(quantile(request_s, 0.5)),
        "http_p99_ms": ms(quantile(request_s, 0.99)),
        "http_max_ms": ms(max(request_s)),
        "send_late_p99_ms": ms(quantile([s.late_s for s in sent], 0.99)),
        "send_late_max_ms": ms(max(s.late_s for s in sent)),
        **stats,
        "cpu": cpu,
    }
    say(
        f"sustained {mode}: {completed_rate:,} tasks/s completed "
        f"({'kept up' if result['kept_up'] else 'fell behind'}), "
        f"submit -> start p99 {result['start_p99_ms']} ms"
    )
    return result


def errors(sent: list[Sent]) -> dict[str, int]:
    """Refused or failed requests by HTTP status (0: no answer)."""
    found: dict[str, int] = {}
    for s in sent:
        if not s.ids:
            found[str(s.status)] = found.get(str(s.status), 0) + 1
    return found


async def wait_finished(stack: Stack, first: str, total: int) -> None:
    started = time.perf_counter()
    progress = Progress()
    while left := await unfinished(stack.pool, stack.tenant_id, first):
        progress.maybe(f"backlog after the last send: {left:,} of {total:,} tasks")
        stack.cluster.check_alive()
        if time.perf_counter() - started > stack.cfg.timeout:
            raise BenchError(f"{left:,}/{total:,} tasks unfinished after {stack.cfg.timeout:.0f} s")
        await asyncio.sleep(0.1)


# From PostgreSQL's clock: the submit window is first to last `created_at`.
WINDOW_SQL = """
WITH t AS (SELECT created_at, finished_at, status FROM tasks
           WHERE id BETWEEN $1::uuid AND $2::uuid)
SELECT count(*) AS accepted,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'completed'
                          AND finished_at <= (SELECT max(created_at) FROM t)) AS in_window,
       extract(epoch FROM max(created_at) - min(created_at))::float8 AS submit_span,
       extract(epoch FROM max(finished_at) - min(created_at))::float8 AS total_span,
       extract(epoch FROM max(finished_at) - max(created_at))::float8 AS tail
FROM t
"""


async def window_rates(pool: asyncpg.Pool, first: str, last: str) -> dict[str, Any]:
    row = await pool.fetchrow(WINDOW_SQL, first, last)
    submit, total = row["submit_span"], row["total_span"]
    return {
        "submit_span_s": _r(submit),
        # Accepted tasks per second of the submit window: what the service was really offered.
        "accepted_rate": round(row["accepted"] / submit) if submit else None,
        # Completed from the first submit to the last completion: the sustained figure.
        "completed_rate": round(row["completed"] / total) if total else None,
        # Completed while submits were still arriving, per second of that window.
        "completed_in_window_rate": round(row["in_window"] / submit) if submit else None,
        "last_done_after_last_submit_s": _r(row["tail"]),
    }


def _r(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
