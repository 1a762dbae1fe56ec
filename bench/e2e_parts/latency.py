"""Pickup latency: single submits at a steady rate (open loop) while the worker is idle enough to
take each at once, judged by ``started_at - created_at`` in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from .clients import HttpxPoster, Poster, RawPoster, TaskRef
from .config import NOOP_TYPE
from .console import Progress, say
from .cpu import cpu_delta
from .processes import Cluster, wait_for
from .stack import Stack
from .stats import ms, quantile, task_stats


@dataclass
class Sent:
    task_id: str | None
    status: int
    request_s: float
    late_s: float  # how far after its slot the request went out: the load generator's health


async def send_one(poster: Poster, body: bytes, slot: float) -> Sent:
    # perf_counter, not loop.time(): uvloop's loop clock ticks in whole milliseconds.
    started = time.perf_counter()
    try:
        status, payload = await poster.post("/v1/tasks", body)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return Sent(None, 0, time.perf_counter() - started, started - slot)
    elapsed = time.perf_counter() - started
    task_id = msgspec.json.decode(payload, type=TaskRef).id if status == 201 else None
    return Sent(task_id, status, elapsed, started - slot)


async def paced_submit(poster: Poster, rate: float, duration: float) -> list[Sent]:
    """Send i goes out at t0 + i/rate as its own task, so a slow response delays nothing after
    it (an open-loop load: the rate does not fall when the service slows down)."""
    count = round(rate * duration)
    body = msgspec.json.encode({"type": NOOP_TYPE, "payload": {}})
    t0 = time.perf_counter() + 0.05
    inflight: list[asyncio.Task[Sent]] = []
    progress = Progress()
    for i in range(count):
        slot = t0 + i / rate
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        inflight.append(asyncio.create_task(send_one(poster, body, slot)))
        progress.maybe(f"sent {i + 1:,}/{count:,}")
    sent = await asyncio.gather(*inflight)
    say(f"sent {count:,}/{count:,}")
    return sent


async def wait_ids_done(
    pool: asyncpg.Pool, ids: list[str], timeout_s: float, cluster: Cluster
) -> None:
    progress = Progress()

    async def check() -> bool:
        done = await pool.fetchval(
            "SELECT count(*) FROM tasks WHERE id = ANY($1::uuid[])"
            " AND status IN ('completed', 'failed', 'cancelled')",
            ids,
        )
        progress.maybe(f"completed {done:,}/{len(ids):,}")
        return bool(done >= len(ids))

    await wait_for(check, f"{len(ids):,} tasks to complete", timeout_s, cluster)


async def phase_pickup(stack: Stack) -> dict[str, Any]:
    cfg = stack.cfg
    await stack.start_worker(cfg.workers)
    await stack.wait_idle("pickup")
    await asyncio.sleep(1)  # let the previous load's side work settle
    say(f"pickup: single submits at {cfg.rate:g}/s for {cfg.duration:g} s ({cfg.http_client})")
    poster: Poster = (
        RawPoster(stack.api_url, stack.api_key)
        if cfg.http_client == "raw"
        else HttpxPoster(stack.api_url, stack.api_key)
    )
    probe = stack.probe()
    before = await probe.snapshot()
    try:
        sent = await paced_submit(poster, cfg.rate, cfg.duration)
    finally:
        await poster.aclose()
    sent_done = time.perf_counter()
    ids = [s.task_id for s in sent if s.task_id is not None]
    await wait_ids_done(stack.pool, ids, cfg.timeout, stack.cluster)
    drained_s = time.perf_counter() - sent_done
    cpu = cpu_delta(before, await probe.snapshot(), len(sent))
    errors: dict[str, int] = {}
    for s in sent:
        if s.task_id is None:
            errors[str(s.status)] = errors.get(str(s.status), 0) + 1
    request_s = [s.request_s for s in sent]
    stats = await task_stats(stack.pool, ids)
    say(f"pickup p50/p95/p99: {stats['start_p50_ms']} / {stats['start_p95_ms']} / "
        f"{stats['start_p99_ms']} ms")  # fmt: skip
    return {
        "rate": cfg.rate,
        "duration_s": cfg.duration,
        "http_client": cfg.http_client,
        "sent": len(sent),
        "connections_opened": poster.opened if isinstance(poster, RawPoster) else None,
        "accepted": len(ids),
        "http_errors": errors,
        "http_p50_ms": ms(quantile(request_s, 0.5)),
        "http_p99_ms": ms(quantile(request_s, 0.99)),
        "http_max_ms": ms(max(request_s)),
        "send_late_p99_ms": ms(quantile([s.late_s for s in sent], 0.99)),
        "send_late_max_ms": ms(max(s.late_s for s in sent)),
        "drained_after_last_send_s": round(drained_s, 3),
        **stats,
        "cpu": cpu,
    }
