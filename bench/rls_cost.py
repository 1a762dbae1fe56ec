"""What Row-Level Security costs the API's statements (issue 11).

Runs the API's own store calls through two pools on the same database, one after the other in
alternating rounds: the owning role (RLS does not apply: workers, schedulers) and the API's
tenant-scoped role (every statement held to its tenant by migration 0010's policies). Prints
the median time per call of each and the difference, with progress on stderr.

    .venv/bin/python bench/rls_cost.py                       # local PostgreSQL, a scratch database
    .venv/bin/python bench/rls_cost.py --rows 200000 --rounds 7

Single-connection, sequential calls: the figure is the statement's own cost (client, loopback
and server), not a throughput. Tenants alternate every call on the scoped pool in the
``switching`` case, so the session setting is written every time (the worst case: a connection
serving a new tenant on every request).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from scratch import create_scratch, drop_scratch, say

from taskstream.core.ids import uuid7
from taskstream.core.models import NewTask, Priority
from taskstream.store.database import create_pool
from taskstream.store.tasks import TaskStore
from taskstream.store.tenants import TenantStore

Call = Callable[[TaskStore, list[uuid.UUID], int], Awaitable[Any]]


def task(tenant: uuid.UUID) -> NewTask:
    return NewTask(
        id=uuid7(), tenant_id=tenant, type="examples.noop", queue="default",
        priority=Priority.NORMAL, payload_json=b'{"n": 1}', max_attempts=3, timeout_s=10.0,
        idempotency_key=None, request_hash=None, correlation_id=None, run_at=None,
    )  # fmt: skip


async def fill(store: TaskStore, tenants: list[uuid.UUID], rows: int) -> list[list[uuid.UUID]]:
    ids: list[list[uuid.UUID]] = [[] for _ in tenants]
    for start in range(0, rows, 1000):
        for i, t in enumerate(tenants):
            news = [task(t) for _ in range(500)]
            await store.insert_many(news)
            ids[i].extend(n.id for n in news[:20])
        if start % 20_000 == 0:
            say(f"  filled {start + 1000:,} / {rows:,} rows")
    return ids


async def single_submit(store: TaskStore, tenants: list[uuid.UUID], i: int) -> None:
    await store.insert_many([task(tenants[i % len(tenants)])])


async def batch_submit(store: TaskStore, tenants: list[uuid.UUID], i: int) -> None:
    await store.insert_many([task(tenants[i % len(tenants)]) for _ in range(50)])


async def main(args: argparse.Namespace) -> None:
    name, dsn = await create_scratch(args.pg, "ts_rls")
    owner = await create_pool(dsn, min_size=1, max_size=1)
    scoped = await create_pool(dsn, min_size=1, max_size=1, tenant_scoped=True)
    try:
        ts = TenantStore(owner)
        tenants = [await ts.create_tenant(f"t{i}") for i in range(2)]
        say(f"filling {args.rows:,} rows over {len(tenants)} tenants")
        ids = await fill(TaskStore(owner), tenants, args.rows)
        await owner.execute("VACUUM ANALYZE tasks")

        async def get(store: TaskStore, tenants_: list[uuid.UUID], i: int) -> None:
            k = i % len(tenants_)
            await store.get(tenants_[k], ids[k][i % len(ids[k])])

        async def page(store: TaskStore, tenants_: list[uuid.UUID], i: int) -> None:
            await store.list_tasks(tenants_[i % len(tenants_)], limit=50)

        cases: dict[str, Call] = {
            "GET /v1/tasks/{id}": get,
            "GET /v1/tasks (50)": page,
            "submit, 1 task": single_submit,
            "submit, 50 tasks": batch_submit,
        }
        results: dict[str, dict[str, list[float]]] = {}
        for rnd in range(args.rounds):
            for label, call in cases.items():
                for kind, pool, who in (
                    ("owner", owner, tenants[:1]),
                    ("rls", scoped, tenants[:1]),
                    ("rls, switching", scoped, tenants),
                    ("owner, switching", owner, tenants),
                ):
                    store = TaskStore(pool)
                    for i in range(50):  # warm the statement cache
                        await call(store, who, i)
                    start = time.perf_counter()
                    for i in range(args.calls):
                        await call(store, who, i)
                    per = (time.perf_counter() - start) / args.calls * 1e6
                    results.setdefault(label, {}).setdefault(kind, []).append(per)
            say(f"round {rnd + 1}/{args.rounds} done")
        print(f"{'call':<22}{'owner µs':>10}{'RLS µs':>10}{'+':>8}{'switching':>12}{'+':>8}")
        for label, by in results.items():
            o = statistics.median(by["owner"])
            r = statistics.median(by["rls"])
            o2 = statistics.median(by["owner, switching"])
            r2 = statistics.median(by["rls, switching"])
            same, switching = (r - o) / o, (r2 - o2) / o2
            print(f"{label:<22}{o:>10.1f}{r:>10.1f}{same:>+8.1%}{r2:>12.1f}{switching:>+8.1%}")
    finally:
        await owner.close()
        await scoped.close()
        await drop_scratch(args.pg, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgresql://127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
