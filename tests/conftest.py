"""Shared fixtures: real Redis and PostgreSQL, isolated per test.

Servers: TASKSTREAM_TEST_REDIS_URL / TASKSTREAM_TEST_DATABASE_URL (defaults: the standard local
ports). When either is unreachable, private servers are started for the session
(taskstream.devservers), so a fresh machine needs no setup beyond the packages.

Isolation: each test gets its own database (a copy of a migrated template) and its own Redis key
prefix; both are removed afterwards.

Redis Cluster: a test module marked ``pytest.mark.cluster_too`` runs each of its tests twice, on
the single Redis and on a private cluster of three masters started once for the session
(taskstream.devcluster, from the same redis-server).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
import redis

from taskstream.broker.connection import connect_blocking
from taskstream.core.config import Settings
from taskstream.devcluster import LocalCluster
from taskstream.devservers import ServiceNotFound
from taskstream.store.migrate import migrate

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_PG = "postgresql://127.0.0.1:5432/postgres"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _redis_ok(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def _pg_ok(url: str) -> bool:
    async def probe() -> bool:
        conn = await asyncpg.connect(url, timeout=2)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
                )
            )
        finally:
            await conn.close()

    try:
        return asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(redis url, admin PostgreSQL url) of servers the tests may use."""
    redis_url = os.environ.get("TASKSTREAM_TEST_REDIS_URL", DEFAULT_REDIS)
    pg_url = os.environ.get("TASKSTREAM_TEST_DATABASE_URL", DEFAULT_PG)
    if _redis_ok(redis_url) and _pg_ok(pg_url):
        yield redis_url, pg_url
        return
    from taskstream.devservers import LocalServices

    local = LocalServices(Path(tmp_path_factory.mktemp("servers")))
    local.start()
    try:
        yield local.redis_url, with_database(local.database_url, "postgres")
    finally:
        local.stop()


async def _admin(pg_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_db(servers: tuple[str, str]) -> Iterator[str]:
    """A migrated database that each test's database is copied from."""
    _, pg_url = servers
    name = f"ts_tpl_{uuid.uuid4().hex[:10]}"
    asyncio.run(migrate(with_database(pg_url, name)))
    yield name
    asyncio.run(_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A private Redis Cluster of three masters for the session (skipped, saying why, where
    redis-server or redis-cli is missing: Debian's redis-server package brings both)."""
    cluster = LocalCluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        cluster.start()
    except ServiceNotFound as exc:
        cluster.stop()
        pytest.skip(f"no Redis Cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "cluster_too"
    ):
        metafunc.parametrize("redis_backend", ["redis", "cluster"], indirect=True)


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> str:
    """``redis`` (one server) unless the module is marked ``cluster_too``."""
    return str(getattr(request, "param", "redis"))


def _delete_prefixed(url: str, prefix: str) -> None:
    client = connect_blocking(url)
    try:
        for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
            client.delete(key)  # one by one: on a cluster the keys live in many slots
    finally:
        client.close()


@pytest.fixture
def settings(
    servers: tuple[str, str], template_db: str, redis_backend: str, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    """Settings pointing at this test's own database and Redis key prefix."""
    redis_url, pg_url = servers
    if redis_backend == "cluster":
        redis_url = request.getfixturevalue("redis_cluster").url
    tag = uuid.uuid4().hex[:10]
    name = f"ts_t_{tag}"
    asyncio.run(_admin(pg_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    prefix = f"tst{tag}"
    yield msgspec.structs.replace(
        Settings(),
        redis_url=redis_url,
        database_url=with_database(pg_url, name),
        redis_prefix=prefix,
        log_format="console",
        promote_interval_s=0.02,
        publish_grace_s=0.5,
        shutdown_grace_s=5.0,
        # Tests send hundreds of requests a minute and fire schedules every second; the tests
        # of these limits set their own.
        tenant_rate_limit=1_000_000,
        min_schedule_interval_s=1.0,
    )
    asyncio.run(_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    _delete_prefixed(redis_url, prefix)
