"""Phase: memory over a long run. N tasks (default 1,000,000) go through the running api and
worker(s); resident memory of every process is sampled from a warmed-up baseline to the end.

What it answers: does any process grow with the number of tasks it has handled (a cache
without a bound, per-task state never dropped, a stream never trimmed)? Target: RSS growth
<= 10 % per process from the baseline to the end.

How:

* Submits with ``POST /v1/tasks/batch`` (500 a batch, a few concurrent clients) and keeps at
  most ``max_backlog`` tasks submitted but not finished, so the measurement is about tasks
  handled, not about a queue held in memory (and PostgreSQL's table, not Redis, takes the
  backlog's weight).
* The backlog is read from PostgreSQL as pending + processing + scheduled rows, counted one
  status at a time so each count goes through that status's partial index and costs in
  proportion to the backlog, not to the table (which grows by N rows). Rows that were
  unfinished before the phase started are a baseline subtracted from every count.
* The baseline is taken after a warm-up (``warmup`` tasks, ~20k) has been drained: connection
  pools, statement caches, the catalog and the allocator's arenas are filled by then, so what
  grows later is growth, not start-up.
* RSS is VmRSS from ``/proc/<pid>/status`` of each process and all its descendants (a
  ``worker --processes`` supervisor counts with its children), sampled at the baseline, at
  every 10 % of N and after the drain. VmHWM (the peak) is reported at the end.
* Redis: ``INFO memory`` at the baseline and a few seconds after the drain (workers ack and
  delete entries after their outcome commits). With the run's key prefix (``redis_prefix`` or
  ``TASKSTREAM_REDIS_PREFIX``), each stream's length and its consumer group's pending count,
  which should both be 0 when every task is finished. The Redis server may be shared with
  other users: its memory figures include theirs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import redis.asyncio as aioredis

from .console import BenchError, say
from .cpu import proc_table, tree_sample

TASK_TYPE = "examples.noop"
TARGET_GROWTH_PCT = 10.0
STALL_S = 120.0  # no completion for this long while work is queued: the run is stuck
POLL_S = 0.5  # each poll counts the backlog: ~10 ms of PostgreSQL per 15k tasks queued

# One count per status: each goes through its partial index (tasks_pending_idx,
# tasks_lease_idx, tasks_due_idx), so a poll costs in proportion to the backlog.
BACKLOG_SQL = """
SELECT (SELECT count(*) FROM tasks WHERE status = 'pending')
     + (SELECT count(*) FROM tasks WHERE status = 'processing')
     + (SELECT count(*) FROM tasks WHERE status = 'scheduled')
"""
FINISHED_SQL = """
SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status IN ('failed', 'cancelled')) AS failed
FROM tasks
"""


def _no_check() -> None:
    """Default for `check_alive`: nothing to watch."""


# -- resident memory from /proc ----------------------------------------------------------------


def _status_kb(pid: int, field_name: str) -> int:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pids: dict[str, int], field_name: str = "VmRSS") -> dict[str, dict[str, Any]]:
    """Per role: the tree's total and each process's figure in kB."""
    table = proc_table()
    out: dict[str, dict[str, Any]] = {}
    for role, root in pids.items():
        per = {pid: _status_kb(pid, field_name) for pid in tree_sample(table, root)}
        out[role] = {"kb": sum(per.values()), "processes": {str(p): kb for p, kb in per.items()}}
    return out


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


# -- Redis ----------------------------------------------------------------------------------------


async def redis_memory(redis: aioredis.Redis) -> dict[str, int]:
    info = await redis.info("memory")
    return {k: int(info[k]) for k in ("used_memory", "used_memory_rss", "used_memory_peak")}


async def streams(redis: aioredis.Redis, prefix: str | None) -> dict[str, Any] | None:
    """Length and consumer-group pending count of every stream under the run's prefix."""
    if not prefix:
        return None
    found: dict[str, Any] = {}
    async for raw in redis.scan_iter(match=f"{prefix}:*", count=1000, _type="stream"):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        groups = await redis.xinfo_groups(key)
        found[key] = {
            "length": int(await redis.xlen(key)),
            "pending": sum(int(g["pending"]) for g in groups),
            # The stream's own footprint: unlike INFO memory, no other user's data in it.
            "bytes": int(await redis.memory_usage(key, samples=0) or 0),
        }
    return {
        "prefix": prefix,
        "streams": len(found),
        "entries": sum(s["length"] for s in found.values()),
        "pending": sum(s["pending"] for s in found.values()),
        "bytes": sum(s["bytes"] for s in found.values()),
        "by_key": found,
    }


# -- submitting under a bounded backlog -------------------------------------------------------


