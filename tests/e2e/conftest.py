"""Drive the real `taskstream` CLI processes, as a user would."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from taskstream.core.config import Settings

APPS = Path(__file__).resolve().parents[1] / "apps"


class Cluster:
    """Processes started for one test; all are stopped (SIGTERM, then SIGKILL) at teardown."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.env = {
            **os.environ,
            "TASKSTREAM_DATABASE_URL": settings.database_url,
            "TASKSTREAM_REDIS_URL": settings.redis_url,
            "TASKSTREAM_REDIS_PREFIX": settings.redis_prefix,
            "TASKSTREAM_LOG_FORMAT": "json",
            "TASKSTREAM_PROMOTE_INTERVAL_S": "0.02",
            "TASKSTREAM_TENANT_RATE_LIMIT": str(settings.tenant_rate_limit),
            "TASKSTREAM_MIN_SCHEDULE_INTERVAL_S": str(settings.min_schedule_interval_s),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")])),
        }
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.api_url = ""
        self.api_proc: subprocess.Popen[bytes] | None = None

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout_s: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a CLI verb to its end, whatever its exit code (``env`` adds to the cluster's)."""
        return subprocess.run(
            [sys.executable, "-m", "taskstream", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def cli(self, *args: str) -> str:
        """Run a short CLI verb that must succeed; returns its stdout."""
        out = self.run(*args, timeout_s=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        name = "-".join(a for a in args if not a.startswith("-"))[:40].replace(".", "_")
        with open(self.logs / f"{name}-{len(self.procs)}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "taskstream", *args],
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def start_api(self, *extra: str, env: dict[str, str] | None = None) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.api_proc = self.start("api", "--port", str(port), *extra, env=env)
        self.api_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api_url}/readyz", timeout=1).status_code == 200:
                    return self.api_url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"API did not become ready; see {self.logs}")

    def stop(
        self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 20
    ) -> int:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        return proc.wait(timeout=timeout_s)

    def stop_signal(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        """Send a signal without waiting (SIGSTOP / SIGCONT)."""
        if proc.poll() is None:
            os.killpg(proc.pid, sig)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    self.stop(proc)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(settings, tmp_path)
    try:
        yield c
    finally:
        c.close()


def query(dsn: str, sql: str) -> list[Any]:
    """Run one SQL statement on its own connection (tests poll from plain threads)."""

    async def q() -> list[Any]:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(q())


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
