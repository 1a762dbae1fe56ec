"""CPU accounting per role over a phase: process trees from /proc, Redis from `INFO cpu`,
PostgreSQL from the backends `pg_stat_activity` lists, the machine from /proc/stat."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from .servers import is_local

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user+system CPU seconds of all its threads), from /proc."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = raw[raw.rindex(")") + 2 :].split()  # the name may contain spaces or ')'
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return table


Sample = dict[int, float]  # pid -> CPU seconds so far (pid 0: a figure for a whole server)


def tree_sample(table: dict[int, tuple[int, float]], root: int) -> Sample:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    sample: Sample = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            sample[pid] = table[pid][1]
        todo.extend(children.get(pid, []))
    return sample


def used(before: Sample, after: Sample) -> float:
    """CPU between two samples. Per pid, so a process that exits in between is left out rather
    than counted negative, and one that starts in between counts from zero."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores), from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, _steal = values
    return (user + nice + system + irq + softirq) / CLK_TCK


# This database's backends plus the shared processes its commits and flushes go through. The
# server is shared (other databases, other users), so its whole process tree would not be ours.
PG_PIDS_SQL = """
SELECT pid, application_name = $1 AS ours FROM pg_stat_activity
WHERE datname = current_database()
   OR backend_type IN ('walwriter', 'checkpointer', 'background writer', 'autovacuum launcher')
"""
BENCH_APP_NAME = "taskstream-bench"  # tells the bench's own backends (polling, stats) apart


async def postgres_visible(pool: asyncpg.Pool, url: str) -> bool:
    """True if PostgreSQL runs on this machine and /proc shows its processes."""
    if not is_local(url):
        return False
    backend = await pool.fetchval("SELECT pg_backend_pid()")
    with contextlib.suppress(OSError):
        return "postgres" in Path(f"/proc/{backend}/comm").read_text()
    return False


@dataclass
class CpuProbe:
    roles: dict[str, int]  # role -> root pid of its process tree
    redis: aioredis.Redis
    pool: asyncpg.Pool
    postgres: bool  # whether PostgreSQL's processes can be measured

    async def snapshot(self) -> dict[str, Sample | None]:
        table = proc_table()
        snap: dict[str, Sample | None] = {
            role: tree_sample(table, pid) for role, pid in self.roles.items()
        }
        # Redis counts its own CPU (whole server: other users of it are included).
        info = await self.redis.info("cpu")
        snap["redis"] = {0: float(info["used_cpu_sys"]) + float(info["used_cpu_user"])}
        snap["postgres"] = snap["postgres: bench queries"] = None
        if self.postgres:
            rows = await self.pool.fetch(PG_PIDS_SQL, BENCH_APP_NAME)
            for role, ours in (("postgres", False), ("postgres: bench queries", True)):
                pids = [r["pid"] for r in rows if r["ours"] is ours and r["pid"] in table]
                snap[role] = {p: table[p][1] for p in pids}
        snap["bench client"] = {0: time.process_time()}
        snap["machine"] = {0: machine_busy_s()}
        snap["wall"] = {0: time.perf_counter()}
        return snap


def cpu_delta(
    before: dict[str, Sample | None], after: dict[str, Sample | None], tasks: int
) -> dict[str, Any]:
    """CPU seconds, cores busy and µs per task for each role over one phase."""
    wall = used(before["wall"] or {}, after["wall"] or {})
    cpu: dict[str, float] = {}
    for role, start in before.items():
        end = after[role]
        if role != "wall" and start is not None and end is not None:
            cpu[role] = used(start, end)
    # Whatever the machine did beyond the roles measured: other programs on this host.
    cpu["other"] = cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine")
    roles = {
        role: {
            "cpu_s": round(value, 3),
            "cores": round(value / wall, 2),
            "us_per_task": round(value / tasks * 1e6),
        }
        for role, value in cpu.items()
    }
    return {"wall_s": round(wall, 3), "roles": roles}
