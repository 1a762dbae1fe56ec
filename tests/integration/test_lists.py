"""Task lists: every combination of filters (each is its own statement) against a model."""

from __future__ import annotations

import itertools
from typing import Any

from taskstream.core.models import TaskStatus
from taskstream.store.tasks import TaskStore

from .conftest import new_task

TYPES = ("mail.send", "report.build")
QUEUES = ("default", "slow")
STATUSES = (TaskStatus.PENDING, TaskStatus.COMPLETED, TaskStatus.FAILED)


async def seed(store: TaskStore, pool: Any, tenant_id: Any) -> list[dict[str, Any]]:
    tasks = [new_task(tenant_id, type=TYPES[i % 2], queue=QUEUES[(i // 2) % 2]) for i in range(24)]
    await store.insert_many(tasks)
    for i, t in enumerate(tasks):
        status = STATUSES[(i // 4) % 3]
        await pool.execute("UPDATE tasks SET status = $2 WHERE id = $1", t.id, str(status))
    rows = await pool.fetch(
        "SELECT id, type, queue, status FROM tasks WHERE tenant_id = $1", tenant_id
    )
    return [dict(r) for r in rows]


async def test_every_filter_combination_and_the_cursor(store, pool, tenants) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    rows = await seed(store, pool, acme.id)
    await seed(store, pool, globex.id)  # another tenant's rows never show
    for status, type_, queue in itertools.product(
        (None, *STATUSES), (None, *TYPES), (None, *QUEUES)
    ):
        want = sorted(
            (
                r["id"] for r in rows
                if (status is None or r["status"] == str(status))
                and (type_ is None or r["type"] == type_)
                and (queue is None or r["queue"] == queue)
            ),
            reverse=True,
        )  # fmt: skip
        got = await store.list_tasks(acme.id, status=status, type=type_, queue=queue, limit=500)
        assert [t.id for t in got] == want, (status, type_, queue)
        if len(want) > 1:  # the second page: strictly older than the cursor
            rest = await store.list_tasks(
                acme.id, status=status, type=type_, queue=queue, before=want[0], limit=500
            )
            assert [t.id for t in rest] == want[1:]


async def test_dead_letter_list_filters(store, pool, tenants) -> None:
    acme = tenants["acme"]
    rows = await seed(store, pool, acme.id)
    for type_, queue in itertools.product((None, *TYPES), (None, *QUEUES)):
        want = sorted(
            (
                r["id"] for r in rows
                if r["status"] == "failed"
                and (type_ is None or r["type"] == type_)
                and (queue is None or r["queue"] == queue)
            ),
            reverse=True,
        )  # fmt: skip
        got = await store.list_dead(acme.id, task_type=type_, queue=queue, before=None, limit=500)
        assert [t.id for t in got] == want, (type_, queue)
        assert want  # the seed has failed tasks in every (type, queue) pair
