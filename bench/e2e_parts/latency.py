"""Phase 2: single submits at a steady rate (open loop), judged by pickup latency in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from .clients import Poster, RawPoster, TaskRef
from .config import TASK_TYPE, Config
from .console import Progress, say
from .processes import Cluster, wait_for
from .stats import ms, quantile, task_stats


@dataclass
class Sent:
    task_id: str | None
    status: int
    request_s: float
    late_s: float  # how far after its slot the request went out: the load generator's health


async def send_one(
    poster: Poster, body: bytes, slot: float, loop: asyncio.AbstractEventLoop
) -> Sent:
    started = loop.time()
    try:
        status, payload = await poster.post("/v1/tasks", body)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return Sent(None, 0, loop.time() - started, started - slot)
    elapsed = loop.time() - started
    task_id = msgspec.json.decode(payload, type=TaskRef).id if status == 201 else None
    return Sent(task_id, status, elapsed, started - slot)


async def paced_submit(poster: Poster, rate: float, duration: float) -> list[Sent]:
    """Send i goes out at t0 + i/rate as its own task, so a slow response delays nothing after
    it (an open-loop load: the rate does not fall when the service slows down)."""
    loop = asyncio.get_running_loop()
    count = round(rate * duration)
    body = msgspec.json.encode({"type": TASK_TYPE, "payload": {}})
    t0 = loop.time() + 0.05
    inflight: list[asyncio.Task[Sent]] = []
    progress = Progress()
    for i in range(count):
        slot = t0 + i / rate
        delay = slot - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        inflight.append(asyncio.create_task(send_one(poster, body, slot, loop)))
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


async def phase_latency(
    cfg: Config, poster: Poster, pool: asyncpg.Pool, cluster: Cluster
) -> dict[str, Any]:
    say(f"phase 2: single submits at {cfg.rate:g}/s for {cfg.duration:g} s ({cfg.http_client})")
    sent = await paced_submit(poster, cfg.rate, cfg.duration)
    sent_done = time.perf_counter()
    ids = [s.task_id for s in sent if s.task_id is not None]
    await wait_ids_done(pool, ids, cfg.timeout, cluster)
    drained_s = time.perf_counter() - sent_done
    errors: dict[str, int] = {}
    for s in sent:
        if s.task_id is None:
            errors[str(s.status)] = errors.get(str(s.status), 0) + 1
    request_s = [s.request_s for s in sent]
    stats = await task_stats(pool, ids)
    return {
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
    }
