"""A saturated worker refills its slots in batches: it waits until a quarter of them are free
(or a short deadline passes) instead of claiming every slot as it frees."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest

from taskstream.core.config import Settings
from taskstream.worker import runner
from taskstream.worker.registry import Registry


def busy_worker(concurrency: int, running: int) -> tuple[runner.Worker, list[UUID]]:
    worker = runner.Worker(Settings(), Registry(), concurrency=concurrency)
    ids = [uuid4() for _ in range(running)]
    tenant = uuid4()
    for task_id in ids:
        worker.inflight[task_id] = SimpleNamespace(task=SimpleNamespace(tenant_id=tenant))  # type: ignore[assignment]
        worker.slots.take(tenant)
    return worker, ids


async def test_waits_for_a_quarter_of_the_slots(monkeypatch: Any) -> None:
    monkeypatch.setattr(runner, "REFILL_WAIT_S", 60.0)
    worker, ids = busy_worker(concurrency=8, running=7)
    waiting = asyncio.create_task(worker._wait_for_slots(worker._refill))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()  # 1 of 8 free
    worker._free(ids[0])  # 2 of 8: a quarter
    assert await asyncio.wait_for(waiting, 5) == 2
    worker.threads.shutdown()


async def test_one_free_slot_is_not_claimed_until_a_second_frees(monkeypatch: Any) -> None:
    monkeypatch.setattr(runner, "REFILL_WAIT_S", 60.0)
    worker, ids = busy_worker(concurrency=12, running=11)  # refill at 3 free slots
    waiting = asyncio.create_task(worker._wait_for_slots(worker._refill))
    worker._free(ids[0])
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()  # 2 free: still waiting
    worker._free(ids[1])
    assert await asyncio.wait_for(waiting, 5) == 3
    worker.threads.shutdown()


@pytest.mark.parametrize("running", [11, 0])
async def test_deadline_or_idle_returns_what_is_free(monkeypatch: Any, running: int) -> None:
    monkeypatch.setattr(runner, "REFILL_WAIT_S", 0.0)
    worker, _ = busy_worker(concurrency=12, running=running)
    assert await worker._wait_for_slots(worker._refill) == 12 - running
    worker.threads.shutdown()
