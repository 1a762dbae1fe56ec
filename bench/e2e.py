"""End-to-end benchmark: the real `taskstream` processes, driven over HTTP, judged by PostgreSQL.

Phase 1 (throughput): N `examples.noop` tasks submitted with ``POST /v1/tasks/batch`` while the
worker runs; measured until every one is ``completed`` in PostgreSQL.
Phase 2 (pickup latency): single ``POST /v1/tasks`` at a steady rate; ``started_at - created_at``
computed by PostgreSQL, so both timestamps come from one clock.

Every run has its own database and Redis key prefix, both removed at the end, and stops every
process it started. See bench/README.md for how to read the output.

This file parses the options and lays out the run; the parts live in `e2e_parts/` (run as a
script, this folder is on sys.path, so nothing needs installing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2e_parts.config import Config
from e2e_parts.console import BenchError, say
from e2e_parts.environment import hardware, inherited_settings, package_versions
from e2e_parts.processes import Cluster, log_summary, process_env
from e2e_parts.report import render
from e2e_parts.run import run_cluster
from e2e_parts.servers import Stores, redact, servers

HERE = Path(__file__).resolve().parent


def parse_args(argv: Sequence[str] | None) -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--n", type=int, default=20_000, help="phase 1 tasks (default 20000)")
    p.add_argument("--rate", type=float, default=200.0, help="phase 2 submits/s (default 200)")
    p.add_argument("--duration", type=float, default=15.0, help="phase 2 seconds (default 15)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--concurrency", type=int, default=50, help="tasks at once per worker process")
    p.add_argument("--batch-size", type=int, default=500, help="phase 1 tasks per request")
    p.add_argument("--submitters", type=int, default=4, help="phase 1 concurrent HTTP clients")
    p.add_argument("--timeout", type=float, default=300.0, help="bound on each phase's wait, s")
    p.add_argument(
        "--http-client",
        choices=["raw", "httpx"],
        default="raw",
        help="phase 2 HTTP client (default raw: see RawPoster for why not httpx)",
    )
    p.add_argument("--json-out", type=Path, help="default bench/results/e2e-<timestamp>.json")
    a = p.parse_args(argv)
    if min(a.n, a.workers, a.concurrency, a.batch_size, a.submitters) < 1 or a.rate <= 0:
        p.error("counts and --rate must be positive")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_out = a.json_out or HERE / "results" / f"e2e-{stamp}.json"
    return Config(
        a.n, a.rate, a.duration, a.workers, a.concurrency, a.batch_size, a.submitters,
        a.timeout, a.http_client, json_out,
    )  # fmt: skip


async def bench(cfg: Config, log_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "kind": "taskstream-e2e",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "hardware": hardware(),
        "versions": package_versions(),
        "logs": str(log_dir),
    }
    report["config"]["inherited_env"] = inherited_settings()
    async with servers() as srv:
        stores = Stores(srv)
        report["servers"] = {
            "redis": redact(srv.redis_url),
            "postgresql": redact(srv.admin_pg_url),
            "private": srv.private,
            "database": stores.database,
            "redis_prefix": stores.prefix,
        }
        cluster = Cluster(process_env(stores), log_dir)
        try:
            async with contextlib.AsyncExitStack() as stack:
                # LIFO: processes stop before the database goes; clients close before both.
                stack.push_async_callback(stores.clean)
                stack.push_async_callback(cluster.stop_all)
                report.update(await run_cluster(cfg, stores, cluster, stack))
        finally:
            report["processes"] = cluster.stopped
            report["cleanup"] = stores.result
            report["log_summary"] = log_summary(log_dir)
    report["versions"].update(report.pop("server_versions", {}))
    return report


def run_async(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """uvloop like the services; SIGTERM cancels the run so cleanup still happens."""

    async def guarded() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await coro

    try:
        import uvloop
    except ImportError:
        return asyncio.run(guarded())
    return uvloop.run(guarded())


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    log_dir = cfg.json_out.parent / f"{cfg.json_out.stem}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = run_async(bench(cfg, log_dir))
    except BenchError as exc:
        say(f"failed: {exc}")
        for name, found in log_summary(log_dir).items():
            for line in found["sample"]:  # a failing service usually says why in its log
                say(f"  {name}: {line}")
        say(f"process logs: {log_dir}")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; processes stopped, database and keys removed")
        return 130
    print(render(report), flush=True)
    cfg.json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    say(f"wrote {cfg.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
