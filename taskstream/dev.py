"""`taskstream dev`: everything on one machine in one command.

Starts private Redis and PostgreSQL (unless TASKSTREAM_REDIS_URL / TASKSTREAM_DATABASE_URL are
set), applies migrations, creates a `dev` tenant and key, then runs the API, the scheduler and a
worker with the bundled example tasks until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

from .core.config import Settings
from .core.errors import Conflict

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
    port = args.port if _port_free(args.port) else _free_port()
    try:
        from .runtime import run_async

        run_async(_serve(settings, port, args.app, progress))
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


async def _serve(
    settings: Settings, port: int, apps: list[str], progress: Callable[[str], None]
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
    worker = worker_service(settings, [EXAMPLES, *apps], None, 10)
    stop = asyncio.Event()
    url = f"http://127.0.0.1:{port}"

    async def announce(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.5)
        print(
            f"\ntaskstream is running\n"
            f"  API        {url}   (OpenAPI: {url}/schema)\n"
            f"  API key    {key}   (tenant 'dev', role admin)\n"
            f"  Redis      {settings.redis_url}\n"
            f"  PostgreSQL {settings.database_url}\n\n"
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
        [worker, scheduler_service(settings), api_service(settings, "127.0.0.1", port), announce],
        stop,
    )
