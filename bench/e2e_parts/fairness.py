"""Fairness (issue 12, item 6): does one tenant's backlog hold up the others, and does the drain
rate hold when the same work is spread over many tenants?

* skew: ten tenants. Run A: the nine light ones each send single ``POST /v1/tasks`` at a steady
  rate (open loop, their own keys) while the worker runs. Run B: the heavy tenant first gets a
  backlog (batches of 1,000, the worker running and draining it), then the same light load.
  Each light tenant's ``started_at - created_at`` p50/p99 in A and B; the target is B's p99
  within 2x of A's. The body sleeps so that the backlog keeps every worker slot busy for twice
  the light load's duration; the slots' use and the backlog left at the end of run B's window
  are measured, so a run whose worker was not saturated shows it.
* tenants: the same N tasks spread over 1, 100 and 1,000 tenants (one queue each), pre-filled
  with no worker, then a worker started and timed until PostgreSQL shows all completed, as the
  drain phase does; the target is drain(1,000) >= 0.80 x drain(1).

Each part, and each tenant count, runs on a deployment of its own (database, key prefix, API,
scheduler), removed afterwards, so one case's tenants and queues are never in another's worker.
Tenants and keys are made in this process through `TenantStore` (1,000 `taskstream tenant
create` processes would spend minutes starting interpreters).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from taskstream.store.database import create_pool
from taskstream.store.tenants import TenantLimits, TenantStore

from .clients import JSON_HEADERS, RawPoster, TaskRef, http_client
from .config import NOOP_TYPE, SLEEP_TYPE, Config
from .console import BenchError, Progress, say
from .cpu import cpu_delta
from .drain import drain_timing, median_run, register_types, settle
from .latency import Sent, send_one, wait_ids_done
from .processes import wait_for
from .servers import Servers
from .stack import Stack, deployment
from .stats import ms, quantile, range_stats
from .submit import accepted_ids

LIGHT_TENANTS = 9
PREFILL_BATCH = 1_000  # tasks per POST /v1/tasks/batch: the API's largest batch
LIMIT = 100_000_000  # rate limit (per minute) and max pending: on, but never the bound (stack.py)
# Run B counts as saturated if the backlog outlasted its window and at least this share of the
# slots was busy: a saturated worker claims once a quarter of its slots is free (REFILL_FRACTION
# in taskstream/worker/runner.py), so with work always waiting it sits between 75 and 100 %.
SATURATED_SLOTS = 0.75
POLL_S = 0.25
SETTLE_S = 3.0
PROGRESS_S = 2.0


@dataclass(frozen=True)
class Tenant:
    name: str
    id: str
    key: str


async def phase_fairness(cfg: Config, srv: Servers, log_dir: Path) -> dict[str, Any]:
    """Both parts; one that fails is recorded in ``errors`` and the other still runs."""
    out: dict[str, Any] = {"errors": {}}
    parts = {"skew": run_skew, "tenants": run_tenants}
    for name in cfg.fairness_parts:
        part = parts[name]
        try:
            out[name] = await part(cfg, srv, log_dir)
        except Exception as exc:
            say(f"fairness {name} failed: {type(exc).__name__}: {exc}")
            out["errors"][name] = f"{type(exc).__name__}: {exc}"
    return out


async def create_tenants(database_url: str, names: Sequence[str]) -> list[Tenant]:
    """Tenants (limits high, weight 1) and a submitter key each, in this process."""
    pool = await create_pool(database_url, min_size=1, max_size=4)
    store = TenantStore(pool)
    limits = TenantLimits(rate_limit=LIMIT, max_pending=LIMIT)
    progress = Progress(PROGRESS_S)
    made = 0

    async def one(name: str) -> Tenant:
        nonlocal made
        tenant_id = await store.create_tenant(name, limits)
        key = await store.create_key(tenant_id, "submitter")
        made += 1
        progress.maybe(f"tenants created {made:,}/{len(names):,}")
        return Tenant(name, str(tenant_id), key)

    try:
        return list(await asyncio.gather(*(one(n) for n in names)))
    finally:
        await pool.close()


@dataclass(frozen=True)
class Job:
    key: str
    size: int
    body: bytes


async def prefill(stack: Stack, jobs: Sequence[Job]) -> dict[str, Any]:
    """Every job's batch accepted, over `--submitters` keep-alive clients; each request carries
    its tenant's key. Returns the ids (smallest and largest) and the intake rate."""
    total, ids = sum(j.size for j in jobs), list[str]()
    todo: Iterator[Job] = iter(jobs)  # shared by the clients: one event loop, no lock needed
    progress = Progress(PROGRESS_S)
    clients = [http_client(stack.api_url, jobs[0].key, 1) for _ in range(stack.cfg.submitters)]

    async def run(client: httpx.AsyncClient) -> None:
        for job in todo:
            headers = {**JSON_HEADERS, "authorization": f"Bearer {job.key}"}
            resp = await client.post("/v1/tasks/batch", content=job.body, headers=headers)
            ids.extend(accepted_ids(resp))
            progress.maybe(f"submitted {len(ids):,}/{total:,}")

    started = time.perf_counter()
    try:
        await asyncio.gather(*(run(c) for c in clients))
    finally:
        for client in clients:
            await client.aclose()
    took = time.perf_counter() - started
    say(f"submitted {len(ids):,}/{total:,} in {took:.1f} s")
    return {"first": min(ids), "last": max(ids), "prefill_s": round(took, 3),
            "prefill_rate": round(total / took)}  # fmt: skip


