"""taskstream's benchmark suite (issue 5): the real `taskstream` processes on private Redis and
PostgreSQL, driven over HTTP, judged by PostgreSQL, and compared with the peer job queues
measured in the same run.

Phases (``--phases``, default all, in this order):

* drain: N tasks pre-filled over HTTP with no worker running, then the worker started (1 and 2
  processes; a no-op body and the peers' body); time until all are completed in PostgreSQL.
* sustained: tasks offered at a steady rate while the worker runs (batches and single submits);
  completed tasks/s and submit -> start latency.
* pickup: single submits at a steady 200/s; ``started_at - created_at`` percentiles.
* http: single ``POST /v1/tasks`` from a separate load-generator process: capacity and latency.
* memory: API and worker RSS before and after many tasks; Redis memory after the drain.
* large: GET by id and filtered lists on a table of a million rows.
* peers: the peer libraries' drain and pickup latency on the same servers, for the ratios.
* paired: rounds of one taskstream drain (peers' body, 2 worker processes) and one drain of each
  peer, back to back, each round's ratio from figures minutes apart, not tens of minutes.
* fairness (only when named, ~5 minutes; issue 12): light tenants' submit -> start latency
  without and with a heavy tenant's backlog, and the drain rate over 1, 100 and 1,000 tenants,
  each on a deployment of its own.
* lifecycle (only when named, ~2 minutes; issue 13): the drain's pre-fill and drain rates with
  submissions audited and payloads sealed (B) and without (A), in alternating paired rounds,
  each drain on a deployment of its own; B/A of both rates.
* instrumentation (only when named; issue 14): the same A/B drains with TASKSTREAM_METRICS off
  (A) and on (B, the default): what counting every request and attempt costs.

The run prints a table of every figure beside its target and the best peer's, and writes the
full report as JSON. Every run has its own database and Redis key prefix, removed at the end,
and stops every process it started. See bench/README.md for how to read the output.

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
import time
from collections.abc import Coroutine, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2e_parts.config import (
    BODIES,
    DEFAULT_PHASES,
    FAIRNESS_PARTS,
    OPT_IN_PHASES,
    PEER_LIBS_ALL,
    PEER_LIBS_DEFAULT,
    PHASES,
    SIZES,
    Config,
)
from e2e_parts.console import BenchError, say
from e2e_parts.environment import (
    hardware,
    package_versions,
    server_settings,
    shown_settings,
)
from e2e_parts.fairness import phase_fairness
from e2e_parts.lifecycle import FEATURES, phase_ab
from e2e_parts.paired import phase_paired
from e2e_parts.peers import phase_peers
from e2e_parts.processes import Cluster, log_summary, process_env
from e2e_parts.report import render
from e2e_parts.run import RUNNERS, run_cluster
from e2e_parts.servers import Servers, Stores, redact, servers
from e2e_parts.summary import figures

HERE = Path(__file__).resolve().parent


def comma_list(
    text: str, known: Sequence[str], what: str, everything: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The items of `text`, each one of `known`; "all" is `everything` (default: `known`)."""
    items = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if items == ("all",):
        return tuple(known if everything is None else everything)
    unknown = [x for x in items if x not in known]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"{what}: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(known)}"
        )
    return items


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add = p.add_argument
    add("--phases", default="all",
        help=f"comma list of {','.join(PHASES)} (default: all = every one but "
             f"{','.join(OPT_IN_PHASES)})")  # fmt: skip
    add("--quick", action="store_true", help="small sizes everywhere: a smoke run, not figures")
    add("--use-running", action="store_true",
        help="BENCH_REDIS_URL / BENCH_PG_URL instead of private servers")  # fmt: skip
    add("--workers", type=int, default=1, help="worker processes outside the drain (1)")
    add("--api-processes", type=int, default=2, help="`api --processes` (2: one per core)")
    add("--concurrency", type=int, default=500, help="tasks at once per worker process (500)")
    add("--timeout", type=float, default=300.0, help="bound on each wait, s (300)")
    add("--json-out", type=Path, help="default bench/results/e2e-<timestamp>.json")
    g = p.add_argument_group("drain")
    g.add_argument("--drain-n", type=int, help="pre-filled tasks (50000; quick 5000)")
    g.add_argument(
        "--drain-reps", type=int, help="runs of each case, median reported, as peers (3; quick 1)"
    )
    g.add_argument("--drain-workers", default="1,2", help="worker processes, a run each (1,2)")
    g.add_argument(
        "--drain-bodies", default="noop,peer", help="task bodies, a run each (noop,peer)"
    )
    g.add_argument("--batch-size", type=int, default=500, help="pre-fill tasks per request (500)")
    g.add_argument("--submitters", type=int, default=4, help="pre-fill concurrent clients (4)")
    g = p.add_argument_group("sustained")
    g.add_argument(
        "--sustained-rate", type=float, default=5000.0, help="tasks/s offered in batches (5000)"
    )
    g.add_argument("--sustained-batch", type=int, default=50, help="tasks per batch request (50)")
    g.add_argument("--sustained-clients", type=int, default=4, help="keep-alive clients (4)")
    g.add_argument("--sustained-single-rate", type=float, default=1000.0,
                   help="tasks/s as single POST /v1/tasks (1000; 0: skip)")  # fmt: skip
    g.add_argument("--sustained-duration", type=float, help="seconds per mode (20; quick 3)")
    g = p.add_argument_group("pickup")
    g.add_argument("--rate", type=float, default=200.0, help="single submits/s (200)")
    g.add_argument("--duration", type=float, help="seconds (15; quick 3)")
    g.add_argument("--http-client", choices=["raw", "httpx"], default="raw",
                   help="load generator (raw; see RawPoster for why not httpx)")  # fmt: skip
    g = p.add_argument_group("http, memory, large, peers")
    g.add_argument("--http-rate", type=float, default=1000.0, help="fixed-rate requests/s (1000)")
    g.add_argument("--http-duration", type=float, help="seconds per measurement (15; quick 3)")
    g.add_argument("--memory-n", type=int, help="tasks (1000000; quick 20000)")
    g.add_argument("--large-rows", type=int, help="rows in the table (1000000; quick 20000)")
    g.add_argument("--peers", default=",".join(PEER_LIBS_DEFAULT),
                   help=f"peer libraries, or all ({','.join(PEER_LIBS_DEFAULT)})")  # fmt: skip
    g.add_argument("--peers-n", type=int, help="jobs per peer drain (default: --drain-n)")
    g.add_argument("--peers-rate", type=float, help="peer latency load, jobs/s (default: --rate)")
    g.add_argument("--peers-duration", type=float, help="peer latency seconds (15; quick 3)")
    g.add_argument("--paired-rounds", type=int, help="paired phase: rounds (5; quick 1)")
    g = p.add_argument_group("fairness (issue 12; run only when named in --phases)")
    g.add_argument("--fairness-duration", type=float,
                   help="seconds of light load in each of runs A and B (30; quick 5)")  # fmt: skip
    g.add_argument("--fairness-rate", type=float, default=20.0,
                   help="single submits/s of each of the 9 light tenants (20)")  # fmt: skip
    g.add_argument("--fairness-backlog", type=int,
                   help="the heavy tenant's backlog in run B (50000; quick 5000)")  # fmt: skip
    g.add_argument("--fairness-body-ms", type=float,
                   help="examples.sleep per task (default: the backlog keeps every slot busy "
                        "for 2x --fairness-duration)")  # fmt: skip
    g.add_argument("--fairness-n", type=int,
                   help="tasks per many-tenants drain (20000; quick 2000)")  # fmt: skip
    g.add_argument("--fairness-parts", default="skew,tenants",
                   help="parts to run: skew, tenants or both (skew,tenants)")  # fmt: skip
    g.add_argument("--fairness-tenants", default="1,100,1000",
                   help="tenant counts, one drain case each (1,100,1000)")  # fmt: skip
    g.add_argument("--fairness-reps", type=int,
                   help="drains per tenant count, median reported (3; quick 1)")  # fmt: skip
    g = p.add_argument_group("lifecycle and instrumentation (issues 13, 14; only when named)")
    g.add_argument("--lifecycle-rounds", type=int,
                   help="rounds of one drain of each variant, A/B order alternating "
                        "(3; quick 1)")  # fmt: skip
    g.add_argument("--lifecycle-n", type=int,
                   help="pre-filled tasks per drain (default: --drain-n)")  # fmt: skip
    return p


