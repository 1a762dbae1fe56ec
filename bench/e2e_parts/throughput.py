"""Phase 1: N tasks submitted in batches by concurrent clients while the worker runs, timed
until PostgreSQL shows every one terminal."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import msgspec

from .clients import JSON_HEADERS, BatchOut
from .config import TASK_TYPE, Config
from .console import BenchError, Progress, say
from .processes import Cluster
from .stats import count_done, ms, quantile, task_stats

POLL_S = 0.05  # completion polling period (the resolution of the end-to-end throughput)


@dataclass
class Submitted:
    ids: list[str] = field(default_factory=list)
    request_s: list[float] = field(default_factory=list)
    ended: float = 0.0


async def submit_batches(
    clients: list[httpx.AsyncClient], total: int, batch_size: int
) -> Submitted:
    sizes = [min(batch_size, total - i) for i in range(0, total, batch_size)]
    item = {"type": TASK_TYPE, "payload": {}}
    # Encoded once per size: the load generator's CPU belongs to the measured machine too.
    bodies = {size: msgspec.json.encode({"tasks": [item] * size}) for size in set(sizes)}
    pending = iter(sizes)  # shared by the clients; one event loop thread, so no lock is needed
    out = Submitted()
    progress = Progress()

    async def run(client: httpx.AsyncClient) -> None:
        for size in pending:
            sent = time.perf_counter()
            resp = await client.post("/v1/tasks/batch", content=bodies[size], headers=JSON_HEADERS)
            out.request_s.append(time.perf_counter() - sent)
            if resp.status_code != 201:
                raise BenchError(f"batch submit: HTTP {resp.status_code} {resp.text[:500]}")
            items = msgspec.json.decode(resp.content, type=BatchOut).items
            refused = [i for i in items if i.status != 201 or i.task is None]
            if refused:
                raise BenchError(f"{len(refused)} batch items refused, e.g. {refused[0]}")
            out.ids.extend(i.task.id for i in items if i.task is not None)
            progress.maybe(f"submitted {len(out.ids):,}/{total:,}")

    await asyncio.gather(*(run(c) for c in clients))
    out.ended = time.perf_counter()
    say(f"submitted {len(out.ids):,}/{total:,}")
    return out


async def wait_all_done(
    pool: asyncpg.Pool,
    baseline: tuple[int, int],
    total: int,
    timeout_s: float,
    cluster: Cluster,
    done_at: dict[str, int],
) -> float:
    """Poll PostgreSQL until `total` more tasks are terminal; returns the perf_counter time.
    `done_at["now"]` always holds the latest completed count, for the submitter to sample."""
    started = time.perf_counter()
    progress = Progress()
    last_t, last_done = started, 0
    while True:
        completed, failed = await count_done(pool)
        now = time.perf_counter()
        done, bad = completed - baseline[0], failed - baseline[1]
        done_at["now"] = done
        if done + bad >= total:
            say(f"completed {done:,}/{total:,}" + (f", {bad:,} failed" if bad else ""))
            return now
        if progress.due():
            rate = (done - last_done) / (now - last_t)
            say(f"completed {done:,}/{total:,} ({rate:,.0f}/s)")
            last_t, last_done = now, done
        cluster.check_alive()
        if now - started > timeout_s:
            raise BenchError(f"only {done:,}/{total:,} tasks completed after {timeout_s:.0f} s")
        await asyncio.sleep(POLL_S)


async def phase_throughput(
    cfg: Config, clients: list[httpx.AsyncClient], pool: asyncpg.Pool, cluster: Cluster
) -> dict[str, Any]:
    say(f"phase 1: {cfg.n:,} tasks in batches of {cfg.batch_size} from {len(clients)} clients")
    baseline = await count_done(pool)
    done_at: dict[str, int] = {"now": 0}
    t0 = time.perf_counter()
    submit = asyncio.create_task(submit_batches(clients, cfg.n, cfg.batch_size))
    waiter = asyncio.create_task(
        wait_all_done(pool, baseline, cfg.n, cfg.timeout, cluster, done_at)
    )
    # Sampled the moment the last batch is accepted: how far the worker lags the submitters.
    at_submit_end: list[int] = []
    submit.add_done_callback(lambda _: at_submit_end.append(done_at["now"]))
    try:
        # Either side failing (an HTTP error, a dead process, the timeout) ends the phase now.
        done, _ = await asyncio.wait({submit, waiter}, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # re-raises the failure, if that is why the wait ended
        sub, t_done = submit.result(), waiter.result()
    finally:
        submit.cancel()
        waiter.cancel()
    completed_at_submit_end = at_submit_end[0]
    stats = await task_stats(pool, sub.ids)
    submit_s = sub.ended - t0
    total_s = t_done - t0
    return {
        "tasks": cfg.n,
        "submit_s": round(submit_s, 3),
        "submit_rate": round(cfg.n / submit_s),
        "batch_request_p50_ms": ms(quantile(sub.request_s, 0.5)),
        "batch_request_max_ms": ms(max(sub.request_s)),
        "completed_when_submit_ended": completed_at_submit_end,
        "total_s": round(total_s, 3),
        "e2e_throughput": round(cfg.n / total_s),
        **stats,
    }
