"""`--processes N` (worker and api): run a pool of processes of a verb (pool/arbiter.py):
restart any that dies, resize on SIGTTIN/SIGTTOU, forward SIGTERM/SIGINT and wait for all.
A worker pool also replaces hung children and those past their limits, and follows the backlog
with ``--autoscale``. With a metrics port, the children write their metrics to a folder of the
supervisor's and its one endpoint serves their sum (observability/exporter.py), with the number
of processes it runs (``worker_processes``)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .observability.stats import Family
from .pool.arbiter import Arbiter, PoolOptions
from .pool.status import DIR_ENV as POOL_DIR_ENV
from .pool.status import limits_env

PROCESSES = Family(
    "worker_processes", "Worker processes the supervisor runs (draining ones included)", "gauge"
)


def supervise(
    count: int,
    argv: list[str],
    what: str = "worker",
    metrics_port: int | None = None,
    pool: PoolOptions | None = None,
) -> int:
    """Run ``count`` processes of ``argv`` (the initial size) until a signal stops them.
    ``pool``: a worker pool's options; None for the API's (a fixed size, no reports)."""
    with tempfile.TemporaryDirectory(prefix="taskstream-metrics-") as folder:
        env = dict(os.environ)
        arbiter = Arbiter(argv, env, count, pool or PoolOptions(child_timeout_s=None), what)
        stop_serving = None
        if what == "api":  # its counters live in files there, summed by whichever answers
            from .observability.metrics import MULTIPROC_ENV

            env[MULTIPROC_ENV] = folder
        elif metrics_port:
            from .observability.exporter import DIR_ENV, read_folder, serve
            from .observability.metrics import WORKER

            env[DIR_ENV] = folder
            arbiter.on_gone = lambda pid: _drop_gauges(Path(folder), pid)

            def read() -> Mapping[str, Any]:
                snapshot = read_folder(Path(folder))
                snapshot["gauges"][PROCESSES.name] = [[[], len(arbiter.children)]]
                return snapshot

            stop_serving = serve(metrics_port, {**WORKER, PROCESSES.name: PROCESSES}, read)
        if pool is not None:  # beside the metrics files, not among them (those are summed)
            arbiter.folder = Path(folder) / "pool"
            arbiter.folder.mkdir()
            env |= {POOL_DIR_ENV: str(arbiter.folder), **limits_env(pool.limits)}
        try:
            return arbiter.run()
        finally:
            if stop_serving is not None:
                stop_serving()


def _drop_gauges(folder: Path, pid: int) -> None:
    """A gone child's counters stay in the sum (they never go back); its gauges (slots, degraded)
    leave with it, or every replaced child would add its free slots for ever."""
    path = folder / f"{pid}.json"
    with contextlib.suppress(OSError, ValueError):
        snapshot = json.loads(path.read_text())
        snapshot["gauges"] = {}
        part = folder / f".{pid}.gone"
        part.write_text(json.dumps(snapshot))
        part.replace(path)  # at once: a scrape never sees half