def parse_args(argv: Sequence[str] | None) -> Config:
    p = build_parser()
    a = p.parse_args(argv)
    try:
        phases = comma_list(a.phases, PHASES, "--phases", DEFAULT_PHASES)
        bodies = comma_list(a.drain_bodies, tuple(BODIES), "--drain-bodies")
        peers = comma_list(a.peers, PEER_LIBS_ALL, "--peers")
        drain_workers = tuple(int(x) for x in a.drain_workers.split(",") if x.strip())
        fair_parts = comma_list(a.fairness_parts, FAIRNESS_PARTS, "--fairness-parts")
        fair_tenants = tuple(sorted({int(x) for x in a.fairness_tenants.split(",") if x.strip()}))
    except (argparse.ArgumentTypeError, ValueError) as exc:
        p.error(str(exc))
    # Sizes not given: the full run's, or --quick's.
    size = {k: getattr(a, k) if getattr(a, k) is not None else v[a.quick] for k, v in SIZES.items()}
    counts = [a.workers, a.api_processes, a.concurrency, a.batch_size, a.submitters,
              a.sustained_batch, a.sustained_clients, size["drain_n"], size["drain_reps"],
              size["paired_rounds"], *drain_workers, size["fairness_backlog"], size["fairness_n"],
              size["fairness_reps"], *fair_tenants, a.lifecycle_n or size["drain_n"],
              size["lifecycle_rounds"]]  # fmt: skip
    rates = [a.rate, a.sustained_rate, a.http_rate, a.fairness_rate, size["fairness_duration"]]
    if not drain_workers or not fair_tenants or min(counts) < 1 or min(rates) <= 0:
        p.error("counts and rates must be positive")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Config(
        phases=tuple(x for x in PHASES if x in phases), quick=a.quick, use_running=a.use_running,
        workers=a.workers, api_processes=a.api_processes, concurrency=a.concurrency,
        timeout=a.timeout,
        json_out=a.json_out or HERE / "results" / f"e2e-{stamp}.json",
        drain_n=size["drain_n"], drain_reps=size["drain_reps"], drain_workers=drain_workers,
        drain_bodies=bodies,
        batch_size=a.batch_size, submitters=a.submitters,
        sustained_rate=a.sustained_rate, sustained_batch=a.sustained_batch,
        sustained_clients=a.sustained_clients, sustained_single_rate=a.sustained_single_rate,
        sustained_duration=size["sustained_duration"],
        rate=a.rate, duration=size["duration"], http_client=a.http_client,
        http_rate=a.http_rate, http_duration=size["http_duration"],
        memory_n=size["memory_n"], large_rows=size["large_rows"], peers=peers,
        peers_n=a.peers_n or size["drain_n"], peers_rate=a.peers_rate or a.rate,
        peers_duration=size["peers_duration"], paired_rounds=size["paired_rounds"],
        fairness_duration=size["fairness_duration"], fairness_rate=a.fairness_rate,
        fairness_backlog=size["fairness_backlog"], fairness_body_ms=a.fairness_body_ms,
        fairness_n=size["fairness_n"], fairness_tenants=fair_tenants,
        fairness_parts=tuple(x for x in FAIRNESS_PARTS if x in fair_parts),
        fairness_reps=size["fairness_reps"],
        lifecycle_n=a.lifecycle_n or size["drain_n"], lifecycle_rounds=size["lifecycle_rounds"],
    )  # fmt: skip