@dataclass
class Flow:
    """Shared by the submitters and the poller (one event loop thread: no locks needed)."""

    total: int
    max_backlog: int
    baseline_backlog: int
    submitted: int = 0
    claimed: int = 0  # batches handed to submitters, in tasks (submitted + in flight)
    backlog: int = 0  # latest poll: submitted but not finished
    finished: int = 0  # submitted - backlog, as of the latest poll
    polled_at: float = field(default_factory=time.perf_counter)


async def submit_all(
    clients: list[httpx.AsyncClient], flow: Flow, batch_size: int, body: dict[int, bytes]
) -> None:
    async def run(client: httpx.AsyncClient) -> None:
        while flow.claimed < flow.total:
            size = min(batch_size, flow.total - flow.claimed)
            # Wait while the backlog (as last polled, plus what is in flight) is at its bound.
            if flow.claimed - flow.finished + size > flow.max_backlog:
                await asyncio.sleep(POLL_S / 2)
                continue
            flow.claimed += size
            resp = await client.post("/v1/tasks/batch", content=body[size])
            if resp.status_code != 201:
                raise BenchError(f"batch submit: HTTP {resp.status_code} {resp.text[:300]}")
            created = resp.content.count(b'"status":201')
            if created != size:
                raise BenchError(f"batch submit: {created} of {size} items created")
            flow.submitted += size

    await asyncio.gather(*(run(c) for c in clients))


async def poll_backlog(pool: asyncpg.Pool, flow: Flow) -> None:
    flow.backlog = int(await pool.fetchval(BACKLOG_SQL)) - flow.baseline_backlog
    flow.finished = max(0, flow.submitted - flow.backlog)
    flow.polled_at = time.perf_counter()


async def push(
    label: str,
    n: int,
    clients: list[httpx.AsyncClient],
    pool: asyncpg.Pool,
    check_alive: Callable[[], None],
    *,
    batch_size: int,
    max_backlog: int,
    baseline_backlog: int,
    on_progress: Callable[[Flow], None] | None = None,
    report_every_s: float = 5.0,
) -> float:
    """Submit `n` tasks under the backlog bound and wait until all are finished. Returns the
    seconds it took. `on_progress` sees every poll (for RSS samples at given points)."""
    flow = Flow(n, max_backlog, baseline_backlog)
    item = {"type": TASK_TYPE, "payload": {}}
    sizes = {min(batch_size, n - i) for i in range(0, n, batch_size)}
    # Encoded once: the bench's CPU is taken from the same two cores as the services'.
    body = {s: msgspec.json.encode({"tasks": [item] * s}) for s in sizes}
    started = time.perf_counter()
    submitting = asyncio.create_task(submit_all(clients, flow, batch_size, body))
    shown_t, shown_done = started, 0  # the last progress line
    moved_t, moved_done = started, 0  # the last poll that saw tasks finish
    try:
        while True:
            await asyncio.sleep(POLL_S)
            if submitting.done():
                submitting.result()  # re-raises a submit failure
            await poll_backlog(pool, flow)
            check_alive()
            now = time.perf_counter()
            if on_progress is not None:
                on_progress(flow)
            if flow.submitted >= n and flow.backlog <= 0:
                break
            if flow.finished != moved_done:
                moved_t, moved_done = now, flow.finished
            elif now - moved_t > STALL_S and flow.backlog > 0:
                raise BenchError(
                    f"memory {label}: nothing finished for {STALL_S:.0f} s "
                    f"({flow.finished:,}/{n:,}, backlog {flow.backlog:,})"
                )
            if now - shown_t >= report_every_s:
                rate = (flow.finished - shown_done) / (now - shown_t)
                say(
                    f"memory {label}: {flow.finished:,}/{n:,} finished ({rate:,.0f}/s), "
                    f"backlog {flow.backlog:,}"
                )
                shown_t, shown_done = now, flow.finished
        await submitting
    finally:
        submitting.cancel()
    elapsed = time.perf_counter() - started
    say(f"memory {label}: {n:,} finished in {elapsed:.1f} s ({n / elapsed:,.0f}/s)")
    return elapsed


def _growth(before: int, after: int) -> float | None:
    return None if before <= 0 else round((after - before) / before * 100, 1)


