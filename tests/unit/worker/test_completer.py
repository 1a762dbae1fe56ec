"""The completer's batching: a small batch waits briefly for outcomes of attempts still running,
and the last attempt in flight is written at once. A recording store stands in for PostgreSQL
(the completer's own collaborators, not asyncpg or redis-py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest

from taskstream.core.models import Finish, TaskStatus
from taskstream.worker import completer as completer_module
from taskstream.worker.completer import Completer


class RecordingStore:
    def __init__(self) -> None:
        self.writes: list[list[UUID]] = []

    async def finish(self, items: Sequence[Finish], worker: str | None = None) -> set[UUID]:
        self.writes.append([f.task_id for f in items])
        return {f.task_id for f in items}


def outcome() -> Finish:
    return Finish(task_id=uuid4(), lease_epoch=1, status=TaskStatus.COMPLETED)


def make(in_flight: int, min_batch: int) -> tuple[Completer, RecordingStore, list[UUID]]:
    store = RecordingStore()
    done: list[UUID] = []
    c = Completer(
        store,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # no entries to ack: all claimed from the table
        "w1",
        done.append,
        in_flight=lambda: in_flight,
        min_batch=min_batch,
    )
    return c, store, done


async def settle(c: Completer) -> None:
    await asyncio.wait_for(c.queue.join(), 5)


async def writes_of_one_outcome(c: Completer, store: RecordingStore) -> int:
    """Put one outcome, wait until it is written; the statements it took, checked to hold it."""
    runner = asyncio.create_task(c.run())
    only = outcome()
    c.put(only, None)
    await settle(c)
    runner.cancel()
    assert store.writes == [[only.task_id]]
    return len(store.writes)


async def test_small_batch_waits_for_outcomes_of_running_attempts(monkeypatch: Any) -> None:
    monkeypatch.setattr(completer_module, "GATHER_STEP_S", 0.05)  # generous: no race with put
    c, store, done = make(in_flight=3, min_batch=3)
    runner = asyncio.create_task(c.run())
    first = outcome()
    c.put(first, None)
    await asyncio.sleep(0)  # the completer takes it and waits: two attempts are still running
    rest = [outcome(), outcome()]
    for f in rest:
        c.put(f, None)
    await settle(c)
    runner.cancel()
    assert store.writes == [[first.task_id, rest[0].task_id, rest[1].task_id]]
    assert done == store.writes[0]
    assert c.unwritten == 0


async def test_last_attempt_in_flight_is_written_at_once(monkeypatch: Any) -> None:
    monkeypatch.setattr(completer_module, "GATHER_STEP_S", 60.0)  # a wait would hang the test
    c, store, _ = make(in_flight=1, min_batch=5)
    assert await writes_of_one_outcome(c, store) == 1


@pytest.mark.parametrize("steps", [0, 1])
async def test_wait_is_bounded(monkeypatch: Any, steps: int) -> None:
    monkeypatch.setattr(completer_module, "GATHER_STEP_S", 0.0)
    monkeypatch.setattr(completer_module, "GATHER_STEPS", steps)
    c, store, _ = make(in_flight=100, min_batch=50)  # others run, but never finish
    assert await writes_of_one_outcome(c, store) == 1