async def bench(cfg: Config, log_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "kind": "taskstream-e2e",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "hardware": hardware(),
        "versions": package_versions(),
        "logs": str(log_dir),
        "phase_errors": {},
    }
    report["config"]["inherited_env"] = shown_settings()
    say(f"phases: {', '.join(cfg.phases)}" + (" (--quick)" if cfg.quick else ""))
    async with servers(cfg.use_running, log_dir) as srv:
        stores = Stores(srv)
        report["servers"] = {
            "redis": redact(srv.redis_url),
            "postgresql": redact(srv.admin_pg_url),
            "private": srv.private,
            "database": stores.database,
            "redis_prefix": stores.prefix,
            "settings": await server_settings(srv.redis_url, srv.admin_pg_url),
        }
        if any(p in RUNNERS for p in cfg.phases):
            await run_taskstream(cfg, stores, log_dir, report)
        if cfg.wants("fairness"):  # deployments of its own, after the main one is gone
            await run_fairness(cfg, srv, log_dir, report)
        for phase in FEATURES:  # the same
            if cfg.wants(phase):
                await run_ab(phase, cfg, srv, log_dir, report)
        if cfg.wants("peers"):  # after taskstream's processes and data are gone
            await run_peers(cfg, srv, log_dir, report)
        if cfg.wants("paired"):
            await run_paired(cfg, srv, log_dir, report)
    report["summary"] = figures(report)
    return report


