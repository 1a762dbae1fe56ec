"""How fast retention deletes (issue 13): finished tasks past their retention, with their
attempt log, through the scheduler's own purge (`scheduler.pruner.Pruner.run_once`).

Fills a scratch database with ``--rows`` tasks of a finished-looking history (completed, failed
and cancelled, finished 40 days ago, one attempt logged each, over ``--tenants`` tenants), plus
a tenth as many that must stay (finished yesterday, or still pending though created long ago),
then times one purge pass. Prints tasks and rows (tasks + attempts) per second, and checks
that what must stay stayed. Progress goes to stderr.

    .venv/bin/python bench/purge.py                     # local PostgreSQL, a scratch database
    .venv/bin/python bench/purge.py --rows 1000000 --tenants 100

Compare the tasks/s with the drain rate `make bench` measures on the same machine: the purge
must delete faster than the workers finish tasks, or history grows without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from scratch import create_scratch, drop_scratch, say

from taskstream.core.config import Settings
from taskstream.core.ids import uuid7
from taskstream.core.models import NewTask, Priority
from taskstream.scheduler.pruner import Pruner
from taskstream.store.database import create_pool
from taskstream.store.retention import RetentionStore
from taskstream.store.tasks import TaskStore
from taskstream.store.tenants import TenantStore

FILL_BATCH = 1000
FINISHED = ("completed", "failed", "cancelled")


class Leading:
    is_leader = True


def task(tenant: uuid.UUID, created: datetime, k: int) -> NewTask:
    return NewTask(
        id=uuid7(int(created.timestamp() * 1000) + k % 1000), tenant_id=tenant,
        type="examples.noop", queue="default", priority=Priority.NORMAL,
        payload_json=b'{"n": 1}', max_attempts=3, timeout_s=10.0, idempotency_key=None,
        request_hash=None, correlation_id=None, run_at=None,
    )  # fmt: skip


async def fill(pool: Any, tenants: list[uuid.UUID], rows: int, now: datetime) -> None:
    """``rows`` doomed tasks and ``rows // 10`` kept ones, in batches, then their states."""
    store = TaskStore(pool)
    old = now - timedelta(days=45)
    made, said = 0, time.monotonic()
    for start in range(0, rows + rows // 10, FILL_BATCH):
        tenant = tenants[(start // FILL_BATCH) % len(tenants)]
        await store.insert_many([task(tenant, old, start + i) for i in range(FILL_BATCH)])
        made += FILL_BATCH
        if time.monotonic() - said > 2:
            said = time.monotonic()
            say(f"  inserted {made:,} / {rows + rows // 10:,}")
    say("  setting states and attempt logs")
    await pool.execute(
        """
        WITH n AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM tasks)
        UPDATE tasks t SET
            status = CASE WHEN n.k > $1 AND n.k % 2 = 0 THEN 'pending'
                          ELSE ($2::text[])[1 + n.k % 3] END,
            finished_at = CASE WHEN n.k <= $1 THEN $3::timestamptz
                               WHEN n.k % 2 = 1 THEN $4::timestamptz END,
            attempts = 1
        FROM n WHERE t.id = n.id
        """,
        rows, list(FINISHED), now - timedelta(days=40), now - timedelta(days=1),
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO task_attempts (task_id, attempt, tenant_id, outcome, worker, duration_s)"
        " SELECT id, 0, tenant_id, 'completed', 'bench', 0.001 FROM tasks"
    )
    await pool.execute("VACUUM ANALYZE tasks, task_attempts")


async def main(args: argparse.Namespace) -> None:
    name, dsn = await create_scratch(args.pg, "ts_purge")
    now = datetime.now(UTC)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        ts = TenantStore(pool)
        tenants = [await ts.create_tenant(f"t{i}") for i in range(args.tenants)]
        say(f"filling {args.rows:,} doomed and {args.rows // 10:,} kept tasks over "
            f"{args.tenants} tenant(s)")  # fmt: skip
        await fill(pool, tenants, args.rows, now)
        before = await pool.fetchval("SELECT count(*) FROM tasks")
        say("purging (one pass of the scheduler's pruner)")
        pruner = Pruner(Settings(), RetentionStore(pool), Leading(), now=lambda: now)  # type: ignore[arg-type]
        started = time.perf_counter()
        deleted = await pruner.run_once()
        took = time.perf_counter() - started
        after = await pool.fetchval("SELECT count(*) FROM tasks")
        attempts_left = await pool.fetchval("SELECT count(*) FROM task_attempts")
        ok = deleted == args.rows and after == before - args.rows and attempts_left == after
        print(f"purged {deleted:,} tasks and {deleted:,} attempt rows in {took:.2f} s: "
              f"{deleted / took:,.0f} tasks/s, {2 * deleted / took:,.0f} rows/s, "
              f"{took / deleted * 1e6:.1f} µs per task; kept {after:,} "
              f"({'as expected' if ok else 'WRONG'})")  # fmt: skip
        if not ok:
            raise SystemExit(1)
    finally:
        await pool.close()
        await drop_scratch(args.pg, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgresql://127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=200_000, help="doomed tasks (200000)")
    parser.add_argument("--tenants", type=int, default=10, help="tenants (10)")
    asyncio.run(main(parser.parse_args()))
