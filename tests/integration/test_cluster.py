"""What only a Redis Cluster can show: queues spread over several masters are all drained, and a
master that restarts without its data is noticed (its own sentinel) and its tasks run again,
each exactly once. Test modules marked ``cluster_too`` run the rest of the suite on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskstream.broker.connection import connect, one_key_per_node
from taskstream.broker.keys import Keys
from taskstream.core.config import Settings
from taskstream.core.models import Priority
from taskstream.devcluster import LocalCluster


@pytest.fixture
def redis_backend() -> str:
    return "cluster"


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Any]:
    client = connect(settings.redis_url)
    await client.initialize()
    yield client
    await client.aclose()


def node_of(redis: Any, keys: Keys, queue: str) -> str:
    """The master ('host:port') holding the acme tenant's streams of ``queue``."""
    return str(redis.get_node_from_key(keys.stream("acme", queue, Priority.NORMAL)).name)


def queues_per_node(redis: Any, keys: Keys) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    i = 0
    while len(found) < 3 or min(len(q) for q in found.values()) < 2:
        queue = f"q{i}"
        found.setdefault(node_of(redis, keys, queue), []).append(queue)
        i += 1
    return found


async def submit_effects(api: Any, tenant: Any, queue: str, first: int, n: int) -> list[str]:
    body = {
        "tasks": [
            {"type": "test.effect", "queue": queue, "payload": {"value": first + i}}
            for i in range(n)
        ]
    }
    r = await api.post("/v1/tasks/batch", json=body, headers=tenant.auth())
    assert r.status_code == 201, r.text
    return [i["task"]["id"] for i in r.json()["items"]]


async def exactly_once(pool: Any, ids: list[str]) -> None:
    rows = await pool.fetch(
        "SELECT t.id::text AS id, t.status, count(e.id) AS effects FROM tasks t"
        " LEFT JOIN test_effects e ON e.task_id = t.id WHERE t.id = ANY($1::uuid[])"
        " GROUP BY t.id, t.status",
        ids,
    )
    assert len(rows) == len(ids)
    assert {(r["status"], r["effects"]) for r in rows} == {("completed", 1)}


async def test_queues_on_every_master_are_drained(
    api, tenants, settings, redis, start_worker, pool, until
) -> None:
    keys = Keys(settings.redis_prefix)
    spread = queues_per_node(redis, keys)
    assert len(spread) == 3  # the queues' streams live on three masters
    ids: list[str] = []
    for n, queue in enumerate(q for qs in spread.values() for q in qs):
        ids += await submit_effects(api, tenants["acme"], queue, 100 * n, 10)
    await start_worker(concurrency=8)

    async def all_done() -> bool:
        left = await pool.fetchval(
            "SELECT count(*) FROM tasks WHERE id = ANY($1::uuid[]) AND status <> 'completed'", ids
        )
        return int(left) == 0

    await until(all_done, timeout_s=60)
    await exactly_once(pool, ids)
    sentinels = await one_key_per_node(redis, keys.sentinel)
    assert len({node_of_key(redis, k) for k in sentinels}) == 3  # one sentinel per master


def node_of_key(redis: Any, key: str) -> str:
    return str(redis.get_node_from_key(key).name)


async def test_a_master_restarted_empty_is_noticed_and_its_tasks_run_once(
    api, tenants, settings, redis, redis_cluster: LocalCluster, promoter, start_worker, pool, until
) -> None:
    keys = Keys(settings.redis_prefix)
    spread = queues_per_node(redis, keys)
    victim_node = sorted(spread)[0]
    victim = next(i for i, p in enumerate(redis_cluster.ports) if victim_node.endswith(f":{p}"))
    lost_queue, kept_queue = spread[victim_node][0], spread[sorted(spread)[1]][0]
    lost = await submit_effects(api, tenants["acme"], lost_queue, 0, 20)
    kept = await submit_effects(api, tenants["acme"], kept_queue, 1000, 20)
    stream = keys.stream("acme", lost_queue, Priority.NORMAL)

    async def published() -> bool:
        return int(await redis.xlen(stream)) == len(lost)

    await until(published)
    await promoter.reconcile()  # every master's sentinel is set

    redis_cluster.kill(victim)
    redis_cluster.restart(victim)  # empty: no RDB, no AOF; same slots
    assert await redis.xlen(stream) == 0

    # No worker ran yet: the entries are gone; the reconciler notices that master's sentinel is
    # missing and the relay publishes the tasks again, onto the restarted master.
    await until(published, timeout_s=30)
    await start_worker(concurrency=8)

    async def all_done() -> bool:
        left = await pool.fetchval(
            "SELECT count(*) FROM tasks WHERE id = ANY($1::uuid[]) AND status <> 'completed'",
            lost + kept,
        )
        return int(left) == 0

    await until(all_done, timeout_s=60)
    await exactly_once(pool, lost + kept)
