"""`taskstream dev`: everything on one machine in one command.

Starts private Redis and PostgreSQL (unless TASKSTREAM_REDIS_URL / TASKSTREAM_DATABASE_URL are
set; with `--redis-cluster`, a Redis Cluster of three masters in place of the Redis), applies
migrations, creates a `dev` tenant and key, then runs the API, the scheduler and a
worker with the bundled example tasks until Ctrl-C. The worker and the scheduler serve
/metrics on free ports, and a Prometheus configuration that scrapes all three with the alert
rules is written next to the data (`make prometheus` runs Debian's Prometheus with it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .core.config import Settings
from .core.errors import Conflict

if TYPE_CHECKING:
    from .devservers import LocalServices

EXAMPLES = "taskstream.examples.tasks"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_dev(settings: Settings, args: argparse.Namespace, progress: Callable[[str], None]) -> int:
    from .devservers import LocalServices

    services: LocalServices | None = None
    if not os.environ.get("TASKSTREAM_REDIS_URL") or not os.environ.get("TASKSTREAM_DATABASE_URL"):
        services = LocalServices(Path(args.data_dir).resolve() / "dev", progress=progress)
        services.start()
        settings = _with(
            settings,
            redis_url=os.environ.get("TASKSTREAM_REDIS_URL") or services.redis_url,
            database_url=os.environ.get("TASKSTREAM_DATABASE_URL") or services.database_url,
        )
    with contextlib.ExitStack() as cluster:
        if args.redis_cluster:
            from .devcluster import LocalCluster

            folder = Path(args.data_dir).resolve() / "dev-cluster"
            url = cluster.enter_context(LocalCluster(folder, progress=progress)).url
            settings = _with(settings, redis_url=url)
        return _run(settings, args, services, progress)


def _run(
    settings: Settings,
    args: argparse.Namespace,
    services: LocalServices | None,
    progress: Callable[[str], None],
) -> int:
    port = args.port if _port_free(args.port) else _free_port()
    if not settings.metrics_token:  # Prometheus reads every tenant's depths with it
        settings = _with(settings, metrics_token=secrets.token_urlsafe(24))
    try:
        from .runtime import run_async

        run_async(_serve(settings, port, args.app, Path(args.data_dir), progress))
    finally:
        if services is not None:
            progress("stopping Redis and PostgreSQL")
            services.stop()
    return 0


def _with(settings: Settings, **changes: str) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _write_prometheus(folder: Path, settings: Settings, url: str, ports: tuple[int, int]) -> str:
    """Writes the scrape configuration; returns where, relative to the working folder."""
    from .observability.scrape import RULES, scrape_config

    assert settings.metrics_token is not None
    path = folder.resolve() / "prometheus.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    rules = [RULES] if RULES.exists() else []
    text = scrape_config(url, settings.metrics_token, workers=[ports[0]], schedulers=[ports[1]],
                         rules=rules)  # fmt: skip
    path.touch(mode=0o600)  # it holds the metrics token
    path.write_text(text)
    return os.path.relpath(path)


async def _serve(
    settings: Settings, port: int, apps: list[str], data: Path, progress: Callable[[str], None]
) -> None:
    from .runtime import run_services
    from .services import api_service, scheduler_service, worker_service
    from .store.database import create_pool
    from .store.migrate import migrate
    from .store.tenants import TenantStore

    progress("applying migrations")
    await migrate(settings.database_url, progress=progress)
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        tenants = TenantStore(pool)
        with contextlib.suppress(Conflict):
            await tenants.create_tenant("dev")
        key = await tenants.create_key(await tenants.tenant_id("dev"), "admin")
    finally:
        await pool.close()
    metrics = (_free_port(), _free_port())  # the worker's, the scheduler's
    worker = worker_service(settings, [EXAMPLES, *apps], None, 10, metrics_port=metrics[0])
    stop = asyncio.Event()
    url = f"http://127.0.0.1:{port}"
    shown = _write_prometheus(data, settings, url, metrics)

    async def announce(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.5)
        print(
            f"\ntaskstream is running\n"
            f"  API        {url}   (OpenAPI: {url}/schema)\n"
            f"  API key    {key}   (tenant 'dev', role admin)\n"
            f"  Redis      {settings.redis_url}\n"
            f"  PostgreSQL {settings.database_url}\n"
            f"  Metrics    worker :{metrics[0]}/metrics, scheduler :{metrics[1]}/metrics; "
            f"`make prometheus` scrapes them with {shown} (alert rules "
            f"included)\n\n"
            f"Try it:\n"
            f"  curl -s -X POST {url}/v1/tasks -H 'Authorization: Bearer {key}' "
            f"-H 'Content-Type: application/json' "
            f'-d \'{{"type": "examples.echo", "payload": {{"message": "hello"}}}}\'\n'
            f"  curl -s {url}/v1/tasks -H 'Authorization: Bearer {key}'\n\n"
            f"Ctrl-C stops everything.\n",
            flush=True,
        )
        await stop.wait()

    await run_services(
        [
            worker,
            scheduler_service(settings, metrics_port=metrics[1]),
            api_service(settings, "127.0.0.1", port),
            announce,
        ],
        stop,
    )
