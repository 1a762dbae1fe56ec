"""One run on a prepared database: start the API and scheduler, then each chosen phase in the
order of `config.PHASES` (the peers run later, once taskstream's processes are gone). Phases
start and stop the worker themselves. Stopping and cleanup are the caller's exit stack.

A phase that fails is recorded with its error and the run goes on, so one broken measurement
does not cost the others; a taskstream process that died ends the run (its log says why)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .config import PHASES, Config
from .console import BenchError, say
from .drain import phase_drain
from .http_submit import phase_http_submit
from .large_tables import phase_large_tables
from .latency import phase_pickup
from .memory import phase_memory
from .processes import Cluster
from .servers import Stores
from .stack import Stack, start_stack
from .sustained import phase_sustained


async def run_http(stack: Stack) -> dict[str, Any]:
    cfg = stack.cfg
    await stack.start_worker(cfg.workers)  # every accepted task is executed, as in production
    await stack.wait_idle("http")
    result: dict[str, Any] = await phase_http_submit(
        stack.api_url, stack.api_key, subdir(stack.cluster.log_dir, "http"),
        duration_s=cfg.http_duration, fixed_rate=cfg.http_rate, quick=cfg.quick,
    )  # fmt: skip
    return result


async def run_memory(stack: Stack) -> dict[str, Any]:
    await stack.start_worker(stack.cfg.workers)
    await stack.wait_idle("memory")
    # The run's key prefix lets it count the streams' entries after the drain.
    result: dict[str, Any] = await phase_memory(
        stack.api_url, stack.api_key, stack.pool, stack.redis, stack.pids(),
        stack.cfg.memory_n, stack.cluster.check_alive, redis_prefix=stack.stores.prefix,
    )  # fmt: skip
    return result


async def run_large(stack: Stack) -> dict[str, Any]:
    await stack.start_worker(stack.cfg.workers)
    await stack.wait_idle("large")
    result: dict[str, Any] = await phase_large_tables(
        stack.api_url, stack.api_key, stack.pool, stack.tenant_id, stack.cfg.large_rows
    )
    return result


RUNNERS: dict[str, Callable[[Stack], Awaitable[dict[str, Any]]]] = {
    "drain": phase_drain,
    "sustained": phase_sustained,
    "pickup": phase_pickup,
    "http": run_http,
    "memory": run_memory,
    "large": run_large,
}


def subdir(parent: Path, name: str) -> Path:
    """A phase's own log folder: the run's summary quotes every *.log directly in `parent` as
    something a service said, which a load generator's progress lines are not."""
    path = parent / name
    path.mkdir(parents=True, exist_ok=True)
    return path


async def run_cluster(
    cfg: Config, stores: Stores, cluster: Cluster, exits: contextlib.AsyncExitStack
) -> dict[str, Any]:
    stack = await start_stack(cfg, stores, cluster, exits)
    out: dict[str, Any] = {"api_ready_s": stack.api_ready_s, "phase_errors": {}}
    chosen = [p for p in PHASES if cfg.wants(p) and p in RUNNERS]
    for i, name in enumerate(chosen, 1):
        say(f"=== phase {name} ({i}/{len(chosen)}) ===")
        started = time.perf_counter()
        try:
            result = await RUNNERS[name](stack)
        except Exception as exc:
            say(f"phase {name} failed: {type(exc).__name__}: {exc}")
            out["phase_errors"][name] = f"{type(exc).__name__}: {exc}"
            try:
                cluster.check_alive()
            except BenchError as dead:  # nothing more to measure; the report shows the logs
                out["phase_errors"][name] += f"\n{dead}"
                say("a taskstream process died: no further phases")
                break
            await stack.stop_worker()  # the next phase starts from a known state
            continue
        result["elapsed_s"] = round(time.perf_counter() - started, 1)
        out[name] = result
        say(f"phase {name} done in {result['elapsed_s']:.0f} s")
    out["warmup_task_s"] = stack.warmup_task_s
    return out
