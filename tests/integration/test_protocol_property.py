"""The lease protocol as a state machine, against the real PostgreSQL (no mocks).

A hypothesis ``RuleBasedStateMachine`` plays three workers against a handful of tasks through
``TaskStore``: claims (by id and from the table), heartbeats, finishes (complete / retry / fail,
alone or batched), releases, crashes (a worker forgets its leases), zombie writes with stale
epochs, lease expiry (time passing), promotion, rescue, ``fail_lost`` and cancellation. A model
predicts the exact outcome of every call and the exact row afterwards; after every step the
database is compared with the model and the protocol properties are asserted:

1. a heartbeat / finish / release succeeds iff the caller's epoch is the current one and the
   task is processing; a fenced-out write changes nothing;
2. a task is completed at most once, and a completed row never changes again;
3. no task is lost: every task is in one of the six states, a processing task has a lease that
   can expire, a pending or scheduled task can still be claimed (attempts left);
4. attempts never exceed max_attempts; a claim refuses a task whose attempts are spent;
5. lease_epoch only grows;
6. every status change seen in the database is an edge of ``core.states.TRANSITIONS``.

The example-based tests at the end pin the sharpest cases explicitly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import hypothesis
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from taskstream.core.config import Settings
from taskstream.core.errors import Conflict
from taskstream.core.ids import uuid7
from taskstream.core.models import (
    TERMINAL_STATUSES,
    ClaimedTask,
    Finish,
    NewTask,
    Priority,
    TaskStatus,
)
from taskstream.core.states import TRANSITIONS
from taskstream.store.database import create_pool
from taskstream.store.tasks import TaskStore
from taskstream.store.tenants import TenantStore

S = TaskStatus
T = TypeVar("T")
WORKERS = ("w1", "w2", "w3")
KINDS = ("completed", "retry", "fail")
MAX_LIVE, MAX_TASKS = 3, 8  # tasks not yet finished; tasks in one example
LEASE_S = 600.0  # never runs out by itself during a test: expiry is an explicit step

EXPIRE_SQL = """UPDATE tasks SET lease_expires_at = now() - interval '1 second'
WHERE id = $1 AND status = 'processing'"""
MAKE_DUE_SQL = "UPDATE tasks SET run_at = now() - interval '1 second' WHERE status = 'scheduled'"
# Every row, whether its lease has run out, and its attempt log, in one round trip.
ROWS_SQL = """SELECT t.*, t.lease_expires_at < now() AS expired,
       extract(epoch FROM t.lease_expires_at - now())::float8 AS lease_left,
       (SELECT coalesce(json_agg(json_build_array(a.attempt, a.outcome, a.worker)
                                 ORDER BY a.finished_at, a.attempt), '[]')
        FROM task_attempts a WHERE a.task_id = t.id) AS log
