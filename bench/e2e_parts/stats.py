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


COUNT_SQL = """
SELECT count(*) FILTER (WHERE status = 'completed'),
       count(*) FILTER (WHERE status IN ('failed', 'cancelled'))
FROM tasks
"""

STATS_SQL = """
SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status IN ('failed', 'cancelled')) AS failed,
       count(*) FILTER (WHERE attempts > 1) AS retried,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM started_at - created_at)::float8) AS start_q,
       max(extract(epoch FROM started_at - created_at)::float8) AS start_max,
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM finished_at - created_at)::float8) AS finish_q,
       extract(epoch FROM max(finished_at) - min(finished_at))::float8 AS finish_span
FROM tasks WHERE id = ANY($1::uuid[])
"""


async def task_stats(pool: asyncpg.Pool, ids: list[str]) -> dict[str, Any]:
    """Latencies from PostgreSQL's own timestamps (``now()`` of the insert, claim and finish
    transactions): one clock, whatever the processes' clocks say."""
    row = await pool.fetchrow(STATS_SQL, ids)
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


async def count_done(pool: asyncpg.Pool) -> tuple[int, int]:
    row = await pool.fetchrow(COUNT_SQL)
    return int(row[0]), int(row[1])
