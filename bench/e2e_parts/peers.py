"""The peer job queues, measured in the same run as taskstream, so every figure can be a ratio.

Absolute jobs/s and milliseconds depend on the machine; "taskstream drains N× as fast as X on
this machine, in this run" does not. So the suite runs the same drain and pickup-latency
workloads for the peers (arq, saq, taskiq, dramatiq, celery, rq, procrastinate, pgqueuer) right
after its own phases, on the same Redis and PostgreSQL servers.

It does so through `bench/peers/bench_peers.py`, the team's shared peers harness, vendored, run
as a subprocess. The peers cannot live in taskstream's environment: arq pins redis-py < 6 while
taskiq-redis needs >= 6, so the harness builds two pinned virtual environments of its own (once
per machine, in a cache folder) and its orchestrator needs nothing but the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .console import BenchError, Progress, say

HARNESS_DIR = Path(__file__).resolve().parent.parent / "peers"
HARNESS = HARNESS_DIR / "bench_peers.py"
SETUP = HARNESS_DIR / "setup.sh"
REPO = HARNESS_DIR.parent.parent

# Where each peer keeps its jobs: a peer is compared with taskstream's figures of the same kind.
PEERS: dict[str, str] = {
    "arq": "redis",
    "saq": "redis",
    "taskiq_stream": "redis",
    "taskiq_list": "redis",
    "dramatiq": "redis",
    "celery": "redis",
    "rq": "redis",
    "procrastinate": "postgres",
    "pgqueuer": "postgres",
}
# Each peer at its best on this machine. Drain: two worker processes of the tuned configuration
# (tuned2p); dramatiq and rq have no tuned2p in the harness's worker table because their tuned
# mode already runs 2 processes, so "tuned2p/tuned" (first mode the library has) picks tuned.
# Latency: tuned, one worker configuration with high concurrency, as the harness's README reports.
DRAIN_MODES = "tuned2p/tuned"
LATENCY_MODE = "tuned"

SETUP_BOUND_S = 1800.0  # first build downloads ~220 MB of wheels; a later one is a hash check
# Per library and repetition, far above what a healthy run needs (the harness bounds every
# step itself: 120 s per drain, 30 s for the latency tail, 12 s per worker stop).
RUN_BOUND_PER_LIB_REP_S = 600.0
STOP_GRACE_S = 60.0  # on SIGTERM the harness stops its workers and drops its database
HARNESS_LINE = re.compile(r"^\d\d:\d\d:\d\d (.*)$")  # its progress lines carry a time stamp
CPU_DICT = re.compile(r" cpu=\{[^}]*\}")  # in the report already; too long for the console


def peers_home() -> Path:
    """The harness's venvs (~220 MB): built once per machine, so a cache folder, not the run's."""
    if home := os.environ.get("PEERS_HOME"):
        return Path(home).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "taskstream-peers"


async def phase_peers(
    redis_url: str,
    pg_dsn: str,
    log_dir: Path,
    *,
    libs: list[str],
    n: int,
    rate: float,
    duration: float,
    quick: bool,
    phases: str = "drain,latency",
    reps: int | None = None,
) -> dict[str, Any]:
    """Drain (N pre-filled jobs) and pickup latency (`rate` jobs/s for `duration` s) of each peer.

    `redis_url` must name a database number: the harness FLUSHes it before and after every
    measurement. On `pg_dsn`'s server the harness creates and drops a database `bench_peers`.
    A peer that cannot be measured (no network for the first setup, a library that fails) ends
    up as an "error" entry rather than an exception, so the rest of the report still prints.
    """
    unknown = sorted(set(libs) - PEERS.keys())
    if unknown:
        raise BenchError(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    if not urlsplit(redis_url).path.strip("/").isdigit():
        raise BenchError(f"peers: the Redis URL must name a database it may FLUSH: {redis_url}")
    out_dir = log_dir / "peers"  # a folder of its own: the suite's log summary reads log_dir/*.log
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.jsonl"
    results.unlink(missing_ok=True)  # the harness appends
    home = peers_home()
    env = dict(os.environ, PEERS_REDIS_URL=redis_url, PEERS_PG_DSN=pg_dsn, PEERS_HOME=str(home))
    env.setdefault("PEERS_PYTHON", sys.executable)
    if reps is None:
        reps = 1 if quick else 3
    report: dict[str, Any] = {
        "harness": str(HARNESS.relative_to(REPO)),
        "home": str(home),
        "logs": str(out_dir),
        "config": {"libs": libs, "n": n, "reps": reps, "rate": rate, "duration": duration,
                   "drain_modes": DRAIN_MODES, "latency_mode": LATENCY_MODE},
    }  # fmt: skip

    # Setup apart from the measurements: its time is reported, and without network it is the
    # step that fails, with a message of its own.
    say(f"peers: virtual environments in {home} (built on first use)")
    started = time.perf_counter()
    setup_log = out_dir / "setup.log"
    code, tail = await _run_streamed(["bash", str(SETUP)], env, setup_log, SETUP_BOUND_S)
    report["setup_s"] = round(time.perf_counter() - started, 2)
    if code != 0:
        return report | summarize([], libs) | _failed("setup.sh", code, tail, setup_log)

    argv = [sys.executable, str(HARNESS)]
    for lib in libs:
        argv += ["--lib", lib]
    argv += [
        "--phases", phases, "--drain-modes", DRAIN_MODES, "--lat-modes", LATENCY_MODE,
        "--reps", str(reps), "--n", str(n), "--rate", str(rate), "--duration", str(duration),
        "--results", str(results), "--log-dir", str(out_dir / "workers"),
    ]  # fmt: skip
    bound = len(libs) * reps * (RUN_BOUND_PER_LIB_REP_S + duration) + 60.0
    load = (
        f"drain {n} jobs"
        + (f", latency {rate:g}/s for {duration:g} s" if "latency" in phases else "")
        + f", {reps} rep(s)"
    )
    say(f"peers: {', '.join(libs)}: {load}")
    code, tail = await _run_streamed(argv, env, out_dir / "harness.log", bound)
    raw = _read_rows(results)
    report |= summarize(raw, libs)
    if code != 0:  # what was measured before the failure is kept
        report |= _failed("bench_peers.py", code, tail, out_dir / "harness.log")
    return report


def summarize(raw: list[dict[str, Any]], libs: list[str]) -> dict[str, Any]:
    """The harness's rows, normalized; medians per library; the fastest peer of each kind.

    A peer only counts as fastest if every job ran exactly once in every run: a queue that
    loses or repeats jobs is not the one to beat."""
    rows = [_normalize(r) for r in raw if r.get("kind") in ("drain", "latency")]
    errors = [{"lib": r.get("lib"), "error": r["error"]} for r in raw if r.get("kind") == "error"]
    errors += [{"lib": r["lib"], "error": f"{r['kind']}: {r['error']}"} for r in rows if r["error"]]
    summary = {lib: _lib_summary(lib, [r for r in rows if r["lib"] == lib]) for lib in libs}
    return {
        "peers": rows,
        "summary": summary,
        "fastest_redis_drain": _best(summary, "redis", "drain_rate", highest=True),
        "fastest_pg_drain": _best(summary, "postgres", "drain_rate", highest=True),
        "fastest_pickup_p50": _best(summary, None, "latency_p50", highest=False),
        "errors": errors,
    }


def _normalize(r: dict[str, Any]) -> dict[str, Any]:
    drain = r["kind"] == "drain"
    return {
        "lib": r.get("lib"),
        "version": r.get("version"),
        "kind": r["kind"],
        "mode": r.get("mode"),
        "rep": r.get("rep"),
        "n": r.get("N") if drain else r.get("sent"),
        # drain: steady-state jobs/s (start-up excluded); latency: the enqueue rate achieved
        "rate": r.get("rate") if drain else r.get("achieved_rate"),
        "rate_basis": r.get("rate_basis"),
        "p50": r.get("p50"),
        "p95": r.get("p95"),
        "p99": r.get("p99"),
        "cpu": r.get("cpu"),
        "done": r.get("done_final") if drain else r.get("done"),
        "unique": r.get("unique"),
        "timeout": r.get("timeout") if drain else r.get("drain_timeout"),
        "error": r.get("error"),
        "log": r.get("log"),
    }


def _exactly_once(r: dict[str, Any]) -> bool:
    return (
        not r["error"]
        and not r["timeout"]
        and r["n"] is not None
        and r["done"] == r["unique"] == r["n"]
    )


def _median(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def _lib_summary(lib: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    # rate_basis "none": not a single job ran, so there is no rate to take a median of
    drains = [r for r in rows if r["kind"] == "drain" and r["rate_basis"] not in (None, "none")]
    lats = [r for r in rows if r["kind"] == "latency" and r["p50"] is not None]
    out: dict[str, Any] = {
        "kind": PEERS[lib],
        "version": next((r["version"] for r in rows), None),
        "drain_rate": _median([r["rate"] for r in drains]),
        "drain_mode": drains[0]["mode"] if drains else None,
        "latency_mode": lats[0]["mode"] if lats else None,
        "latency_p50": _median([r["p50"] for r in lats]),
        "latency_p95": _median([r["p95"] for r in lats]),
        "latency_p99": _median([r["p99"] for r in lats]),
        "runs": len(rows),
        "exactly_once": bool(rows) and all(_exactly_once(r) for r in rows),
    }
    if not drains and not lats:
        out["error"] = "no measurement" if not rows else "every measurement failed"
    return out


def _best(
    summary: dict[str, dict[str, Any]], kind: str | None, key: str, *, highest: bool
) -> dict[str, Any] | None:
    found = [
        (s[key], lib)
        for lib, s in summary.items()
        if s[key] is not None and s["exactly_once"] and kind in (None, s["kind"])
    ]
    if not found:
        return None
    value, lib = max(found) if highest else min(found)
    field = "rate" if key == "drain_rate" else "p50"
    return {"lib": lib, field: value, "kind": summary[lib]["kind"]}


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line cut short by an interruption
            rows.append(json.loads(line))
    return rows


def _failed(step: str, code: int | None, tail: list[str], log: Path) -> dict[str, Any]:
    why = "exceeded its time bound" if code is None else f"exited with {code}"
    last = "\n".join(tail[-12:])
    say(f"peers: {step} {why}; last lines of {log}:")
    for line in tail[-12:]:
        say(f"peers:   {line}")
    return {"error": f"{step} {why}: {last}"}


def _echo(line: str, progress: Progress) -> None:
    """The harness's own progress and setup's steps in full; pip and the like once a second."""
    if m := HARNESS_LINE.match(line):
        say(f"peers: {CPU_DICT.sub('', m.group(1))}")
    elif line.startswith("setup: "):
        say(f"peers: {line}")
    elif line.strip():
        progress.maybe(f"peers: {line[:160]}")


async def _run_streamed(
    argv: list[str], env: dict[str, str], log_path: Path, bound_s: float
) -> tuple[int | None, list[str]]:
    """Run argv with its output written to log_path and echoed; (exit code or None, last lines).

    In a session of its own, so the terminal's Ctrl-C does not reach it: on cancellation or at
    the bound it gets one SIGTERM, which the harness turns into stopping its workers, flushing
    its Redis database and dropping its PostgreSQL database. (Not SIGINT: a suite started in the
    background passes SIGINT on ignored, and Python then never raises KeyboardInterrupt.)"""
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        return 127, [f"{argv[0]} not found"]
    progress = Progress()
    tail: deque[str] = deque(maxlen=40)
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True, limit=1 << 20,
    )  # fmt: skip
    assert proc.stdout is not None
    stdout = proc.stdout

    async def pump() -> None:
        async for raw in stdout:
            line = raw.decode(errors="replace").rstrip()
            log.write(line + "\n")
            log.flush()
            tail.append(line)
            _echo(line, progress)

    with log_path.open("w") as log:
        try:
            async with asyncio.timeout(bound_s):
                await pump()
                return await proc.wait(), list(tail)
        except TimeoutError:
            return None, list(tail)
        finally:
            if proc.returncode is None:
                # Keep reading while it cleans up: its last lines say what it stopped, and a
                # full pipe would block it.
                reader = asyncio.ensure_future(pump())
                await _stop(proc)
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(reader, 5.0)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM to its group (the harness cleans up), SIGKILL if that is not enough."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
