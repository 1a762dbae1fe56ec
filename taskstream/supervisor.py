"""`--processes N` (worker and api): run a pool of processes of a verb (pool/arbiter.py):
restart any that dies, resize on SIGTTIN/SIGTTOU, forward SIGTERM/SIGINT and wait for all.
A worker pool also replaces hung children and those past their limits, and follows the backlog
with ``--autoscale``. With a metrics port, the children write their metrics to a folder of the
supervisor's and its one endpoint serves their sum (observability/exporter.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .pool.arbiter import Arbiter, PoolOptions
from .pool.status import DIR_ENV as POOL_DIR_ENV
from .pool.status import limits_env


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
        stop_serving = None
        if what == "api":  # its counters live in files there, summed by whichever answers
            from .observability.metrics import MULTIPROC_ENV

            env[MULTIPROC_ENV] = folder
        elif metrics_port:
            from .observability.exporter import DIR_ENV, read_folder, serve
            from .observability.metrics import WORKER

            env[DIR_ENV] = folder
            stop_serving = serve(metrics_port, WORKER, lambda: read_folder(Path(folder)))
        reports = None
        if pool is not None:  # beside the metrics files, not among them (those are summed)
            reports = Path(folder) / "pool"
            reports.mkdir()
            env |= {POOL_DIR_ENV: str(reports), **limits_env(pool.limits)}
        options = pool or PoolOptions(child_timeout_s=None)
        try:
            return Arbiter(argv, env, count, options, what, folder=reports).run()
        finally:
            if stop_serving is not None:
                stop_serving()
