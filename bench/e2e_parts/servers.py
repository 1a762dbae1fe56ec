"""Redis and PostgreSQL: private ones by default (PostgreSQL with its stock, durable settings),
or the ones named in the environment with `--use-running`; and this run's own database and key
prefix on them, removed at the end."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from .console import BenchError, say

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PG_URL = "postgresql://127.0.0.1:5432/postgres"


def redact(url: str) -> str:
    """The URL without its password: the report may be shared."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


# The peer harness FLUSHes the Redis database it is given: never the one taskstream uses (0).
PEERS_REDIS_DB = 5


@dataclass(frozen=True)
class Servers:
    redis_url: str
    admin_pg_url: str  # used for CREATE/DROP DATABASE only
    private: bool

    @property
    def peers_redis_url(self) -> str:
        """The same Redis server, database PEERS_REDIS_DB (the peer harness flushes it)."""
        return urlunsplit(urlsplit(self.redis_url)._replace(path=f"/{PEERS_REDIS_DB}"))

    @property
    def peers_pg_dsn(self) -> str:
        """A role that can CREATE DATABASE and log in over 127.0.0.1: the admin URL."""
        return self.admin_pg_url


async def redis_reachable(url: str) -> bool:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def pg_reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except Exception:
        return False
    await conn.close()
    return True


@contextlib.asynccontextmanager
async def servers(use_running: bool, log_dir: Path | None = None) -> AsyncIterator[Servers]:
    """Private servers, or with `use_running` the ones named by BENCH_REDIS_URL / BENCH_PG_URL
    (private ones after all if either is down). A private PostgreSQL's server log is kept in
    `log_dir`/servers/ (checkpoints are logged: a latency outlier can be matched to one)."""
    if use_running:
        redis_url = os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL
        pg_url = os.environ.get("BENCH_PG_URL") or DEFAULT_PG_URL
        if await redis_reachable(redis_url) and await pg_reachable(pg_url):
            yield Servers(redis_url, pg_url, private=False)
            return
        say(f"{redact(redis_url)} or {redact(pg_url)} unreachable: starting private servers")
    async with private_servers(log_dir) as private:
        yield private


@contextlib.asynccontextmanager
async def private_servers(log_dir: Path | None = None) -> AsyncIterator[Servers]:
    """Redis without persistence and PostgreSQL with stock settings (fsync, synchronous_commit
    on), as the peers' baseline was measured: every task the API accepted is durable. Started
    from this (the main) thread, as their parent-death signal follows the starting thread."""
    # Imported only here: the module spawns servers and is not needed when they already run.
    from taskstream.devservers import (
        RunningServer,
        ServiceNotFound,
        start_postgres,
        start_redis,
    )

    data_dir = Path(tempfile.mkdtemp(prefix="taskstream-bench-"))
    # mkdtemp makes it private (0700). Run as root, PostgreSQL runs as another user and would
    # keep its cluster outside this folder, where our cleanup does not reach; let it in.
    data_dir.chmod(0o755)
    started: list[RunningServer] = []
    try:
        try:
            started.append(start_redis(data_dir, progress=say))
            started.append(start_postgres(data_dir, progress=say, durable=True))
        except (ServiceNotFound, RuntimeError) as exc:
            raise BenchError(f"cannot start private servers: {exc}") from exc
        yield Servers(started[0].url, started[1].url, private=True)
    finally:
        for server in reversed(started):  # PostgreSQL first, then Redis
            server.stop()
        if log_dir is not None:
            # A folder of its own: the run's log summary quotes every log_dir/*.log.
            with contextlib.suppress(OSError):
                (log_dir / "servers").mkdir(parents=True, exist_ok=True)
                shutil.copy(data_dir / "postgresql.log", log_dir / "servers" / "postgresql.log")
        shutil.rmtree(data_dir, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def is_local(url: str) -> bool:
    host = urlsplit(url).hostname or "localhost"  # no host: a Unix socket, so this machine
    if host == "localhost" or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Stores:
    """This run's database and Redis prefix; `clean()` removes both and says what it found."""

    servers: Servers
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def database(self) -> str:
        return f"ts_bench_{self.token}"

    @property
    def prefix(self) -> str:
        return f"tsbench-{self.token}"

    @property
    def database_url(self) -> str:
        return with_database(self.servers.admin_pg_url, self.database)

    async def clean(self) -> None:
        if self.result:
            return
        conn = await asyncpg.connect(self.servers.admin_pg_url, timeout=10)
        try:
            # FORCE: a backend left by a killed process must not keep the database alive.
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            left = await conn.fetchval(
                "SELECT count(*) FROM pg_database WHERE datname = $1", self.database
            )
        finally:
            await conn.close()
        deleted, remaining = await delete_keys(self.servers.redis_url, f"{self.prefix}:*")
        self.result = {
            "database_dropped": left == 0,
            "redis_keys_deleted": deleted,
            "redis_keys_left": remaining,
        }
        say(f"dropped database {self.database}; deleted {deleted} Redis keys {self.prefix}:*")


async def delete_keys(url: str, pattern: str) -> tuple[int, int]:
    client = aioredis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await client.unlink(*batch)
        remaining = sum([1 async for _ in client.scan_iter(match=pattern, count=1000)])
    finally:
        await client.aclose()
    return deleted, remaining
