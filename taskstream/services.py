"""Each process role as a Service (``run(stop)``), wired from Settings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from .broker.connection import connect
from .broker.keys import Keys
from .broker.producer import Producer
from .core.config import Settings
from .core.crypto import keyring
from .observability.exporter import export
from .observability.metrics import SCHEDULER
from .observability.stats import Stats
from .runtime import Service
from .scheduler.cron import LEADER_ROLE, Cron
from .scheduler.leader import Leader
from .scheduler.promoter import Promoter
from .scheduler.pruner import Pruner
from .store.database import create_pool
from .store.retention import RetentionStore
from .store.schedules import LeaseStore, ScheduleStore
from .store.tasks import TaskStore
from .store.tenants import TenantStore
from .worker.registry import load_apps
from .worker.runner import Worker


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns signals for every service."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def api_service(settings: Settings, host: str, port: int, *, reuse_port: bool = False) -> Service:
    from .api.app import create_app
    from .api.server import head_limited

    async def run(stop: asyncio.Event) -> None:
        config = uvicorn.Config(
            create_app(settings),
            # Request heads over the limit get 431 before they are buffered, and a bad request
            # target 400 before the app sees it (api/server.py).
            http=head_limited(settings.max_header_bytes),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            loop="none",
            # No proxy header rewriting (nothing here reads the client address) and no Date or
            # Server header: per-request work that buys nothing.
            proxy_headers=False,
            server_header=False,
            date_header=False,
        )
        server = _Server(config)
        sockets = [_reuse_port_socket(host, port)] if reuse_port else None
        serving = asyncio.create_task(server.serve(sockets=sockets))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopping.cancel()
        await serving
        if not server.started and not stop.is_set():
            raise SystemExit(f"API could not start on {host}:{port}")

    return run


def worker_service(
    settings: Settings,
    apps: list[str],
    queues: list[str] | None,
    concurrency: int,
    region: str | None = None,
    metrics_port: int | None = None,
) -> Service:
    registry = load_apps(apps)
    worker = Worker(
        settings, registry, queues=queues, concurrency=concurrency, region=region,
        metrics_port=metrics_port,
    )  # fmt: skip
    return worker.run


def scheduler_service(
    settings: Settings, holder: str | None = None, metrics_port: int | None = None
) -> Service:
    """Promoter, relay and rescuer (every instance) plus cron firing and retention (the
    elected leader)."""

    async def run(stop: asyncio.Event) -> None:
        pool = await create_pool(settings.database_url, min_size=1, max_size=4)
        redis = connect(settings.redis_url)
        try:
            tasks = TaskStore(
                pool,
                idempotency_ttl_s=settings.idempotency_ttl_s,
                keys=keyring(settings.encryption_keys),
            )
            producer = Producer(redis, Keys(settings.redis_prefix), TenantStore(pool).names)
            name = holder or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
            leader = Leader(LeaseStore(pool), LEADER_ROLE, name)
            cron = Cron(ScheduleStore(pool), tasks, producer, leader)
            promoter = Promoter(settings, tasks, producer)
            pruner = Pruner(settings, RetentionStore(pool), leader)

            def snapshot() -> dict[str, Any]:
                stats = Stats(SCHEDULER.values())
                stats.count("tasks_fired_total", (), cron.fired)
                stats.count("tasks_promoted_total", (), promoter.promoted)
                stats.set("scheduler_lag_seconds", (), cron.lag_s)
                stats.set("scheduler_leader", (), 1 if leader.is_leader else 0)
                return stats.snapshot()

            # One task group: if one loop fails the others stop before the pool closes.
            async with asyncio.TaskGroup() as loops:
                loops.create_task(promoter.run(stop), name="promote")
                loops.create_task(leader.run(stop), name="leader")
                loops.create_task(cron.run(stop), name="cron")
                loops.create_task(pruner.run(stop), name="retention")
                loops.create_task(export(metrics_port, SCHEDULER, snapshot, stop), name="metrics")
        finally:
            await redis.aclose()
            await pool.close()

    return run


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other API processes can bind too (``api --processes N``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise SystemExit(f"API could not bind {host}:{port}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock
