"""The `taskstream` processes of one run: started as a user would, logged, and always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import BODY_PREFIX_ENV, BODY_REDIS_URL_ENV
from .console import BenchError
from .servers import Stores

STOP_GRACE_S = 15.0
BENCH_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Proc:
    role: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


class Cluster:
    """The `taskstream` processes of one run, started as a user would: `python -m taskstream`.

    Each gets its own session, so a signal to its process group reaches any children too
    (`worker --processes N` spawns N)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[Proc] = []
        self.stopped: dict[str, dict[str, Any]] = {}

    def cli(self, *args: str) -> str:
        """Run a short verb to completion; returns stdout. Blocking is fine: nothing else runs."""
        out = subprocess.run(
            [sys.executable, "-m", "taskstream", *args],
            env=self.env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        name = "-".join(a for a in args[:2] if not a.startswith("-"))
        (self.log_dir / f"cli-{name}.log").write_bytes(out.stderr)
        if out.returncode != 0:
            raise BenchError(f"taskstream {' '.join(args)} failed: {out.stderr.decode()[-2000:]}")
        return out.stdout.decode()

    def start(self, role: str, *args: str) -> Proc:
        """Start a verb; `role` names it in the report and its log, made unique if needed
        (a worker restarted between phases gets `worker.2`)."""
        taken = {p.role for p in self.procs}
        name, n = role, 1
        while name in taken:
            n += 1
            name = f"{role}.{n}"
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, "-m", "taskstream", *args],
                env=self.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def pid(self, role: str) -> int:
        return next(p.popen.pid for p in self.procs if p.role == role)

    def check_alive(self) -> None:
        """Raise if a process the run did not stop itself has exited."""
        for proc in self.procs:
            code = proc.popen.poll()
            if code is not None and proc.role not in self.stopped:
                raise BenchError(f"{proc.role} exited with {code}:\n{tail(proc.log)}")

    async def stop(self, proc: Proc) -> dict[str, Any]:
        """Stop one process (a worker between phases), as `stop_all` does."""
        await self._stop([proc])
        return self.stopped[proc.role]

    async def stop_all(self) -> dict[str, dict[str, Any]]:
        """SIGTERM every group, SIGKILL what is left after STOP_GRACE_S. Idempotent."""
        await self._stop(self.procs)
        return self.stopped

    async def _stop(self, procs: list[Proc]) -> None:
        running = [p for p in procs if p.role not in self.stopped]
        started = time.monotonic()
        for proc in running:
            _signal_group(proc.popen.pid, signal.SIGTERM)
        while any(p.popen.poll() is None for p in running):
            if time.monotonic() - started > STOP_GRACE_S:
                break
            await asyncio.sleep(0.05)
        for proc in running:
            killed = proc.popen.poll() is None
            if killed:
                _signal_group(proc.popen.pid, signal.SIGKILL)
            code = proc.popen.wait()
            # Children (worker --processes) may outlive their parent: the group must be empty.
            orphans = _signal_group(proc.popen.pid, signal.SIGKILL)
            self.stopped[proc.role] = {
                "exit_code": code,
                "stop_s": round(time.monotonic() - started, 2),
                "sigkilled": killed,
                "orphans_killed": orphans,
            }


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False if it has no members left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


async def wait_for(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float, cluster: Cluster
) -> float:
    """Poll `check` until it holds; a process that died meanwhile ends the wait with its log."""
    started = time.perf_counter()
    while not await check():
        cluster.check_alive()
        if time.perf_counter() - started > timeout_s:
            raise BenchError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(stores: Stores) -> dict[str, str]:
    env = dict(os.environ)
    # bench/ on the path: workers load the peer body as `--app e2e_parts.benchapp`.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
    env.update(
        TASKSTREAM_DATABASE_URL=stores.database_url,
        TASKSTREAM_REDIS_URL=stores.servers.redis_url,
        TASKSTREAM_REDIS_PREFIX=stores.prefix,
        TASKSTREAM_LOG_LEVEL="warning",
    )
    env[BODY_REDIS_URL_ENV] = stores.servers.redis_url
    env[BODY_PREFIX_ENV] = stores.prefix
    return env


def log_summary(log_dir: Path, sample: int = 5) -> dict[str, dict[str, Any]]:
    """Lines every service logged (the level is `warning`, so any line is worth a look). Short
    CLI verbs (`cli-*`) print progress by design: counted, not quoted."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(log_dir.glob("*.log")):
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        quoted = [] if path.stem.startswith("cli-") else [ln[:300] for ln in lines[:sample]]
        found[path.stem] = {"lines": len(lines), "sample": quoted}
    return found
