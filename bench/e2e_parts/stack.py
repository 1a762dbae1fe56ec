"""The running deployment every phase works against: the API and scheduler (up for the whole
run), this run's tenant and key, the bench's own database clients, and the worker, which phases
start and stop (the drain starts its own after the queue is full; the HTTP phase measures the
API alone). `deployment` makes one of its own, for the phases that compare deployments
(fairness, lifecycle)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import redis.asyncio as aioredis

from .clients import JSON_HEADERS, TaskRef, api_ready, http_client
from .config import APPS, NOOP_TYPE, PEER_EMAIL, PEER_TYPE, Config
from .console import BenchError, say
from .cpu import BENCH_APP_NAME, CpuProbe, postgres_visible
from .processes import Cluster, Proc, free_port, log_summary, process_env, wait_for
from .servers import Servers, Stores
from .stats import unfinished


@dataclass
class Stack:
    cfg: Config
    stores: Stores
    cluster: Cluster
    pool: asyncpg.Pool
    redis: aioredis.Redis  # taskstream's Redis server (INFO cpu, INFO memory, body counters)
    http: httpx.AsyncClient  # set-up, warm-up and readiness requests
    api_url: str
    api_key: str
    tenant_id: str
    postgres_visible: bool  # whether PostgreSQL's processes can be measured from /proc
    api_ready_s: float
    worker: Proc | None = None
    warmup_task_s: float | None = None  # the first worker's one task through the whole path

    def worker_argv(self, processes: int) -> list[str]:
        argv = ["worker", "--concurrency", str(self.cfg.concurrency)]
        for app in APPS:
            argv += ["--app", app]
        if processes > 1:
            argv += ["--processes", str(processes)]
        return argv

    def spawn_worker(self, role: str, processes: int) -> Proc:
        """Start a worker and return at once: the drain measures its start-up."""
        if self.worker is not None:
            raise BenchError(f"a worker ({self.worker.role}) is already running")
        self.worker = self.cluster.start(role, *self.worker_argv(processes))
        return self.worker

    async def start_worker(self, processes: int) -> None:
        """Start the worker the measuring phases run against and wait until every process of it
        takes tasks. Idempotent."""
        if self.worker is not None:
            return
        spawned = await self.pool.fetchval("SELECT clock_timestamp()")
        proc = self.spawn_worker("worker", processes)
        say(f"started {proc.role}: {processes} process(es) x concurrency {self.cfg.concurrency}")
        await wait_for(
            lambda: self._workers_seen(spawned, processes), "the worker to start", 60, self.cluster
        )
        took = await warm_up(self)
        if self.warmup_task_s is None:
            self.warmup_task_s = took

    async def _workers_seen(self, since: datetime, processes: int) -> bool:
        # A worker process adds its row once its types are registered and its queues known.
        seen = await self.pool.fetchval(
            "SELECT count(*) FROM workers WHERE started_at >= $1", since
        )
        return bool(seen >= processes)

    async def stop_worker(self) -> None:
        if self.worker is not None:
            proc, self.worker = self.worker, None
            stopped = await self.cluster.stop(proc)
            say(f"stopped {proc.role} in {stopped['stop_s']} s")

    async def wait_idle(self, what: str) -> float:
        """Wait until the tenant has no unfinished task (a backlog from an earlier phase)."""
        started = time.perf_counter()
        if await unfinished(self.pool, self.tenant_id):
            await self.start_worker(self.cfg.workers)

            async def idle() -> bool:
                return not await unfinished(self.pool, self.tenant_id)

            await wait_for(
                idle, f"the backlog before {what} to drain", self.cfg.timeout, self.cluster
            )
        return time.perf_counter() - started

    def probe(self) -> CpuProbe:
        roles = {p.role: p.pid for p in self.cluster.procs if p.role in ("api", "scheduler")}
        if self.worker is not None:
            roles["worker"] = self.worker.pid
        return CpuProbe(roles, self.redis, self.pool, self.postgres_visible)

    def pids(self) -> dict[str, int]:
        """role -> pid of the api and the worker (the worker's supervisor with --processes)."""
        found = {"api": self.cluster.pid("api")}
        if self.worker is not None:
            found["worker"] = self.worker.pid
        return found


BENCH_LIMITS = ("--rate-limit", "100000000", "--max-pending", "100000000")


async def start_stack(
    cfg: Config, stores: Stores, cluster: Cluster, exits: contextlib.AsyncExitStack
) -> Stack:
    """Schema, tenant, key, then api + scheduler, and the bench's clients (closed by `exits`)."""
    say("migrating, creating tenant and key")
    cluster.cli("migrate")
    # The limits stay on (every request takes a token, every submit passes the backlog bound),
    # set high enough that the phases measure the queue, not the limits.
    created = cluster.cli("tenant", "create", "bench", *BENCH_LIMITS)
    tenant_id = _last_line(created, "`tenant create`")
    # submitter: may submit and read (GET /v1/tasks/{id}, lists), as the phases do.
    key = _last_line(
        cluster.cli("key", "create", "--tenant", "bench", "--role", "submitter"), "`key create`"
    )
    port = free_port()
    cluster.start("api", "api", "--port", str(port), "--processes", str(cfg.api_processes))
    cluster.start("scheduler", "scheduler")
    url = f"http://127.0.0.1:{port}"
    pool = await asyncpg.create_pool(
        stores.database_url,
        min_size=2,
        max_size=2,
        server_settings={"application_name": BENCH_APP_NAME},
    )
    exits.push_async_callback(pool.close)
    redis = aioredis.Redis.from_url(stores.servers.redis_url)
    exits.push_async_callback(redis.aclose)
    http = http_client(url, key, 4)
    exits.push_async_callback(http.aclose)
    ready_s = await wait_for(lambda: api_ready(http), "the API's /readyz", 60, cluster)
    say(f"API ready in {ready_s:.1f} s")
    visible = await postgres_visible(pool, stores.database_url)
    return Stack(
        cfg, stores, cluster, pool, redis, http, url, key, tenant_id, visible, round(ready_s, 2)
    )


@contextlib.asynccontextmanager
async def deployment(
    cfg: Config,
    srv: Servers,
    folder: Path,
    record: dict[str, Any],
    env: Mapping[str, str | None] | None = None,
) -> AsyncIterator[Stack]:
    """A database, key prefix, API and scheduler of its own, stopped and removed on the way out
    (as the main run's: processes first, then the database and keys); `record` gets what the
    shutdown found and what the services logged; their logs go to `folder`. `env` sets (or, for
    None, removes) variables of every process it starts: the settings a phase compares."""
    folder.mkdir(parents=True, exist_ok=True)
    stores = Stores(srv)
    base = process_env(stores)
    for name, value in (env or {}).items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    cluster = Cluster(base, folder)
    try:
        async with contextlib.AsyncExitStack() as exits:
            exits.push_async_callback(stores.clean)
            exits.push_async_callback(cluster.stop_all)
            yield await start_stack(cfg, stores, cluster, exits)
    finally:
        logged = {k: v for k, v in log_summary(folder).items() if v["sample"]}
        record["shutdown"] = {"processes": cluster.stopped, "cleanup": stores.result,
                              "logs": str(folder), "logged": logged}  # fmt: skip


def _last_line(out: str, what: str) -> str:
    line = next((ln.strip() for ln in reversed(out.splitlines()) if ln.strip()), "")
    if not line:
        raise BenchError(f"{what} printed nothing")
    return line


async def warm_up(stack: Stack) -> float:
    """One task of each type through the whole path before measuring. The first submit to a
    queue creates its row and streams, the API learns the worker's task types, and the worker
    opens its connections: one-off costs, reported separately and kept out of the phases."""
    started = time.perf_counter()
    for body in ({"type": NOOP_TYPE, "payload": {}},
                 {"type": PEER_TYPE, "payload": {"n": 0, "to": PEER_EMAIL}}):  # fmt: skip
        await _one_task(stack, msgspec.json.encode(body))
    took = time.perf_counter() - started
    say(f"warm-up tasks done in {took * 1000:.0f} ms")
    return took


async def _one_task(stack: Stack, body: bytes) -> None:
    task_id = ""

    async def submitted() -> bool:
        nonlocal task_id
        resp = await stack.http.post("/v1/tasks", content=body, headers=JSON_HEADERS)
        if resp.status_code == 422 and b"unknown_task_type" in resp.content:
            return False  # the API's catalog has not seen the worker's registration yet
        if resp.status_code != 201:
            raise BenchError(f"warm-up submit: HTTP {resp.status_code} {resp.text[:500]}")
        task_id = msgspec.json.decode(resp.content, type=TaskRef).id
        return True

    async def completed() -> bool:
        status = await stack.pool.fetchval("SELECT status FROM tasks WHERE id = $1::uuid", task_id)
        if status in ("failed", "cancelled"):
            raise BenchError(f"warm-up task ended {status}: see the worker's log")
        return bool(status == "completed")

    await wait_for(submitted, "the API to accept the task type", 30, stack.cluster)
    await wait_for(completed, "the warm-up task to complete", 30, stack.cluster)