FROM tasks t"""


# -- plumbing: our own loop and pool (the async fixtures belong to another loop) -------------


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = self.run(create_pool(settings.database_url, min_size=1, max_size=2))
        self.store = TaskStore(self.pool)
        self.tenant_id: UUID = self.run(TenantStore(self.pool).create_tenant("acme"))
        self.last_ms = 0

    def new_id(self) -> UUID:
        """A UUIDv7 later than every earlier one (``uuid7()`` alone is random within a
        millisecond): the table's claim order is then creation order, and runs repeat."""
        self.last_ms = max(time.time_ns() // 1_000_000, self.last_ms + 1)
        return uuid7(self.last_ms)

    def run(self, aw: Awaitable[T]) -> T:
        return self.loop.run_until_complete(aw)

    def close(self) -> None:
        try:
            self.run(self.pool.close())
        finally:
            self.loop.close()

    def submit(
        self,
        max_attempts: int,
        *,
        delayed: bool = False,
        priority: Priority = Priority.NORMAL,
        visibility_timeout_s: float | None = None,
    ) -> UUID:
        run_at = datetime.now(UTC) + timedelta(hours=1) if delayed else None
        task = NewTask(
            id=self.new_id(),
            tenant_id=self.tenant_id,
            type="proto.noop",
            queue="default",
            priority=priority,
            payload_json=b"{}",
            max_attempts=max_attempts,
            timeout_s=30.0,
            idempotency_key=None,
            request_hash=None,
            correlation_id=None,
            run_at=run_at,
            visibility_timeout_s=visibility_timeout_s,
        )
        [inserted] = self.run(self.store.insert_many([task]))
        assert inserted.created
        assert inserted.task.status is (S.SCHEDULED if delayed else S.PENDING)
        return task.id

    def claim(self, ids: Sequence[UUID], worker: str) -> list[ClaimedTask]:
        return self.run(self.store.claim(list(ids), worker, LEASE_S))

    def expire(self, task_id: UUID) -> None:
        self.run(self.pool.execute(EXPIRE_SQL, task_id))

    def finish(self, items: Sequence[Finish], worker: str) -> set[UUID]:
        return self.run(self.store.finish(list(items), worker=worker))

    def heartbeat(self, leases: Sequence[tuple[UUID, int]]) -> set[UUID]:
        return self.run(self.store.heartbeat(list(leases), LEASE_S))

    def release(self, leases: Sequence[tuple[UUID, int]]) -> set[UUID]:
        return self.run(self.store.release(list(leases)))

    def promote(self) -> set[UUID]:
        self.run(self.pool.execute(MAKE_DUE_SQL))
        return {d.task_id for d in self.run(self.store.promote_due(100))}

    def rows(self) -> dict[UUID, dict[str, Any]]:
        """Each task's row; ``log`` is its attempt history as (attempt, outcome, worker)."""
        out = {}
        for r in self.run(self.pool.fetch(ROWS_SQL)):
            row = dict(r)
            row["log"] = [tuple(x) for x in json.loads(row["log"])]
            out[r["id"]] = row
        return out

    def row(self, task_id: UUID) -> dict[str, Any]:
        """One task's row, without the lease time left (it changes as time passes)."""
        row = self.rows()[task_id]
        del row["lease_left"]
        return row


@pytest.fixture
def harness(settings: Settings) -> Iterator[Harness]:
    h = Harness(settings)
    try:
        yield h
    finally:
        h.close()


def finish_for(worker: str, lease: Lease, kind: str) -> Finish:
    """What a worker writes for an attempt, decided as ``worker.executor.decide`` does: a retry
    on the last attempt becomes a failure."""
    if kind == "completed":
        return Finish(
            task_id=lease.task_id,
            lease_epoch=lease.epoch,
            status=S.COMPLETED,
            result_json=json.dumps({"by": worker, "epoch": lease.epoch}),
            duration_s=0.01,
        )
    if kind == "retry" and lease.attempt < lease.max_attempts:
        return Finish(
            task_id=lease.task_id,
            lease_epoch=lease.epoch,
            status=S.SCHEDULED,
            outcome="retry",
            error=f"retry by {worker}@{lease.epoch}",
            run_at=datetime.now(UTC),
            duration_s=0.01,
        )
    return Finish(
        task_id=lease.task_id,
        lease_epoch=lease.epoch,
        status=S.FAILED,
        outcome="fail",
        error=f"fail by {worker}@{lease.epoch}",
        duration_s=0.01,
    )


def lost_error(attempt: int) -> str:
    return f"worker_lost: lease expired during attempt {attempt}"


# -- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """What a worker believes it holds (from its ClaimedTask)."""

    task_id: UUID
    epoch: int
    attempt: int
    max_attempts: int


@dataclass
class TaskModel:
    max_attempts: int
    priority: Priority
    status: TaskStatus
    lease_s: float  # the task's own visibility timeout, or the claimer's default
    epoch: int = 0
    attempts: int = 0
    owner: str | None = None
    expired: bool = False
    result: Any = None
    last_error: str | None = None
    completions: int = 0
    log: list[tuple[int, str, str | None]] = field(default_factory=list)

    def holds(self, epoch: int) -> bool:
        return self.status is S.PROCESSING and self.epoch == epoch

    def claimable(self) -> bool:
        ready = self.status is S.PENDING or (self.status is S.PROCESSING and self.expired)
        return ready and self.attempts < self.max_attempts

    def spent(self) -> bool:
        return self.attempts >= self.max_attempts

    def claim(self, owner: str) -> None:
        if self.status is S.PROCESSING:  # a takeover: the previous holder's attempt is lost
            self.last_error = lost_error(self.attempts)
            self.log.append((self.attempts, "worker_lost", None))
        self.status, self.owner, self.expired = S.PROCESSING, owner, False
        self.epoch += 1
        self.attempts += 1

    def finish(self, f: Finish, worker: str) -> None:
        assert self.holds(f.lease_epoch)
        self.status, self.owner, self.expired = f.status, None, False
        self.result = None if f.result_json is None else json.loads(f.result_json)
        self.last_error = f.error if f.error is not None else self.last_error
        self.log.append((self.attempts, f.outcome, worker))
        if f.status is S.COMPLETED:
            self.completions += 1

    def release(self) -> None:
        self.status, self.owner, self.expired = S.PENDING, None, False
        self.attempts = max(self.attempts - 1, 0)

    def lose(self) -> None:
        """Rescue / fail_lost of an expired lease."""
        self.status = S.FAILED if self.spent() else S.PENDING
        self.owner, self.expired = None, False
        self.last_error = lost_error(self.attempts)
        self.log.append((self.attempts, "worker_lost", None))


def check_row(row: dict[str, Any], m: TaskModel) -> None:
    """The row is what the model predicts, and is a sane row on its own."""
    status = S(row["status"])  # one of the six states (a ValueError otherwise)
    result = None if row["result"] is None else json.loads(row["result"])
    actual = (status, row["lease_epoch"], row["attempts"], row["max_attempts"])
    assert actual == (m.status, m.epoch, m.attempts, m.max_attempts)
    assert (row["lease_owner"], row["last_error"], result) == (m.owner, m.last_error, m.result)
    leased = status is S.PROCESSING
    # (3) a processing task has a lease that can run out; no other task has one.
    assert (row["lease_expires_at"] is not None) is leased
    assert (row["lease_owner"] is not None) is leased
    assert bool(row["expired"]) is (leased and m.expired)
    if leased and not m.expired:  # a fresh lease runs for the task's own visibility timeout
        assert m.lease_s - 60 < row["lease_left"] <= m.lease_s
    assert (row["finished_at"] is not None) is (status in TERMINAL_STATUSES)
    # (4) attempts are bounded; a waiting task can still be claimed.
    assert 0 <= row["attempts"] <= row["max_attempts"]
    if status in {S.PENDING, S.SCHEDULED}:
        assert row["attempts"] < row["max_attempts"], "a waiting task nobody can claim"
    # (2) at most one completion, in the model and in the attempt log.
    assert m.completions == (1 if status is S.COMPLETED else 0)
    assert Counter(row["log"]) == Counter(m.log)
    assert [o for _, o, _ in row["log"]].count("completed") <= 1


def check_step(before: dict[str, Any], after: dict[str, Any]) -> None:
    """(2), (5), (6): what one step may do to a row."""
    old, new = S(before["status"]), S(after["status"])
    assert after["lease_epoch"] >= before["lease_epoch"], "lease_epoch went back"
    if old is S.COMPLETED:
        assert after == before, "a completed task changed"
    if new is not old:
        assert new in TRANSITIONS[old], f"{old} -> {new} is not an edge"
    elif after["lease_epoch"] != before["lease_epoch"]:
        assert new is S.PROCESSING and S.PROCESSING in TRANSITIONS[S.PROCESSING]


# -- the state machine -------------------------------------------------------------------------


class ProtocolMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.h = harness
        # A fresh start per example (DELETE cascades to the attempt log; cheaper than TRUNCATE).
        self.h.run(self.h.pool.execute("DELETE FROM tasks"))
        self.model: dict[UUID, TaskModel] = {}
        self.leases: dict[str, list[Lease]] = {w: [] for w in WORKERS}
        self.seen: dict[UUID, dict[str, Any]] = {}

    def busy(self) -> list[str]:
        return [w for w in WORKERS if self.leases[w]]

    def claimed(self) -> list[UUID]:
        return [i for i, m in self.model.items() if m.epoch > 0]

    def live(self) -> list[UUID]:
        return [i for i, m in self.model.items() if m.status not in TERMINAL_STATUSES]

    def having(self, *statuses: TaskStatus) -> list[UUID]:
        return [i for i, m in self.model.items() if m.status in statuses]

    def _submit(
        self, max_attempts: int, delayed: bool, priority: Priority, vt: float | None
    ) -> UUID:
        task_id = self.h.submit(
            max_attempts, delayed=delayed, priority=priority, visibility_timeout_s=vt
        )
        status = S.SCHEDULED if delayed else S.PENDING
        self.model[task_id] = TaskModel(max_attempts, priority, status, vt or LEASE_S)
        return task_id

    def _take(self, worker: str, got: Sequence[ClaimedTask], expected: set[UUID]) -> None:
        assert {c.id for c in got} == expected
        for c in got:
            m = self.model[c.id]
            m.claim(worker)
            actual = (c.lease_epoch, c.attempt, c.max_attempts, c.lease_s)
            assert actual == (m.epoch, m.attempts, m.max_attempts, m.lease_s)
            self.leases[worker].append(Lease(c.id, c.lease_epoch, c.attempt, c.max_attempts))

    # -- tasks arrive ------------------------------------------------------------------------

    @initialize(target=tasks, max_attempts=st.integers(1, 3))
    def first_task(self, max_attempts: int) -> UUID:
        return self._submit(max_attempts, False, Priority.NORMAL, None)

    @precondition(lambda self: len(self.live()) < MAX_LIVE and len(self.model) < MAX_TASKS)
    @rule(
        target=tasks,
        max_attempts=st.integers(1, 3),
        delayed=st.booleans(),
        priority=st.sampled_from([Priority.HIGH, Priority.NORMAL]),
        vt=st.sampled_from([None, 300.0, 1200.0]),
    )
    def submit(
        self, max_attempts: int, delayed: bool, priority: Priority, vt: float | None
    ) -> UUID:
        return self._submit(max_attempts, delayed, priority, vt)

    # -- claims ------------------------------------------------------------------------------

    @rule(worker=st.sampled_from(WORKERS), ids=st.lists(tasks, min_size=1, max_size=3))
    def claim(self, worker: str, ids: list[UUID]) -> None:
        expected = {i for i in ids if self.model[i].claimable()}
        got = self.h.claim(ids, worker)
        # (4) a task whose attempts are spent is never handed out.
        assert not any(self.model[c.id].spent() for c in got)
        self._take(worker, got, expected)

    @precondition(lambda self: self.having(S.PENDING))
    @rule(worker=st.sampled_from(WORKERS), limit=st.integers(1, 2))
    def claim_from_table(self, worker: str, limit: int) -> None:
        ready = sorted((m.priority, i) for i, m in self.model.items() if m.status is S.PENDING)
        expected = {i for _, i in ready[:limit]}
        got = self.h.run(self.h.store.claim_from_table(None, limit, worker, LEASE_S))
        assert not any(self.model[c.id].spent() for c in got)
        self._take(worker, got, expected)

    # -- time passes, workers die ------------------------------------------------------------

    @precondition(lambda self: self.having(S.PROCESSING))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(self.having(S.PROCESSING)), label="task")
        self.h.expire(task)
        self.model[task].expired = True

    @precondition(lambda self: self.busy())
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        self.leases[data.draw(st.sampled_from(self.busy()), label="worker")] = []

    # -- the lease holder's writes -----------------------------------------------------------

    @precondition(lambda self: self.busy())
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(self.busy()), label="worker")
        leases = self.leases[worker]
        expected = {x.task_id for x in leases if self.model[x.task_id].holds(x.epoch)}
        got = self.h.heartbeat([(x.task_id, x.epoch) for x in leases])
        assert got == expected  # (1)
        for i in got:
            self.model[i].expired = False
        # The worker cancels the attempts whose lease it lost.
        self.leases[worker] = [x for x in leases if self.model[x.task_id].holds(x.epoch)]

    @precondition(lambda self: self.busy())
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(self.busy()), label="worker")
        held = self.leases[worker]
        picks = data.draw(
            st.lists(st.sampled_from(range(len(held))), min_size=1, unique=True), label="leases"
        )
        chosen = [held[p] for p in picks]
        kinds = data.draw(
            st.lists(st.sampled_from(KINDS), min_size=len(chosen), max_size=len(chosen)),
            label="kinds",
        )
        items = [finish_for(worker, x, k) for x, k in zip(chosen, kinds, strict=True)]
        expected = {f.task_id for f in items if self.model[f.task_id].holds(f.lease_epoch)}
        got = self.h.finish(items, worker)
        assert got == expected  # (1)
        for f in items:
            if f.task_id in got and self.model[f.task_id].holds(f.lease_epoch):
                self.model[f.task_id].finish(f, worker)
        self.leases[worker] = [x for x in held if x not in chosen]

    @precondition(lambda self: self.busy())
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(self.busy()), label="worker")
        leases = self.leases[worker]
        expected = {x.task_id for x in leases if self.model[x.task_id].holds(x.epoch)}
        got = self.h.release([(x.task_id, x.epoch) for x in leases])
        assert got == expected  # (1)
        for i in got:
            self.model[i].release()
        self.leases[worker] = []

    @precondition(lambda self: self.claimed())
    @rule(
        data=st.data(),
        back=st.integers(0, 2),
        action=st.sampled_from(["heartbeat", "release", *KINDS]),
    )
    def write_with_epoch(self, data: st.DataObject, back: int, action: str) -> None:
        """Any writer naming any epoch (a zombie, a duplicated message, a late retry of a
        write): it lands iff the epoch is the current one and the task is processing."""
        task = data.draw(st.sampled_from(self.claimed()), label="task")
        m = self.model[task]
        epoch = m.epoch - back
        ok = m.holds(epoch)
        if action == "heartbeat":
            got = self.h.heartbeat([(task, epoch)])
            m.expired = m.expired and not ok
        elif action == "release":
            got = self.h.release([(task, epoch)])
            if ok:
                m.release()
        else:
            f = finish_for("other", Lease(task, epoch, m.attempts, m.max_attempts), action)
            got = self.h.finish([f], "other")
            if ok:
                m.finish(f, "other")
        assert got == ({task} if ok else set())  # (1); the rows are checked by the invariant

    # -- maintenance and users ---------------------------------------------------------------

    @precondition(lambda self: self.having(S.PROCESSING, S.SCHEDULED))
    @rule(data=st.data())
    def maintenance(self, data: st.DataObject) -> None:
        """The scheduler's sweeps and a user's cancel (one rule, so they do not crowd out the
        workers' steps)."""
        actions = ["cancel"]
        actions += ["promote"] if self.having(S.SCHEDULED) else []
        actions += ["rescue", "fail_lost"] if self.having(S.PROCESSING) else []
        action = data.draw(st.sampled_from(actions), label="action")
        if action == "promote":
            self.promote()
        elif action == "rescue":
            self.rescue()
        elif action == "cancel":
            self.cancel(data.draw(st.sampled_from(list(self.model)), label="task"))
        else:
            some = st.sampled_from(self.having(S.PROCESSING)) | st.sampled_from(list(self.model))
            self.fail_lost(data.draw(st.lists(some, min_size=1, max_size=2), label="ids"))

    def promote(self) -> None:
        expected = set(self.having(S.SCHEDULED))
        assert self.h.promote() == expected
        for i in expected:
            self.model[i].status = S.PENDING

    def rescue(self) -> None:
        lost = [i for i in self.having(S.PROCESSING) if self.model[i].expired]
        for i in lost:
            self.model[i].lose()
        expected = {i: self.model[i].status for i in lost}
        got = self.h.run(self.h.store.rescue_expired(100, 0.0))
        assert dict(got) == expected
        assert len(got) == len(expected)

    def fail_lost(self, ids: list[UUID]) -> None:
        models = {i: self.model[i] for i in ids}
        expected = {i for i, m in models.items() if m.status is S.PROCESSING and m.expired}
        expected = {i for i in expected if models[i].spent()}
        assert self.h.run(self.h.store.fail_lost(ids)) == expected
        for i in expected:
            self.model[i].lose()
            assert self.model[i].status is S.FAILED

    def cancel(self, task: UUID) -> None:
        m = self.model[task]
        if m.status in {S.PENDING, S.SCHEDULED}:
            record = self.h.run(self.h.store.cancel(self.h.tenant_id, task))
            assert record.status is S.CANCELLED
            m.status = S.CANCELLED
        else:
            with pytest.raises(Conflict):
                self.h.run(self.h.store.cancel(self.h.tenant_id, task))

    # -- after every step --------------------------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        rows = self.h.rows()
        assert rows.keys() == self.model.keys(), "a task was lost or invented"  # (3)
        for task_id, row in rows.items():
            check_row(row, self.model[task_id])
            if task_id in self.seen:
                check_step(self.seen[task_id], row)
        self.seen = rows


