"""The streams on real Redis: readable keys and entries, the ready index (idle streams are not
read, an emptied stream is unmarked without losing an entry added meanwhile, a lost mark is
found by the sweep), weighted fair shares between tenants, and streams of the old layout still
drained."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any
from uuid import UUID, uuid4

import pytest

from taskstream.broker.connection import connect, is_cluster
from taskstream.broker.consumer import Consumer
from taskstream.broker.keys import Keys, ServedQueue
from taskstream.broker.producer import Producer
from taskstream.cli import stream_table as table
from taskstream.core.config import Settings
from taskstream.core.models import Dispatch, Priority
from taskstream.store.tasks import TaskStore
from taskstream.store.tenants import TenantStore
from taskstream.streams import describe

pytestmark = pytest.mark.cluster_too  # also on a 3-master Redis Cluster

ACME, GLOBEX = uuid4(), uuid4()
NAMES = {ACME: "acme", GLOBEX: "globex"}


async def names(ids: Collection[UUID]) -> Mapping[UUID, str]:
    return {i: NAMES[i] for i in ids if i in NAMES}


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Any]:
    client = connect(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys(settings.redis_prefix)


@pytest.fixture
def producer(redis: Any, keys: Keys) -> Producer:
    return Producer(redis, keys, names)


async def publish(producer: Producer, tenant: UUID, queue: str, n: int, p=Priority.NORMAL):
    ids = [uuid4() for _ in range(n)]
    await producer.publish([Dispatch(i, tenant, queue, p) for i in ids])
    return ids


async def consumer(redis: Any, keys: Keys, *queues: ServedQueue) -> Consumer:
    c = Consumer(redis, keys, f"w-{uuid4().hex[:6]}")
    await c.set_queues(queues)
    return c


async def xreadgroup_calls(redis: Any) -> int:
    """XREADGROUP commands served so far (by every node of a cluster)."""
    if is_cluster(redis):
        per_node = await redis.info("commandstats", target_nodes=redis.ALL_NODES)
        stats = list(per_node.values())
    else:
        stats = [await redis.info("commandstats")]
    return sum(int(s.get("cmdstat_xreadgroup", {}).get("calls", 0)) for s in stats)


async def test_keys_and_entries_read_in_words(redis, keys, producer, settings) -> None:
    (task,) = await publish(producer, ACME, "emails", 1, Priority.HIGH)
    stream = f"{settings.redis_prefix}:{{acme/emails}}:high"
    entries = await redis.xrange(stream)
    assert [fields[b"t"] for _, fields in entries] == [str(task).encode()]
    assert await redis.smembers(f"{settings.redis_prefix}:ready:high") == {stream.encode()}
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed: the key layout was checked with redis-py")
    host_port = settings.redis_url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    shown = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, "XRANGE", stream, "-", "+"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    assert str(task) in shown


async def test_only_ready_streams_are_read(redis, keys, producer) -> None:
    idle = [ServedQueue(ACME, "acme", f"idle-{i}", 1) for i in range(200)]
    c = await consumer(redis, keys, ServedQueue(GLOBEX, "globex", "busy", 1), *idle)
    await c.sweep()
    ids = await publish(producer, GLOBEX, "busy", 5)
    before = await xreadgroup_calls(redis)
    found = await c.read(10, 0, 1)
    assert {e.task_id for e in found} == set(ids)
    # One XREADGROUP for the one ready stream (and none for the 800 idle ones).
    assert await xreadgroup_calls(redis) - before == 1


async def test_an_emptied_stream_is_unmarked_and_marked_again(redis, keys, producer) -> None:
    c = await consumer(redis, keys, ServedQueue(ACME, "acme", "q", 1))
    await publish(producer, ACME, "q", 2)
    assert len(await c.read(10, 0, 1)) == 2
    assert await c.read(10, 0, 1) == []  # nothing new: unmarked (then 1 ms on every stream)
    ready = keys.ready(Priority.NORMAL)
    assert await redis.smembers(ready) == set()
    ids = await publish(producer, ACME, "q", 1)
    assert await redis.smembers(ready) == {keys.stream("acme", "q", Priority.NORMAL).encode()}
    assert [e.task_id for e in await c.read(10, 0, 1)] == ids


async def test_a_lost_mark_is_found_by_the_sweep(redis, keys, producer) -> None:
    c = await consumer(redis, keys, ServedQueue(ACME, "acme", "q", 1))
    ids = await publish(producer, ACME, "q", 3)
    await redis.delete(keys.ready(Priority.NORMAL))  # as if the pipeline's SADD was lost
    await c.sweep()
    assert {e.task_id for e in await c.read(10, 0, 1)} == set(ids)


@pytest.mark.parametrize(("light_weight", "heavy_weight"), [(1, 1), (3, 1), (1, 4)])
async def test_slots_are_shared_by_weight(
    redis, keys, producer, light_weight, heavy_weight
) -> None:
    c = await consumer(
        redis, keys,
        ServedQueue(ACME, "acme", "q", heavy_weight),
        ServedQueue(GLOBEX, "globex", "q", light_weight),
    )  # fmt: skip
    await publish(producer, ACME, "q", 2000)
    await publish(producer, GLOBEX, "q", 2000)
    got: Counter[UUID] = Counter()
    for turn in range(40):
        for e in await c.read(10, turn, 1):
            got[ACME if b"acme" in e.stream else GLOBEX] += 1
    total = light_weight + heavy_weight
    assert got[ACME] + got[GLOBEX] == 400
    assert got[ACME] == pytest.approx(400 * heavy_weight / total, abs=10)


async def test_a_backlog_does_not_delay_another_tenants_new_task(redis, keys, producer) -> None:
    c = await consumer(
        redis, keys, ServedQueue(ACME, "acme", "q", 1), ServedQueue(GLOBEX, "globex", "q", 1)
    )
    await publish(producer, ACME, "q", 10_000)
    await c.read(8, 0, 1)
    (new,) = await publish(producer, GLOBEX, "q", 1)
    assert new in {e.task_id for e in await c.read(8, 1, 1)}


async def test_more_tenants_than_slots_each_get_a_turn(redis, keys, producer) -> None:
    tenants = {uuid4(): f"t{i}" for i in range(30)}
    NAMES.update(tenants)
    c = await consumer(redis, keys, *(ServedQueue(t, n, "q", 1) for t, n in tenants.items()))
    for t in tenants:
        await publish(producer, t, "q", 5)
    seen: set[bytes] = set()
    for turn in range(6):  # 6 reads of 5 slots: 30 entries, one per tenant
        seen.update(e.stream for e in await c.read(5, turn, 1))
    assert len(seen) == 30


async def test_the_old_layout_is_still_drained(redis, keys) -> None:
    legacy = keys.legacy_streams(ACME, "default")[Priority.NORMAL]
    await redis.xgroup_create(legacy, keys.group, id="0", mkstream=True)
    task = uuid4()
    await redis.xadd(legacy, {b"t": task.bytes})  # the old entries: 16 raw bytes
    c = await consumer(redis, keys, ServedQueue(ACME, "acme", "default", 1))
    found = await c.read(10, 0, 1)
    assert [e.task_id for e in found] == [task]
    await c.ack(found)
    assert await redis.xlen(legacy) == 0
    assert await c.read(10, 0, 1) == []  # and then nothing more from it


async def test_reclaim_takes_over_idle_entries(redis, keys, producer) -> None:
    first = await consumer(redis, keys, ServedQueue(ACME, "acme", "q", 1))
    ids = await publish(producer, ACME, "q", 2)
    assert len(await first.read(10, 0, 1)) == 2  # then this consumer "dies"
    second = await consumer(redis, keys, ServedQueue(ACME, "acme", "q", 1))
    await second.sweep()
    assert {e.task_id for e in await second.reclaim(0, 10)} == set(ids)


async def test_the_streams_verb_shows_each_stream(redis, settings, pool, tenants) -> None:
    acme = tenants["acme"]
    await TaskStore(pool).upsert_queue(acme.id, "emails")
    producer = Producer(redis, Keys(settings.redis_prefix), TenantStore(pool).names)
    await publish(producer, acme.id, "emails", 2, Priority.HIGH)
    rows = await describe(settings, "acme")
    assert {r.tenant for r in rows} == {"acme"}
    high = f"{settings.redis_prefix}:{{acme/emails}}:high"
    (row,) = [r for r in rows if r.key == high]
    assert (row.queue, row.priority, row.entries, row.pending, row.ready) == (
        "emails",
        "high",
        2,
        0,
        True,
    )
    assert high in table(rows, settings.redis_prefix)
    assert "redis-cli XRANGE" in table(rows, settings.redis_prefix)


async def test_a_worker_starts_a_new_task_of_another_tenant_before_a_backlog_drains(
    api, settings, tenants, pool, start_worker
) -> None:
    """End to end: 2,000 tasks of acme's that take 20 ms each on 8 slots (5 s of work), then
    one of globex's: with fair shares it starts within a few reads, long before acme is done."""
    acme, globex = tenants["acme"], tenants["globex"]
    sleep = {"type": "examples.sleep", "payload": {"seconds": 0.02}}
    for _ in range(4):
        r = await api.post("/v1/tasks/batch", json={"tasks": [sleep] * 500}, headers=acme.auth())
        assert r.status_code == 201
    await start_worker(concurrency=8)
    r = await api.post("/v1/tasks", json=sleep, headers=globex.auth())
    new = UUID(r.json()["id"])

    async def started() -> bool:
        return bool(
            await pool.fetchval("SELECT started_at IS NOT NULL FROM tasks WHERE id = $1", new)
        )

    deadline = asyncio.get_running_loop().time() + 20
    while not await started():
        assert asyncio.get_running_loop().time() < deadline, "globex's task never started"
        await asyncio.sleep(0.02)
    left = await pool.fetchval(
        "SELECT count(*) FROM tasks WHERE tenant_id = $1 AND status = 'pending'", acme.id
    )
    assert left > 1000, f"globex waited for acme's backlog: only {left} of 2,000 were left"