async def run_taskstream(
    cfg: Config, stores: Stores, log_dir: Path, report: dict[str, Any]
) -> None:
    cluster = Cluster(process_env(stores), log_dir)
    try:
        async with contextlib.AsyncExitStack() as stack:
            # LIFO: processes stop before the database goes; clients close before both.
            stack.push_async_callback(stores.clean)
            stack.push_async_callback(cluster.stop_all)
            out = await run_cluster(cfg, stores, cluster, stack)
            report["phase_errors"].update(out.pop("phase_errors"))
            report.update(out)
    finally:
        report["processes"] = cluster.stopped
        report["cleanup"] = stores.result
        report["log_summary"] = log_summary(log_dir)


async def run_peers(cfg: Config, srv: Servers, log_dir: Path, report: dict[str, Any]) -> None:
    say(f"=== phase peers ({', '.join(cfg.peers)}) ===")
    await _recorded("peers", report, phase_peers(
        srv.peers_redis_url, srv.peers_pg_dsn, log_dir,  # it keeps to log_dir/peers/
        libs=list(cfg.peers), n=cfg.peers_n, rate=cfg.peers_rate,
        duration=cfg.peers_duration, quick=cfg.quick,
    ))  # fmt: skip


async def run_fairness(cfg: Config, srv: Servers, log_dir: Path, report: dict[str, Any]) -> None:
    say("=== phase fairness (tenant skew, then many tenants) ===")
    await _recorded("fairness", report, phase_fairness(cfg, srv, log_dir / "fairness"))
    # A part that failed leaves the other's figures in the report and fails the run.
    for part, why in (report.get("fairness") or {}).get("errors", {}).items():
        report["phase_errors"][f"fairness {part}"] = why


async def run_ab(
    phase: str, cfg: Config, srv: Servers, log_dir: Path, report: dict[str, Any]
) -> None:
    feature = FEATURES[phase]
    say(f"=== phase {phase} ({cfg.lifecycle_rounds} round(s): {feature.label} off / on) ===")
    await _recorded(phase, report, phase_ab(feature, cfg, srv, log_dir / phase))
    # A round that failed, or a variant that did not take, leaves the figures and fails the run.
    for what, why in (report.get(phase) or {}).get("errors", {}).items():
        report["phase_errors"][f"{phase} {what}"] = why


async def run_paired(cfg: Config, srv: Servers, log_dir: Path, report: dict[str, Any]) -> None:
    say(f"=== phase paired ({cfg.paired_rounds} rounds: taskstream and {', '.join(cfg.peers)}) ===")

    async def one_drain(ours: Config, round_dir: Path) -> dict[str, Any]:
        """A deployment of its own (database, prefix, processes), gone before the peers run."""
        part: dict[str, Any] = {"phase_errors": {}}
        await run_taskstream(ours, Stores(srv), round_dir, part)
        if part["phase_errors"]:
            raise BenchError(f"taskstream drain: {part['phase_errors']}")
        return part["drain"]["runs"][0]

    await _recorded("paired", report, phase_paired(cfg, srv, log_dir, one_drain))


async def _recorded(
    phase: str, report: dict[str, Any], work: Coroutine[Any, Any, dict[str, Any]]
) -> None:
    """Run a phase outside taskstream's cluster: its result, or its error, goes in the report."""
    started = time.perf_counter()
    try:
        result = await work
    except Exception as exc:
        say(f"phase {phase} failed: {type(exc).__name__}: {exc}")
        report["phase_errors"][phase] = f"{type(exc).__name__}: {exc}"
        return
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    report[phase] = result


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
    if report["phase_errors"]:
        say(f"failed phases: {', '.join(report['phase_errors'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