@pytest.mark.timeout(420)  # room for hypothesis to shrink a failure (it stops at 300 s)
def test_protocol_state_machine(harness: Harness) -> None:
    run_state_machine_as_test(
        lambda: ProtocolMachine(harness),
        settings=hypothesis.settings(
            max_examples=200,
            stateful_step_count=50,
            deadline=None,
            derandomize=True,
            database=None,
            print_blob=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# -- the sharpest cases, spelled out -----------------------------------------------------------


def test_paused_worker_is_fenced_out_after_a_takeover(harness: Harness) -> None:
    h = harness
    t = h.submit(3)
    [a] = h.claim([t], "w1")
    assert h.claim([t], "w2") == []  # a live lease is not taken over
    h.expire(t)  # w1 pauses past its lease
    [b] = h.claim([t], "w2")
    assert (b.lease_epoch, b.attempt) == (a.lease_epoch + 1, 2)
    old = Lease(t, a.lease_epoch, a.attempt, a.max_attempts)
    new = Lease(t, b.lease_epoch, b.attempt, b.max_attempts)

    # w1 resumes: every write it makes is fenced out and changes nothing.
    before = h.row(t)
    assert h.heartbeat([(t, a.lease_epoch)]) == set()
    assert h.finish([finish_for("w1", old, "completed")], "w1") == set()
    assert h.release([(t, a.lease_epoch)]) == set()
    assert h.row(t) == before
    assert (before["status"], before["lease_owner"]) == ("processing", "w2")

    assert h.finish([finish_for("w2", new, "completed")], "w2") == {t}
    assert h.finish([finish_for("w1", old, "completed")], "w1") == set()
    assert h.finish([finish_for("w2", new, "fail")], "w2") == set()  # no second finish
    row = h.row(t)
    assert row["status"] == "completed"
    assert json.loads(row["result"]) == {"by": "w2", "epoch": b.lease_epoch}
    assert row["last_error"] == lost_error(1)
    assert (2, "completed", "w2") in row["log"]
    assert [o for _, o, _ in row["log"]].count("completed") == 1


def test_crash_on_the_last_attempt_is_rescued_as_failed(harness: Harness) -> None:
    h = harness
    t = h.submit(2)
    [a] = h.claim([t], "w1")
    retry = finish_for("w1", Lease(t, a.lease_epoch, a.attempt, a.max_attempts), "retry")
    assert retry.status is S.SCHEDULED
    assert h.finish([retry], "w1") == {t}
    assert h.promote() == {t}
    [b] = h.claim([t], "w2")
    assert b.attempt == b.max_attempts == 2
    h.expire(t)  # w2 crashed

    assert h.claim([t], "w3") == []  # attempts spent: nobody may run it again
    assert h.run(h.store.rescue_expired(100, 0.0)) == [(t, S.FAILED)]
    row = h.row(t)
    assert row["status"] == "failed"
    assert row["last_error"].startswith("worker_lost")
    assert row["finished_at"] is not None
    assert (row["lease_owner"], row["lease_expires_at"]) == (None, None)
    assert row["log"] == [(1, "retry", "w1"), (2, "worker_lost", None)]

    # w2 comes back: fenced out; the task stays failed.
    late = Lease(t, b.lease_epoch, b.attempt, b.max_attempts)
    assert h.heartbeat([(t, b.lease_epoch)]) == set()
    assert h.finish([finish_for("w2", late, "completed")], "w2") == set()
    assert h.run(h.store.rescue_expired(100, 0.0)) == []
    assert h.row(t) == row


def test_spent_lease_is_only_failed_once_it_has_run_out(harness: Harness) -> None:
    h = harness
    t = h.submit(1)
    [a] = h.claim([t], "w1")
    assert h.run(h.store.fail_lost([t])) == set()  # the lease is live
    assert h.claim([t], "w2") == []  # held
    h.expire(t)
    assert h.claim([t], "w2") == []  # run out, but no attempts left
    assert h.run(h.store.fail_lost([t])) == {t}
    row = h.row(t)
    assert (row["status"], row["attempts"], row["lease_epoch"]) == ("failed", 1, a.lease_epoch)
    assert row["last_error"] == lost_error(1)
    lease = Lease(t, a.lease_epoch, a.attempt, a.max_attempts)
    assert h.finish([finish_for("w1", lease, "completed")], "w1") == set()
    with pytest.raises(Conflict):
        h.run(h.store.cancel(h.tenant_id, t))


def test_release_hands_back_without_spending_an_attempt(harness: Harness) -> None:
    h = harness
    t = h.submit(1)
    [a] = h.claim([t], "w1")
    assert h.release([(t, a.lease_epoch)]) == {t}
    assert h.release([(t, a.lease_epoch)]) == set()  # a second release is fenced
    row = h.row(t)
    assert (row["status"], row["attempts"], row["lease_owner"]) == ("pending", 0, None)
    [b] = h.claim([t], "w2")
    assert (b.lease_epoch, b.attempt) == (a.lease_epoch + 1, 1)
    lease = Lease(t, a.lease_epoch, a.attempt, a.max_attempts)
    assert h.finish([finish_for("w1", lease, "completed")], "w1") == set()
    assert h.row(t)["lease_owner"] == "w2"


def test_takeover_records_the_lost_attempt(harness: Harness) -> None:
    """The attempt history shows every attempt: a lease taken over by another worker's claim
    ends the previous attempt with worker_lost, exactly as the rescuer records it."""
    h = harness
    t = h.submit(2)
    h.claim([t], "w1")
    h.expire(t)  # w1 dies; its stream entry is taken over (XAUTOCLAIM) by w2
    [b] = h.claim([t], "w2")
    row = h.row(t)
    assert (b.attempt, row["attempts"], row["last_error"]) == (2, 2, lost_error(1))
    assert row["log"] == [(1, "worker_lost", None)]