def batches(key: str, item: dict[str, Any], count: int) -> list[Job]:
    """`count` tasks like `item` in batches of PREFILL_BATCH, the last one smaller; each size's
    body is encoded once (the load generator's CPU is the measured machine's too)."""
    sizes = [PREFILL_BATCH] * (count // PREFILL_BATCH)
    if count % PREFILL_BATCH:
        sizes.append(count % PREFILL_BATCH)
    bodies = {size: msgspec.json.encode({"tasks": [item] * size}) for size in set(sizes)}
    return [Job(key, size, bodies[size]) for size in sizes]


# -- skew ----------------------------------------------------------------------------------------


def skew_body_s(cfg: Config) -> float:
    """The sleep of each task: with every slot of the worker busy (concurrency x processes), the
    heavy backlog lasts twice the light load, so run B's whole window competes with it."""
    if cfg.fairness_body_ms is not None:
        return cfg.fairness_body_ms / 1000
    slots = cfg.concurrency * cfg.workers
    return round(2 * cfg.fairness_duration * slots / cfg.fairness_backlog, 3)


async def run_skew(cfg: Config, srv: Servers, log_dir: Path) -> dict[str, Any]:
    """`--fairness-reps` pairs of runs A and B, each pair on a fresh deployment; the pair with
    the median worst-tenant ratio is reported, with every pair's ratios (one pair's p99 moved
    from 1.2x to 14x between two runs on the shared 2-core machine)."""
    body_s = skew_body_s(cfg)
    item = {"type": SLEEP_TYPE, "payload": {"seconds": body_s}}
    light_rate = cfg.fairness_rate * LIGHT_TENANTS
    out: dict[str, Any] = {
        "reps": cfg.fairness_reps,
        "body": f"{SLEEP_TYPE} {body_s * 1000:g} ms",
        "body_s": body_s,
        "slots": cfg.concurrency * cfg.workers,
        "light_tenants": LIGHT_TENANTS,
        "rate_per_tenant": cfg.fairness_rate,
        "duration_s": cfg.fairness_duration,
        "backlog": cfg.fairness_backlog,
    }
    say(f"fairness skew: {LIGHT_TENANTS} light tenants x {cfg.fairness_rate:g}/s for "
        f"{cfg.fairness_duration:g} s; heavy backlog {cfg.fairness_backlog:,}; "
        f"body {out['body']}")  # fmt: skip
    if light_rate * body_s > 0.5 * out["slots"]:
        say("fairness skew: the light load alone fills over half the slots: A is no idle baseline")
    runs = []
    for i in range(1, cfg.fairness_reps + 1):
        say(f"fairness skew: pair {i}/{cfg.fairness_reps}")
        runs.append(await skew_pair(cfg, srv, log_dir / f"fairness-skew-{i}", item))
    ordered = sorted(runs, key=lambda r: r["p99_ratio_worst"] or 0.0)
    out.update(ordered[(len(ordered) - 1) // 2])  # the median pair (the lower middle of even)
    out["rep_ratios_worst"] = [r["p99_ratio_worst"] for r in runs]
    out["rep_ratios_pooled"] = [r["p99_ratio_pooled"] for r in runs]
    out["rep_saturated"] = [r["saturated"] for r in runs]
    out["runs"] = runs
    return out


async def skew_pair(
    cfg: Config, srv: Servers, folder: Path, item: dict[str, Any]
) -> dict[str, Any]:
    """Run A, then the heavy backlog and run B, on a deployment of its own."""
    out: dict[str, Any] = {}
    async with deployment(cfg, srv, folder, out) as stack:
        names = ["heavy", *(f"light-{i}" for i in range(1, LIGHT_TENANTS + 1))]
        heavy, *light = await create_tenants(stack.stores.database_url, names)
        await stack.start_worker(cfg.workers)
        await warm_tenants(stack, [heavy, *light], msgspec.json.encode(item))
        say("fairness skew: run A, no backlog")
        out["A"] = await light_run(stack, light, heavy, item)
        say(f"fairness skew: run B, pre-filling {cfg.fairness_backlog:,} heavy tasks")
        fill = await prefill(stack, batches(heavy.key, item, cfg.fairness_backlog))
        # As before a drain: the pre-fill's inserts vacuumed and flushed now, not by an
        # autovacuum or checkpoint inside run B's window (the worker drains on meanwhile), and
        # the writes right after a checkpoint (whole pages to the WAL) let pass.
        await settle(stack.pool)
        await asyncio.sleep(SETTLE_S)
        say("fairness skew: run B, the same light load over the backlog")
        out["B"] = {**await light_run(stack, light, heavy, item), "prefill": fill}
        await stack.stop_worker()  # the backlog goes with the deployment: no need to drain it
    out.update(skew_verdict(out["A"], out["B"]))
    return out


async def warm_tenants(stack: Stack, tenants: Sequence[Tenant], body: bytes) -> None:
    """One task per tenant through the whole path (its queue's row and streams made, and known
    to the worker) before anything is measured."""
    ids: list[str] = []
    for tenant in tenants:
        poster = RawPoster(stack.api_url, tenant.key)

        async def accepted(poster: RawPoster = poster) -> bool:
            status, payload = await poster.post("/v1/tasks", body)
            if status == 422 and b"unknown_task_type" in payload:
                return False  # the API's catalog has not seen the worker's types yet
            if status != 201:
                raise BenchError(f"warm-up submit: HTTP {status} {payload[:300]!r}")
            ids.append(msgspec.json.decode(payload, type=TaskRef).id)
            return True

        try:
            await wait_for(accepted, "the API to accept the task type", 30, stack.cluster)
        finally:
            await poster.aclose()
    await wait_ids_done(stack.pool, ids, 60, stack.cluster)
    await asyncio.sleep(1.5)  # past the worker's queue refresh (1 s): every stream is read


async def light_run(
    stack: Stack, light: Sequence[Tenant], heavy: Tenant, item: dict[str, Any]
) -> dict[str, Any]:
    cfg = stack.cfg
    posters = [RawPoster(stack.api_url, t.key) for t in light]
    probe = stack.probe()
    before = await probe.snapshot()
    try:
        sent = await paced(posters, msgspec.json.encode(item), cfg.fairness_rate,
                           cfg.fairness_duration)  # fmt: skip
        cpu = cpu_delta(before, await probe.snapshot(), len(sent))
    finally:
        for poster in posters:
            await poster.aclose()
    ids = [s.task_id for s in sent if s.task_id is not None]
    await wait_ids_done(stack.pool, ids, cfg.timeout, stack.cluster)
    errors: dict[str, int] = {}
    for s in sent:
        if s.task_id is None:
            errors[str(s.status)] = errors.get(str(s.status), 0) + 1
    names = {t.id: t.name for t in light}
    per_tenant = await tenant_latency(stack.pool, ids, names)
    pooled = per_tenant.pop("all")
    busy = await worker_busy(stack.pool, ids, heavy.id, cfg.concurrency * cfg.workers)
    pooled["p99_by_fifth_ms"] = await p99_by_fifth(stack.pool, ids)
    say(f"light tenants submit -> start p50 / p99: {pooled['p50_ms']} / {pooled['p99_ms']} ms; "
        f"worker slots busy {busy['slots_busy_pct']} %, heavy tasks waiting at the end "
        f"{busy['heavy_waiting_at_end']:,}")  # fmt: skip
    return {
        "sent": len(sent),
        "accepted": len(ids),
        "http_errors": errors,
        "send_late_p99_ms": ms(quantile([s.late_s for s in sent], 0.99)),
        "http_p99_ms": ms(quantile([s.request_s for s in sent], 0.99)),
        "tenants": per_tenant,
        "all": pooled,
        "worker": busy,
        "cpu": cpu,
    }


async def paced(
    posters: Sequence[RawPoster], body: bytes, rate_each: float, duration: float
) -> list[Sent]:
    """Open loop, as the pickup phase: request k goes to tenant k mod n at t0 + k / (n * rate),
    so each tenant sends at `rate_each`, evenly interleaved, and a slow answer delays nothing."""
    rate = rate_each * len(posters)
    count = round(rate * duration)
    t0 = time.perf_counter() + 0.05
    inflight: list[asyncio.Task[Sent]] = []
    progress = Progress(PROGRESS_S)
    for k in range(count):
        slot = t0 + k / rate
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        poster = posters[k % len(posters)]
        inflight.append(asyncio.create_task(send_one(poster, body, slot)))
        progress.maybe(f"sent {k + 1:,}/{count:,}")
    sent = list(await asyncio.gather(*inflight))
    say(f"sent {count:,}/{count:,}")
    return sent


# Per tenant, and (ROLLUP: tenant NULL) all of them pooled; PostgreSQL's clock on both ends.
TENANT_LATENCY_SQL = """
SELECT tenant_id::text AS tenant, count(*) AS n,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM started_at - created_at)::float8) AS q,
       max(extract(epoch FROM started_at - created_at)::float8) AS worst
FROM tasks WHERE id = ANY($1::uuid[]) GROUP BY ROLLUP (tenant_id)
"""


async def tenant_latency(
    pool: asyncpg.Pool, ids: list[str], names: dict[str, str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in await pool.fetch(TENANT_LATENCY_SQL, ids):
        q = row["q"] or [None, None]
        out[names[row["tenant"]] if row["tenant"] else "all"] = {
            "n": row["n"], "completed": row["completed"], "p50_ms": ms(q[0]),
            "p99_ms": ms(q[1]), "max_ms": ms(row["worst"]),
        }  # fmt: skip
    return dict(sorted(out.items(), key=lambda kv: (len(kv[0]), kv[0])))


# The pooled p99 over each fifth of the light load's window (by INSERT time): a tail from a
# start-up transient shows in the first fifth, a steady one in all five.
FIFTHS_SQL = """
WITH t AS (SELECT created_at, extract(epoch FROM started_at - created_at)::float8 AS wait
           FROM tasks WHERE id = ANY($1::uuid[])),
     w AS (SELECT min(created_at) AS w0,
                  greatest(extract(epoch FROM max(created_at) - min(created_at))::float8, 1e-6)
                      AS span
           FROM t)
SELECT least(width_bucket(extract(epoch FROM t.created_at - w.w0)::float8, 0, w.span, 5), 5)
           AS fifth,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY t.wait) AS p99
FROM t, w GROUP BY 1 ORDER BY 1
"""


async def p99_by_fifth(pool: asyncpg.Pool, ids: list[str]) -> list[float | None]:
    found = {r["fifth"]: r["p99"] for r in await pool.fetch(FIFTHS_SQL, ids)}
    return [ms(found.get(i)) for i in range(1, 6)]


# Over the light load's window (its first to last INSERT): the slot-seconds every task held
# (claim to outcome, clipped to the window), what started in it, and the heavy tenant's tasks not
# started by its end. A full scan of this deployment's table, once per run, after the load.
BUSY_SQL = """
WITH w AS (SELECT min(created_at) AS w0, max(created_at) AS w1
           FROM tasks WHERE id = ANY($1::uuid[]))
SELECT extract(epoch FROM w.w1 - w.w0)::float8 AS window_s,
       coalesce(sum(extract(epoch FROM least(coalesce(t.finished_at, w.w1), w.w1)
                                       - greatest(t.started_at, w.w0))::float8), 0) AS slot_s,
       count(*) FILTER (WHERE t.started_at >= w.w0) AS started,
       count(*) FILTER (WHERE t.started_at >= w.w0 AND t.tenant_id = $2::uuid) AS heavy_started,
       (SELECT count(*) FROM tasks h WHERE h.tenant_id = $2::uuid
          AND (h.started_at IS NULL OR h.started_at > w.w1)) AS heavy_waiting
FROM w JOIN tasks t ON t.started_at < w.w1 AND (t.finished_at IS NULL OR t.finished_at > w.w0)
GROUP BY w.w0, w.w1
"""


async def worker_busy(
    pool: asyncpg.Pool, ids: list[str], heavy_id: str, slots: int
) -> dict[str, Any]:
    row = await pool.fetchrow(BUSY_SQL, ids, heavy_id)
    if row is None or not row["window_s"]:
        return {"window_s": None, "slots_busy_pct": None, "started_rate": None,
                "heavy_started_rate": None, "heavy_waiting_at_end": 0}  # fmt: skip
    window = row["window_s"]
    return {
        "window_s": round(window, 3),
        "slots_busy_pct": round(100 * row["slot_s"] / (window * slots), 1),
        "started_rate": round(row["started"] / window),
        "heavy_started_rate": round(row["heavy_started"] / window),
        "heavy_waiting_at_end": row["heavy_waiting"],
    }


def skew_verdict(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """p99 of B / p99 of A per light tenant and pooled; the worst tenant is judged."""
    ratios = {}
    for name, x in a["tenants"].items():
        y = b["tenants"].get(name) or {}
        if x.get("p99_ms") and y.get("p99_ms") is not None:
            ratios[name] = round(y["p99_ms"] / x["p99_ms"], 2)
    pooled = (
        round(b["all"]["p99_ms"] / a["all"]["p99_ms"], 2)
        if a["all"].get("p99_ms") and b["all"].get("p99_ms") is not None
        else None
    )
    w = b["worker"]
    saturated = bool(
        w["slots_busy_pct"] is not None
        and w["slots_busy_pct"] >= SATURATED_SLOTS * 100
        and w["heavy_waiting_at_end"] > 0
    )
    if not saturated:
        say("fairness skew: the backlog did NOT saturate run B's worker: the ratio says little")
    return {
        "p99_ratio": ratios,
        "p99_ratio_pooled": pooled,
        "p99_ratio_worst": max(ratios.values()) if ratios else None,
        "saturated": saturated,
    }


# -- many tenants --------------------------------------------------------------------------------


async def run_tenants(cfg: Config, srv: Servers, log_dir: Path) -> dict[str, Any]:
    """All the tenant counts' deployments up at once, their drains interleaved round by round,
    the order reversed every other round (as the paired phase does): a machine drifting over the
    minutes touches every count alike (one count's three drains in a row moved 10,700-13,000
    tasks/s while the next count's came out lower than the one after it)."""
    n = cfg.fairness_n
    say(f"fairness tenants: {n:,} {NOOP_TYPE} tasks over "
        f"{', '.join(f'{k:,}' for k in cfg.fairness_tenants)} tenants, "
        f"{cfg.fairness_reps} drain(s) each")  # fmt: skip
    cases: list[dict[str, Any]] = [{"tenants": k, "n": n} for k in cfg.fairness_tenants]
    runs: dict[int, list[dict[str, Any]]] = {k: [] for k in cfg.fairness_tenants}
    async with contextlib.AsyncExitStack() as up:
        ready = []
        for case in cases:
            k = case["tenants"]
            folder = log_dir / f"fairness-{k}-tenants"
            stack = await up.enter_async_context(deployment(cfg, srv, folder, case))
            await register_types(stack)  # a worker once (types, warm-up), then stopped
            started = time.perf_counter()
            tenants = await create_tenants(
                stack.stores.database_url, [f"t{i:04d}" for i in range(k)]
            )
            case["create_tenants_s"] = round(time.perf_counter() - started, 2)
            say(f"created {k:,} tenant(s) and keys in {case['create_tenants_s']} s")
            ready.append((stack, tenants))
        for rnd in range(cfg.fairness_reps):
            say(f"fairness tenants: round {rnd + 1}/{cfg.fairness_reps}")
            for stack, tenants in ready if rnd % 2 == 0 else ready[::-1]:
                runs[len(tenants)].append(await drain_spread(stack, tenants, n))
    base = median_run(runs[cases[0]["tenants"]])["rate"]
    for case in cases:
        case.update(median_run(runs[case["tenants"]]))
        case["vs_fewest"] = round(case["rate"] / base, 2) if base and case["rate"] else None
    return {"n": n, "reps": cfg.fairness_reps, "body": NOOP_TYPE, "cases": cases}


def spread_jobs(tenants: Sequence[Tenant], n: int) -> list[Job]:
    """n tasks as evenly as they go (the first n mod k tenants one more), batches interleaved
    across tenants."""
    item = {"type": NOOP_TYPE, "payload": {}}
    k = len(tenants)
    per = [batches(t.key, item, n // k + (i < n % k)) for i, t in enumerate(tenants)]
    return [job for rnd in itertools.zip_longest(*per) for job in rnd if job is not None]


async def drain_spread(stack: Stack, tenants: Sequence[Tenant], n: int) -> dict[str, Any]:
    await stack.stop_worker()
    fill = await prefill(stack, spread_jobs(tenants, n))
    await wait_for(lambda: none_unpublished(stack.pool), "the pre-fill to be published", 60,
                   stack.cluster)  # fmt: skip
    await settle(stack.pool)
    await asyncio.sleep(0.5)  # as the drain phase and the peers do
    probe = stack.probe()
    before = await probe.snapshot()
    spawned: datetime = await stack.pool.fetchval("SELECT clock_timestamp()")
    proc = stack.spawn_worker(f"drain-{len(tenants)}t", stack.cfg.workers)
    probe.roles["worker"] = proc.pid
    before = {"worker": {}, **before}  # the worker did not exist: all its CPU counts
    await wait_all_done(stack, n)
    cpu = cpu_delta(before, await probe.snapshot(), n)
    await stack.stop_worker()
    stats = await range_stats(stack.pool, fill["first"], fill["last"])
    timing = await drain_timing(stack.pool, fill["first"], fill["last"], spawned,
                                stats["completed"])  # fmt: skip
    say(f"drain over {len(tenants):,} tenant(s): {stats['steady_rate'] or 0:,} tasks/s steady")
    return {"rate": stats["steady_rate"], "prefill_rate": fill["prefill_rate"], **timing,
            **stats, "cpu": cpu}  # fmt: skip


# The deployment holds only this case's tasks, so "nothing left" is database-wide; each status
# through its own partial index (tasks_pending_idx, tasks_lease_idx, tasks_due_idx), so the
# poll stays cheap while the drain is measured.
LEFT_SQL = """
SELECT (SELECT count(*) FROM tasks WHERE status = 'pending')
     + (SELECT count(*) FROM tasks WHERE status = 'processing')
     + (SELECT count(*) FROM tasks WHERE status = 'scheduled')
"""
ANY_LEFT_SQL = """
SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'pending')
    OR EXISTS (SELECT 1 FROM tasks WHERE status = 'processing')
    OR EXISTS (SELECT 1 FROM tasks WHERE status = 'scheduled')
"""


async def none_unpublished(pool: asyncpg.Pool) -> bool:
    return not await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'pending' AND published_at IS NULL)"
    )


async def wait_all_done(stack: Stack, n: int) -> None:
    started = time.perf_counter()
    progress = Progress(PROGRESS_S)
    while await stack.pool.fetchval(ANY_LEFT_SQL):
        if progress.due():
            say(f"completed {n - await stack.pool.fetchval(LEFT_SQL):,}/{n:,}")
        stack.cluster.check_alive()
        if time.perf_counter() - started > stack.cfg.timeout:
            left = await stack.pool.fetchval(LEFT_SQL)
            raise BenchError(f"{left:,}/{n:,} tasks unfinished after {stack.cfg.timeout:.0f} s")
        await asyncio.sleep(POLL_S)
    say(f"completed {n:,}/{n:,} in {time.perf_counter() - started:.1f} s")
