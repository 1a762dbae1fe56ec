"""One run on a prepared database: start the stack, wait for it, warm up, then both phases, each
under the CPU probe. Stopping and cleanup are the caller's exit stack."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import httpx
import msgspec
import redis.asyncio as aioredis

from .clients import JSON_HEADERS, HttpxPoster, RawPoster, TaskRef, api_ready, http_client
from .config import APP, TASK_TYPE, Config
from .console import BenchError, say
from .cpu import BENCH_APP_NAME, CpuProbe, cpu_delta, postgres_visible
from .environment import server_versions
from .latency import phase_latency
from .processes import Cluster, free_port, wait_for
from .servers import Stores
from .throughput import phase_throughput


async def start_cluster(cfg: Config, cluster: Cluster) -> tuple[str, str]:
    """Schema, tenant, key, then api + scheduler + worker. Returns (API URL, API key)."""
    say("migrating, creating tenant and key")
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "bench")
    out = cluster.cli("key", "create", "--tenant", "bench", "--role", "submitter")
    key = next((ln.strip() for ln in reversed(out.splitlines()) if ln.strip()), "")
    if not key:
        raise BenchError("`key create` printed no key")
    port = free_port()
    cluster.start("api", "api", "--port", str(port))
    cluster.start("scheduler", "scheduler")
    worker = ["worker", "--app", APP, "--concurrency", str(cfg.concurrency)]
    if cfg.workers > 1:
        worker += ["--processes", str(cfg.workers)]
    cluster.start("worker", *worker)
    return f"http://127.0.0.1:{port}", key


async def warm_up(client: httpx.AsyncClient, pool: asyncpg.Pool, cluster: Cluster) -> float:
    """One task through the whole path before measuring. The first submit to a queue creates its
    row and streams and the worker has to discover it: one-off costs, reported separately."""
    body = msgspec.json.encode({"type": TASK_TYPE, "payload": {}})
    started = time.perf_counter()
    task_id = ""

    async def submitted() -> bool:
        nonlocal task_id
        resp = await client.post("/v1/tasks", content=body, headers=JSON_HEADERS)
        if resp.status_code == 422 and b"unknown_task_type" in resp.content:
            return False  # the API's catalog has not seen the worker's registration yet
        if resp.status_code != 201:
            raise BenchError(f"warm-up submit: HTTP {resp.status_code} {resp.text[:500]}")
        task_id = msgspec.json.decode(resp.content, type=TaskRef).id
        return True

    async def completed() -> bool:
        status = await pool.fetchval("SELECT status FROM tasks WHERE id = $1::uuid", task_id)
        if status in ("failed", "cancelled"):
            raise BenchError(f"warm-up task ended {status}")
        return bool(status == "completed")

    await wait_for(submitted, "the API to accept the task type", 30, cluster)
    await wait_for(completed, "the warm-up task to complete", 30, cluster)
    return time.perf_counter() - started


async def measure(
    phase: Callable[[], Coroutine[Any, Any, dict[str, Any]]], probe: CpuProbe, tasks: int
) -> dict[str, Any]:
    before = await probe.snapshot()
    result = await phase()
    result["cpu"] = cpu_delta(before, await probe.snapshot(), tasks)
    return result


async def run_cluster(
    cfg: Config, stores: Stores, cluster: Cluster, stack: contextlib.AsyncExitStack
) -> dict[str, Any]:
    url, key = await start_cluster(cfg, cluster)
    pool = await asyncpg.create_pool(
        stores.database_url,
        min_size=2,
        max_size=2,
        server_settings={"application_name": BENCH_APP_NAME},
    )
    stack.push_async_callback(pool.close)
    redis = aioredis.Redis.from_url(stores.servers.redis_url)
    stack.push_async_callback(redis.aclose)
    clients = [http_client(url, key, 1) for _ in range(cfg.submitters)]
    single = http_client(url, key, 4)  # readiness and warm-up
    for c in [*clients, single]:
        stack.push_async_callback(c.aclose)
    poster = RawPoster(url, key) if cfg.http_client == "raw" else HttpxPoster(url, key)
    stack.push_async_callback(poster.aclose)

    ready_s = await wait_for(lambda: api_ready(single), "the API's /readyz", 60, cluster)

    async def types_registered() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM task_types"))

    await wait_for(types_registered, "the worker to register its task types", 60, cluster)
    warm_s = await warm_up(single, pool, cluster)
    say(f"API ready in {ready_s:.1f} s; warm-up task done in {warm_s * 1000:.0f} ms")
    roles = {r: cluster.pid(r) for r in ("api", "scheduler", "worker")}
    probe = CpuProbe(roles, redis, pool, await postgres_visible(pool, stores.database_url))

    throughput = await measure(lambda: phase_throughput(cfg, clients, pool, cluster), probe, cfg.n)
    await asyncio.sleep(1)  # let the last completions' side work settle before phase 2
    latency = await measure(
        lambda: phase_latency(cfg, poster, pool, cluster), probe, round(cfg.rate * cfg.duration)
    )
    versions = await server_versions(redis, pool)
    return {
        "api_ready_s": round(ready_s, 2),
        "warmup_task_s": round(warm_s, 3),
        "throughput": throughput,
        "latency": latency,
        "server_versions": versions,
    }
