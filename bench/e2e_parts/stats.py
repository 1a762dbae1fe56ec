"""Latency figures: from PostgreSQL's own timestamps for the tasks, client-side for HTTP."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import asyncpg


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, like PostgreSQL's ``percentile_cont``."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


# The same figures over a phase's tasks, chosen by id list (small phases) or by id range. Ids
# are UUIDv7, ordered by creation time, and phases never overlap: a phase's tasks are exactly
# the rows between its smallest and largest id, found through the primary key.
STATS_SELECT = """
SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status IN ('failed', 'cancelled')) AS failed,
       count(*) FILTER (WHERE attempts > 1) AS retried,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM started_at - created_at)::float8) AS start_q,
       max(extract(epoch FROM started_at - created_at)::float8) AS start_max,
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - created_at)::float8) AS finish_q,
       extract(epoch FROM max(finished_at) - min(finished_at))::float8 AS finish_span
FROM tasks
"""
STATS_BY_IDS_SQL = STATS_SELECT + "WHERE id = ANY($1::uuid[])"
STATS_BY_RANGE_SQL = STATS_SELECT + "WHERE id BETWEEN $1::uuid AND $2::uuid"


async def task_stats(pool: asyncpg.Pool, ids: list[str]) -> dict[str, Any]:
    """Latencies from PostgreSQL's own timestamps (``now()`` of the insert, claim and finish
    transactions): one clock, whatever the processes' clocks say."""
    return _stats(await pool.fetchrow(STATS_BY_IDS_SQL, ids))


async def range_stats(pool: asyncpg.Pool, first: str, last: str) -> dict[str, Any]:
    """`task_stats` for the tasks with ids from `first` to `last`: cheaper than a list of 100k."""
    return _stats(await pool.fetchrow(STATS_BY_RANGE_SQL, first, last))


def _stats(row: asyncpg.Record) -> dict[str, Any]:
    start_q = row["start_q"] or [None, None, None]
    finish_q = row["finish_q"] or [None, None]
    span = row["finish_span"]
    completed = row["completed"]
    return {
        "completed": completed,
        "failed": row["failed"],
        "retried": row["retried"],
        "start_p50_ms": ms(start_q[0]),
        "start_p95_ms": ms(start_q[1]),
        "start_p99_ms": ms(start_q[2]),
        "start_max_ms": ms(row["start_max"]),
        "finish_p50_ms": ms(finish_q[0]),
        "finish_p99_ms": ms(finish_q[1]),
        "finish_span_s": None if span is None else round(span, 3),
        # Intervals between the first and the N-th completion, as the peer benchmark counts.
        "steady_rate": round((completed - 1) / span) if span and completed > 1 else None,
    }


# Through tasks_tenant_status_idx (tenant, status, id): the cost follows what is left, not the
# size of the table, so polling it often stays cheap while a phase drains.
UNFINISHED_SQL = """
SELECT count(*) FROM tasks
WHERE tenant_id = $1::uuid AND status IN ('pending', 'processing', 'scheduled') AND id >= $2::uuid
"""
ANY_UNFINISHED_SQL = f"SELECT EXISTS ({UNFINISHED_SQL.replace('count(*)', '1')})"
# Through the partial index tasks_unpublished_idx.
UNPUBLISHED_SQL = """
SELECT count(*) FROM tasks
WHERE status = 'pending' AND published_at IS NULL AND tenant_id = $1::uuid AND id >= $2::uuid
"""
NIL_ID = "00000000-0000-0000-0000-000000000000"


async def unfinished(pool: asyncpg.Pool, tenant_id: str, first: str = NIL_ID) -> int:
    """Tasks of the tenant from id `first` on that are not in an end state yet."""
    return int(await pool.fetchval(UNFINISHED_SQL, tenant_id, first))


async def any_unfinished(pool: asyncpg.Pool, tenant_id: str, first: str = NIL_ID) -> bool:
    """Whether `unfinished` is above zero: stops at the first such task instead of counting."""
    return bool(await pool.fetchval(ANY_UNFINISHED_SQL, tenant_id, first))


async def unpublished(pool: asyncpg.Pool, tenant_id: str, first: str = NIL_ID) -> int:
    """Pending tasks from id `first` on whose stream entry is not known to exist yet."""
    return int(await pool.fetchval(UNPUBLISHED_SQL, tenant_id, first))
