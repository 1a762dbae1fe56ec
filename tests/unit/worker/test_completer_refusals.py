"""The completer classifies write errors: an outage is waited out, anything else is tried a few
times, then row by row; a refused row becomes a failed attempt, or is dropped; every slot comes
back. A scripted store stands in for PostgreSQL (the completer's collaborator, not asyncpg)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest

from taskstream.core.errors import StoreUnavailable
from taskstream.core.models import Finish, TaskStatus
from taskstream.worker import completer as completer_module
from taskstream.worker.completer import MAX_TRIES, Completer


class RefusingStore:
    """Refuses any statement holding a refused id (as PostgreSQL fails a whole statement);
    ``refuse_failed`` refuses those ids even as failures; ``outages`` statements fail first."""

    def __init__(self, refused: set[UUID], *, refuse_failed: bool = False, outages: int = 0):
        self.refused = refused
        self.refuse_failed = refuse_failed
        self.outages = outages
        self.statements: list[list[Finish]] = []
        self.rows: dict[UUID, Finish] = {}

    async def finish(self, items: Sequence[Finish], worker: str | None = None) -> set[UUID]:
        self.statements.append(list(items))
        if self.outages:
            self.outages -= 1
            raise StoreUnavailable("PostgreSQL unavailable: ConnectionResetError")
        for f in items:
            if f.task_id in self.refused and (
                self.refuse_failed or f.status is not TaskStatus.FAILED
            ):
                raise ValueError("invalid input syntax for type json")
        self.rows.update((f.task_id, f) for f in items)
        return {f.task_id for f in items}

    async def confirm_finished(self, items: Sequence[Finish]) -> set[UUID]:
        return {f.task_id for f in items if f.task_id in self.rows}


def outcome() -> Finish:
    return Finish(task_id=uuid4(), lease_epoch=1, status=TaskStatus.COMPLETED, result_json="1")


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: Any) -> None:
    real_sleep = asyncio.sleep
    monkeypatch.setattr(completer_module.asyncio, "sleep", lambda _s: real_sleep(0))


def make(store: RefusingStore) -> tuple[Completer, list[UUID]]:
    done: list[UUID] = []
    c = Completer(store, None, "w1", done.append)  # type: ignore[arg-type]  # no acks: table claims
    return c, done


async def test_refused_row_fails_alone_after_bounded_tries() -> None:
    good, bad = [outcome(), outcome()], outcome()
    store = RefusingStore({bad.task_id})
    c, done = make(store)
    await c.flush([(good[0], None), (bad, None), (good[1], None)])
    assert len(store.statements) == MAX_TRIES + 3 + 1  # the batch, the rows, bad's failure
    assert store.rows[good[0].task_id].status is TaskStatus.COMPLETED
    failed = store.rows[bad.task_id]
    assert failed.status is TaskStatus.FAILED and failed.result_json is None
    assert failed.error == "outcome not storable: ValueError: invalid input syntax for type json"
    assert sorted(done) == sorted(f.task_id for f in [*good, bad])


async def test_row_refused_even_as_a_failure_is_dropped_and_its_slot_comes_back() -> None:
    good, bad = outcome(), outcome()
    store = RefusingStore({bad.task_id}, refuse_failed=True)
    c, done = make(store)
    await c.flush([(bad, None), (good, None)])
    assert set(store.rows) == {good.task_id}
    assert sorted(done) == sorted([good.task_id, bad.task_id])


async def test_an_outage_is_waited_out_without_counting_as_a_refusal() -> None:
    only = outcome()
    store = RefusingStore(set(), outages=MAX_TRIES * 3)
    c, done = make(store)
    await c.flush([(only, None)])
    assert store.rows[only.task_id].status is TaskStatus.COMPLETED
    assert done == [only.task_id]
