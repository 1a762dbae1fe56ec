"""The private Redis and PostgreSQL of taskstream.devservers: start, answer, stop, leave nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis

from taskstream.devservers import LocalServices

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    """Running (a zombie, left for an init that may never reap it, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _group(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (a server and, for PostgreSQL, its backends)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as s:
        return s.connect_ex((parts.hostname or "", parts.port or 0)) == 0


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := [p for p in pids if _alive(p) or _group(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


async def _pg(url: str, *sql: str) -> list[object]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return [await conn.fetchval(q) for q in sql]
    finally:
        await conn.close()


@pytest.mark.timeout(120)
def test_both_servers_answer_then_stop_cleanly(tmp_path: Path) -> None:
    lines: list[str] = []
    services = LocalServices(tmp_path, progress=lines.append)
    with services:
        client = redis.Redis.from_url(services.redis_url)
        try:
            assert client.ping() is True
        finally:
            client.close()
        found = asyncio.run(
            _pg(
                services.database_url,
                "SELECT 1",
                "SELECT count(*) FROM pg_database WHERE datname = 'taskstream'",
                "SELECT current_database()",
            )
        )
        assert found == [1, 1, "taskstream"]
        assert any(line.startswith("PostgreSQL ready on 127.0.0.1:") for line in lines)
    assert services.redis is not None
    assert services.postgres is not None
    for server in (services.redis, services.postgres):
        assert server.process.returncode is not None
        assert not _port_open(server.url)
        assert _group(server.process.pid) == []
    services.stop()  # idempotent


@pytest.mark.timeout(120)
def test_a_second_start_reuses_the_cluster(tmp_path: Path) -> None:
    first: list[str] = []
    with LocalServices(tmp_path, progress=first.append) as services:
        asyncio.run(_pg(services.database_url, "CREATE TABLE kept (x int)"))
    second: list[str] = []
    with LocalServices(tmp_path, progress=second.append) as services:
        (count,) = asyncio.run(
            _pg(services.database_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'")
        )
    assert any("initdb" in line for line in first)
    assert not any("initdb" in line for line in second), second
    assert count == 1


CHILD = """
import sys, time
from pathlib import Path
from taskstream.devservers import LocalServices

services = LocalServices(Path(sys.argv[1]), progress=lambda line: None).start()
assert services.redis and services.postgres
print(services.redis.process.pid, services.postgres.process.pid, flush=True)
print(services.redis_url, services.database_url, flush=True)
time.sleep(300)
"""


@pytest.mark.timeout(120)
def test_servers_die_with_a_killed_parent(tmp_path: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        urls = parent.stdout.readline().split()
        assert len(pids) == 2, "the child did not start the servers"
        assert all(_alive(p) for p in pids)
        parent.send_signal(signal.SIGKILL)  # no atexit, no finally: only the kernel can help
        parent.wait()
        assert _wait_gone(pids, 10.0) == []
        assert not any(_port_open(url) for url in urls)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout and parent.stdout.close()
