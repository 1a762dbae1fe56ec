"""Phase: single-task ``POST /v1/tasks`` over keep-alive HTTP, from a load generator process.

Two measurements, each by ``bench/loadgen.py`` in its own process (same interpreter):

* capacity: a closed loop on K keep-alive connections for ``duration_s``; the rate it reaches
  is what the API accepts at that concurrency (issue target: >= 3,000 requests/s);
* fixed rate: an open loop at ``fixed_rate`` requests/s for ``duration_s``, latency measured
  from each request's due time, so a stall cannot hide (issue target: p99 < 25 ms at 1,000/s).

Why a separate process: on a 2-core machine the generator must neither share this process's
event loop (which polls PostgreSQL and prints progress) nor cost more than the server it
loads. It reports its own CPU seconds, included here, so a reader can see it was not the limit.

The worker keeps running: every accepted task is also executed. Before each measurement the
phase waits until the tenant's backlog (pending + processing, from ``GET /v1/queues``) is back
to where it was, so the fixed-rate figures are not taken while the worker still drains what the
capacity run left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .console import BenchError, Progress, say

LOADGEN = Path(__file__).resolve().parent.parent / "loadgen.py"
CAPACITY_CONNECTIONS = 32
TARGET_CAPACITY_RPS = 3000.0
TARGET_FIXED_P99_MS = 25.0
DRAIN_TIMEOUT_S = 180.0


async def backlog(client: httpx.AsyncClient) -> int:
    """Pending + processing tasks of the key's tenant, over all its queues."""
    resp = await client.get("/v1/queues")
    if resp.status_code != 200:
        raise BenchError(f"GET /v1/queues: HTTP {resp.status_code} {resp.text[:300]}")
    return sum(sum(q["pending"].values()) + q["processing"] for q in resp.json()["items"])


async def wait_backlog(client: httpx.AsyncClient, baseline: int, timeout_s: float) -> float:
    """Wait until the backlog is back to `baseline`; returns the seconds it took. Gives up (and
    says so) after `timeout_s`: the next measurement then runs beside the drain."""
    started = time.perf_counter()
    progress = Progress(3.0)
    while True:
        left = await backlog(client) - baseline
        waited = time.perf_counter() - started
        if left <= 0:
            return waited
        if waited > timeout_s:
            say(f"http submit: {left:,} tasks still queued after {timeout_s:.0f} s; going on")
            return waited
        progress.maybe(f"http submit: worker draining, {left:,} tasks left")
        await asyncio.sleep(0.25)


async def run_loadgen(
    api_url: str, api_key: str, log: Path, args: list[str], timeout_s: float
) -> dict[str, Any]:
    """Run loadgen.py to completion; its progress lines are shown and kept in `log`."""
    env = dict(os.environ, LOADGEN_KEY=api_key)  # not in argv: `ps` shows argv to everyone
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(LOADGEN), "--url", api_url, *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    stderr = proc.stderr

    async def relay() -> None:
        with log.open("w") as sink:
            async for raw in stderr:
                line = raw.decode(errors="replace").rstrip()
                sink.write(line + "\n")
                if line.startswith("loadgen "):
                    say(f"  {line}")

    relaying = asyncio.create_task(relay())
    try:
        out = await asyncio.wait_for(proc.stdout.read(), timeout_s)
        code = await asyncio.wait_for(proc.wait(), 10)
        await relaying
    except TimeoutError:
        raise BenchError(
            f"loadgen {' '.join(args)} still running after {timeout_s:.0f} s"
        ) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        relaying.cancel()
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchError(f"loadgen {' '.join(args)} exited with {code}:\n{tail}")
    try:
        result: dict[str, Any] = json.loads(out)
    except ValueError as exc:
        raise BenchError(f"loadgen printed no JSON ({exc}): {out[:300]!r}") from None
    return result


def _line(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    errors = sum(r["errors"].values())
    return (
        f"{r['ok_rate']:,.0f} ok/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms, {errors} errors, loadgen CPU {r['cpu_cores']:.2f} cores"
    )


async def phase_http_submit(
    api_url: str,
    api_key: str,
    log_dir: Path,
    *,
    duration_s: float = 10.0,
    fixed_rate: float = 1000.0,
    quick: bool = False,
    connections: int = CAPACITY_CONNECTIONS,
) -> dict[str, Any]:
    """Capacity (closed loop, `connections` sockets) then latency at `fixed_rate` (open loop),
    each for `duration_s`. `quick` shortens the unmeasured warm-up, not the measurement."""
    warmup = 0.5 if quick else 2.0
    bound = warmup + duration_s + 60  # loadgen waits at most 30 s for stragglers
    client = httpx.AsyncClient(
        base_url=api_url,
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
        trust_env=False,  # no proxy from the environment between us and the API
    )
    try:
        baseline = await backlog(client)
        say(
            f"http submit: capacity, closed loop on {connections} keep-alive connections "
            f"for {duration_s:g} s"
        )
        capacity = await run_loadgen(
            api_url, api_key, log_dir / "loadgen-capacity.log",
            ["--mode", "closed", "--connections", str(connections),
             "--duration", str(duration_s), "--warmup", str(warmup)],
            bound,
        )  # fmt: skip
        say(f"http submit: capacity {_line(capacity)}")
        drain_capacity = await wait_backlog(client, baseline, DRAIN_TIMEOUT_S)
        await asyncio.sleep(1)  # the last completions' side work settles
        say(f"http submit: fixed rate, open loop at {fixed_rate:g}/s for {duration_s:g} s")
        fixed = await run_loadgen(
            api_url, api_key, log_dir / "loadgen-fixed.log",
            ["--mode", "open", "--rate", str(fixed_rate),
             "--duration", str(duration_s), "--warmup", str(warmup)],
            bound,
        )  # fmt: skip
        say(f"http submit: fixed rate {_line(fixed)}")
        drain_fixed = await wait_backlog(client, baseline, DRAIN_TIMEOUT_S)
    finally:
        await client.aclose()
    p99 = fixed["latency_ms"]["p99"]
    return {
        "capacity": capacity,
        "fixed_rate": fixed,
        "loadgen_cpu_s": {"capacity": capacity["cpu_s"], "fixed_rate": fixed["cpu_s"]},
        "drain_after_s": {
            "capacity": round(drain_capacity, 2),
            "fixed_rate": round(drain_fixed, 2),
        },
        "targets": {
            "capacity_rps": TARGET_CAPACITY_RPS,
            "capacity_met": capacity["ok_rate"] >= TARGET_CAPACITY_RPS and not capacity["errors"],
            "fixed_p99_ms": TARGET_FIXED_P99_MS,
            "fixed_met": p99 is not None
            and p99 < TARGET_FIXED_P99_MS
            and not fixed["errors"]
            and fixed["ok_rate"] >= 0.99 * fixed_rate,
        },
    }
