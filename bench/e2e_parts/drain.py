"""Drain: N tasks pre-filled with no worker running, then a worker started and timed until
PostgreSQL shows every one completed.

This is the peers' "drain" measurement (`bench/peers/README.md`) done the taskstream way: the
pre-fill goes through the production path (``POST /v1/tasks/batch``: rows in PostgreSQL, ids in
Redis Streams), the worker starts only once every row is marked published, and a task counts as
done when its completion is committed, not when its handler ran. Rates come from PostgreSQL's
timestamps: `rate` from the first completion to the N-th, as the peers' `rate`, and
`rate_incl_startup` from the worker's spawn, as theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .clients import http_client
from .config import BODIES, body_keys
from .console import BenchError, Progress, say
from .cpu import cpu_delta
from .processes import wait_for
from .stack import Stack
from .stats import any_unfinished, range_stats, unfinished, unpublished
from .submit import batch_bodies, submit_batches

POLL_S = 0.25  # only ends the wait: the rates come from PostgreSQL's timestamps
PROGRESS_S = 2.0


@dataclass(frozen=True)
class Case:
    body: str  # a key of config.BODIES
    processes: int

    @property
    def name(self) -> str:
        return f"{self.body} {self.processes}p"


async def phase_drain(stack: Stack) -> dict[str, Any]:
    cfg = stack.cfg
    await stack.stop_worker()  # the queue must fill with nobody taking from it
    await register_types(stack)
    cases = [Case(b, w) for b in cfg.drain_bodies for w in cfg.drain_workers]
    names = ", ".join(c.name for c in cases)
    say(
        f"drain: {len(cases)} cases x {cfg.drain_reps} run(s) of {cfg.drain_n:,} pre-filled "
        f"tasks ({names})"
    )
    runs = []
    for case in cases:
        reps = []
        for rep in range(cfg.drain_reps):
            await stack.wait_idle(f"drain {case.name}")
            await stack.stop_worker()
            say(f"drain {case.name}: run {rep + 1}/{cfg.drain_reps}")
            reps.append(await drain_once(stack, case))
        runs.append(median_run(reps))
    return {"n": cfg.drain_n, "reps": cfg.drain_reps, "concurrency": cfg.concurrency, "runs": runs}


def median_run(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median steady rate (the lower middle one of an even count), carrying
    every run's rate: the peers' harness reports its median of three the same way."""
    ordered = sorted(reps, key=lambda r: r["rate"] or 0)
    return {**ordered[(len(ordered) - 1) // 2], "rep_rates": [r["rate"] for r in reps]}


async def register_types(stack: Stack) -> None:
    """The API accepts only types a worker has registered: run a worker once (it also warms the
    queue up), then stop it."""
    names = list(BODIES.values())
    known = await stack.pool.fetchval(
        "SELECT count(*) FROM task_types WHERE name = ANY($1::text[])", names
    )
    if known < len(names):
        await stack.start_worker(1)
        await stack.stop_worker()


async def drain_once(
    stack: Stack, case: Case, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One drain of `case`; `extra`: more fields in every peer payload (`submit.batch_bodies`)."""
    cfg, pool, n = stack.cfg, stack.pool, stack.cfg.drain_n
    task_type = BODIES[case.body]
    done_key, bits_key = body_keys(stack.stores.prefix)
    await stack.redis.delete(done_key, bits_key)
    say(f"drain {case.name}: pre-filling {n:,} {task_type} tasks, no worker running")
    probe = stack.probe()
    fill_before = await probe.snapshot()
    clients = [http_client(stack.api_url, stack.api_key, 1) for _ in range(cfg.submitters)]
    try:
        t0 = time.perf_counter()
        sub = await submit_batches(clients, batch_bodies(task_type, n, cfg.batch_size, extra), n)
    finally:
        for client in clients:
            await client.aclose()
    fill_s = sub.ended - t0
    fill_cpu = cpu_delta(fill_before, await probe.snapshot(), n)
    first, last = min(sub.ids), max(sub.ids)

    async def published() -> bool:
        return not await unpublished(pool, stack.tenant_id, first)

    publish_wait_s = await wait_for(published, "the pre-fill to be published", 60, stack.cluster)
    await settle(pool)
    await asyncio.sleep(0.5)  # as the peers do between pre-fill and worker start

    before = await probe.snapshot()
    spawned: datetime = await pool.fetchval("SELECT clock_timestamp()")
    proc = stack.spawn_worker(f"drain-{case.body}-{case.processes}p", case.processes)
    probe.roles["worker"] = proc.pid
    before = {"worker": {}, **before}  # the worker did not exist: all its CPU counts
    await wait_drained(stack, first, n)
    cpu = cpu_delta(before, await probe.snapshot(), n)
    await stack.stop_worker()
    stats = await range_stats(pool, first, last)
    timing = await drain_timing(pool, first, last, spawned, stats["completed"])
    result: dict[str, Any] = {
        "case": case.name,
        "task_type": task_type,
        "processes": case.processes,
        "n": n,
        "prefill_s": round(fill_s, 3),
        "prefill_rate": round(n / fill_s),
        "published_after_prefill_s": round(publish_wait_s, 3),
        # The peers' `rate`: (N - 1) intervals between the first and the N-th completion.
        "rate": stats["steady_rate"],
        **timing,
        **stats,
    }
    if case.body == "peer":  # read after the worker stopped: late duplicates would show
        result["executions"] = int(await stack.redis.get(done_key) or 0)
        result["unique"] = int(await stack.redis.bitcount(bits_key))
    result["prefill_cpu"] = fill_cpu
    result["cpu"] = cpu
    say(
        f"drain {case.name}: {result['rate'] or 0:,} tasks/s steady, "
        f"{result['rate_incl_startup'] or 0:,} incl. start-up ({result['startup_s']} s)"
    )
    return result


async def wait_drained(stack: Stack, first: str, n: int) -> None:
    """Until no task of the run is unfinished. The poll is a cheap existence check; the count
    behind the progress line runs only when a line is due (counting every poll cost PostgreSQL
    ~10 µs of CPU per drained task, on the machine the drain is measured on)."""
    started = time.perf_counter()
    progress = Progress(PROGRESS_S)
    last_t, last_left = started, n
    while await any_unfinished(stack.pool, stack.tenant_id, first):
        now = time.perf_counter()
        if progress.due():
            left = await unfinished(stack.pool, stack.tenant_id, first)
            say(f"completed {n - left:,}/{n:,} ({(last_left - left) / (now - last_t):,.0f}/s)")
            last_t, last_left = now, left
        stack.cluster.check_alive()
        if now - started > stack.cfg.timeout:
            left = await unfinished(stack.pool, stack.tenant_id, first)
            raise BenchError(f"{left:,}/{n:,} tasks unfinished after {stack.cfg.timeout:.0f} s")
        await asyncio.sleep(POLL_S)
    say(f"completed {n:,}/{n:,} in {time.perf_counter() - started:.1f} s")


TIMING_SQL = """
SELECT extract(epoch FROM min(started_at) - $3::timestamptz)::float8 AS first_start,
       extract(epoch FROM min(finished_at) - $3::timestamptz)::float8 AS first_done,
       extract(epoch FROM max(finished_at) - $3::timestamptz)::float8 AS last_done
FROM tasks WHERE id BETWEEN $1::uuid AND $2::uuid
"""


async def drain_timing(
    pool: asyncpg.Pool, first: str, last: str, spawned: datetime, completed: int
) -> dict[str, Any]:
    """Seconds from the worker's spawn (PostgreSQL's clock, like every timestamp compared)."""
    row = await pool.fetchrow(TIMING_SQL, first, last, spawned)
    wall = row["last_done"]
    return {
        "first_start_s": _r(row["first_start"]),
        "startup_s": _r(row["first_done"]),  # spawn -> first completion, as the peers' startup_s
        "wall_s": _r(wall),
        "rate_incl_startup": round(completed / wall) if wall else None,
    }


def _r(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


async def settle(pool: asyncpg.Pool) -> None:
    """Settle the table before the clock starts: vacuum what earlier runs left (the dead row
    versions of their 100,000 updates would otherwise be autovacuumed inside this drain and
    charged to it; the peers' harness gives every run a fresh database), then flush the
    pre-fill's dirty pages, so a checkpoint does not land inside the drain. CHECKPOINT needs a
    superuser (or pg_checkpoint); without one, it is skipped."""
    await pool.execute("VACUUM (ANALYZE) tasks, task_attempts")
    with contextlib.suppress(asyncpg.PostgresError):
        await pool.execute("CHECKPOINT")