async def phase_memory(
    api_url: str,
    api_key: str,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    pids: dict[str, int],
    n: int = 1_000_000,
    check_alive: Callable[[], None] = _no_check,
    *,
    redis_prefix: str | None = None,
    warmup: int | None = None,
    batch_size: int = 500,
    submitters: int = 4,
    max_backlog: int = 50_000,
    settle_s: float = 5.0,
) -> dict[str, Any]:
    """Push `n` tasks through the running stack and report each process's RSS growth from a
    warmed-up baseline, and Redis memory before and after. `pids`: role -> root pid."""
    warmup = warmup if warmup is not None else min(20_000, max(2_000, n // 5))
    prefix = redis_prefix or os.environ.get("TASKSTREAM_REDIS_PREFIX") or None
    clients = [
        httpx.AsyncClient(
            base_url=api_url,
            headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
            timeout=60,
            trust_env=False,  # no proxy from the environment between us and the API
        )
        for _ in range(submitters)
    ]
    try:
        baseline_backlog = int(await pool.fetchval(BACKLOG_SQL))
        say(f"memory: warm-up, {warmup:,} tasks")
        await push(
            "warm-up", warmup, clients, pool, check_alive,
            batch_size=batch_size, max_backlog=max_backlog, baseline_backlog=baseline_backlog,
        )  # fmt: skip
        await asyncio.sleep(settle_s)  # acks and deletes of the last entries land
        before = await pool.fetchrow(FINISHED_SQL)
        rss_before = rss_kb(pids)
        redis_before = await redis_memory(redis)
        streams_before = await streams(redis, prefix)
        samples: list[dict[str, Any]] = [
            {"finished": 0, "t_s": 0.0, "rss_mb": {r: _mb(v["kb"]) for r, v in rss_before.items()}}
        ]
        say(
            "memory: baseline RSS "
            + ", ".join(f"{r} {_mb(v['kb'])} MB" for r, v in rss_before.items())
            + f"; Redis used_memory {redis_before['used_memory'] / 2**20:.1f} MB"
        )
        t0 = time.perf_counter()
        step = max(1, n // 10)
        next_mark = [step]

        def sample(flow: Flow) -> None:
            if flow.finished < next_mark[0] or next_mark[0] >= n:
                return
            rss = rss_kb(pids)
            samples.append({
                "finished": flow.finished,
                "t_s": round(time.perf_counter() - t0, 1),
                "rss_mb": {r: _mb(v["kb"]) for r, v in rss.items()},
            })  # fmt: skip
            say(
                f"memory: RSS at {flow.finished:,}: "
                + ", ".join(f"{r} {_mb(v['kb'])} MB" for r, v in rss.items())
            )
            while next_mark[0] <= flow.finished:
                next_mark[0] += step

        say(f"memory: {n:,} tasks, backlog kept under {max_backlog:,}")
        elapsed = await push(
            "run", n, clients, pool, check_alive,
            batch_size=batch_size, max_backlog=max_backlog, baseline_backlog=baseline_backlog,
            on_progress=sample,
        )  # fmt: skip
        await asyncio.sleep(settle_s)
        rss_after = rss_kb(pids)
        peak = rss_kb(pids, "VmHWM")
        redis_after = await redis_memory(redis)
        streams_after = await streams(redis, prefix)
        after = await pool.fetchrow(FINISHED_SQL)
        samples.append({
            "finished": n,
            "t_s": round(time.perf_counter() - t0, 1),
            "rss_mb": {r: _mb(v["kb"]) for r, v in rss_after.items()},
        })  # fmt: skip
    finally:
        for client in clients:
            await client.aclose()
    completed = int(after["completed"]) - int(before["completed"])
    failed = int(after["failed"]) - int(before["failed"])
    processes: dict[str, Any] = {}
    for role in pids:
        b, a = rss_before[role]["kb"], rss_after[role]["kb"]
        highest = max(s["rss_mb"].get(role, 0.0) for s in samples)
        processes[role] = {
            "before_mb": _mb(b),
            "after_mb": _mb(a),
            "growth_pct": _growth(b, a),
            "max_sampled_mb": highest,
            "peak_vmhwm_mb": _mb(peak[role]["kb"]),
            "processes": len(rss_after[role]["processes"]),
            "met": (_growth(b, a) or 0.0) <= TARGET_GROWTH_PCT,
        }
    say(
        "memory: RSS growth "
        + ", ".join(f"{r} {p['growth_pct']} %" for r, p in processes.items())
        + f"; Redis used_memory {redis_before['used_memory'] / 2**20:.1f}"
        f" -> {redis_after['used_memory'] / 2**20:.1f} MB"
        + (
            f"; the run's streams: {streams_after['entries']:,} entries,"
            f" {streams_after['pending']:,} pending, {streams_after['bytes'] / 1024:.0f} KB"
            if streams_after
            else ""
        )
    )
    return {
        "tasks": n,
        "warmup_tasks": warmup,
        "completed": completed,
        "failed": failed,
        "run_s": round(elapsed, 1),
        "rate": round(n / elapsed),
        "max_backlog": max_backlog,
        "rss": processes,
        "samples": samples,
        "redis": {
            "before": redis_before,
            "after": redis_after,
            "used_memory_diff": redis_after["used_memory"] - redis_before["used_memory"],
            "streams_before": streams_before,
            "streams_after": streams_after,
            "shared_server_note": "INFO memory is the whole server's, other users included",
        },
        "target_growth_pct": TARGET_GROWTH_PCT,
        "met": all(p["met"] for p in processes.values()) and completed + failed >= n,
    }
