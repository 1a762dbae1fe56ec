"""Breakers in the worker, without Redis: a type without breakers asks nothing; an open breaker
postpones (declared or through ctx.breaker) with the attempt given back; outcomes are reported
as the rules want; Redis down fails open. The Breakers here is a fake of our own class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from taskstream.broker.breakers import Gate
from taskstream.core.breakers import (
    Admission,
    Breaker,
    BreakerPolicy,
    BreakerState,
    Postpone,
    Verdict,
)
from taskstream.core.errors import BrokerUnavailable, HandlerError
from taskstream.core.models import ClaimedTask, TaskStatus
from taskstream.core.outcomes import Fail, Outcome, OutcomeKind
from taskstream.core.retry import RetryPolicy
from taskstream.worker.context import TaskContext
from taskstream.worker.executor import attempt, decide
from taskstream.worker.registry import Registry, TaskDefinition

K = OutcomeKind
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class FakeBreakers:
    """Answers admits from ``open`` (name -> until_ms at now_ms 1_000); records what it hears."""

    def __init__(self, open_: dict[str, int] | None = None, down: bool = False) -> None:
        self.default = BreakerPolicy(failures=5, cooldown_s=30.0)
        self.open = open_ or {}
        self.down = down
        self.admits: list[tuple[str, ...]] = []
        self.records: list[tuple[tuple[str, ...], Verdict]] = []

    async def admit(self, tenant_id: UUID, needs: Any, token: str, ttl_ms: int) -> Gate:
        if self.down:
            raise BrokerUnavailable("Redis unavailable: ConnectionError")
        self.admits.append(tuple(b.name for b in needs))
        for b in needs:
            if b.name in self.open:
                wait = Postpone(breaker=b.name, state=BreakerState.OPEN, until_ms=self.open[b.name])
                return Gate(Admission(postpone=wait), 1_000)
        return Gate(Admission(), 1_000)

    async def record(self, tenant_id: UUID, needs: Any, token: str, verdict: Verdict) -> list[Any]:
        if self.down:
            raise BrokerUnavailable("Redis unavailable: ConnectionError")
        self.records.append((tuple(b.name for b in needs), verdict))
        return []


def _ctx(breakers: FakeBreakers | None) -> TaskContext:
    return TaskContext(
        task_id=UUID(int=1), tenant_id=UUID(int=2), type="t", attempt=1, max_attempts=1,
        lease_epoch=7, idempotency_key=None, correlation_id=None,
        breakers=breakers,  # type: ignore[arg-type]
    )  # fmt: skip


def _task() -> ClaimedTask:
    return ClaimedTask(
        id=UUID(int=1), tenant_id=UUID(int=2), type="t", queue="default", payload_json="{}",
        attempt=1, max_attempts=1, timeout_s=10.0, lease_epoch=7, idempotency_key=None,
        correlation_id=None, created_unix=0.0, run_unix=0.0, lease_s=30.0,
    )  # fmt: skip


def _define(fn: Any, **options: Any) -> TaskDefinition:
    reg = Registry()
    reg.task("t", **options)(fn)
    definition = reg.get("t")
    assert definition is not None
    return definition


async def ok(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, bool]:
    return {"ok": True}


async def boom(ctx: TaskContext, payload: dict[str, Any]) -> None:
    raise ConnectionError("down")


async def bad_input(ctx: TaskContext, payload: dict[str, Any]) -> None:
    raise Fail("no such address")


async def guarded(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, str]:
    async with ctx.breaker("smtp"):
        return {"sent": "yes"}


async def guarded_boom(ctx: TaskContext, payload: dict[str, Any]) -> None:
    async with ctx.breaker("smtp"):
        raise ConnectionError("down")


async def _attempt(fn: Any, fake: FakeBreakers | None, **options: Any) -> Outcome:
    return await attempt(_define(fn, **options), _ctx(fake), _task(), None, 1000)


async def test_a_type_without_breakers_asks_nothing() -> None:
    fake = FakeBreakers(down=True)  # any question would raise
    outcome = await _attempt(ok, fake)
    assert outcome.kind is K.COMPLETED and fake.admits == [] and fake.records == []


@pytest.mark.parametrize(
    ("fn", "kind", "verdict"),
    [(ok, K.COMPLETED, Verdict.SUCCESS), (boom, K.RETRY, Verdict.FAILURE),
     (bad_input, K.FAIL, Verdict.NEUTRAL)],
)  # fmt: skip
async def test_declared_breakers_hear_the_outcome(fn: Any, kind: K, verdict: Verdict) -> None:
    fake = FakeBreakers()
    outcome = await _attempt(fn, fake, breakers=["smtp", Breaker("bank", failures=2)])
    assert outcome.kind is kind
    assert fake.admits == [("smtp", "bank")]
    assert fake.records == [(("smtp", "bank"), verdict)]


async def test_an_open_declared_breaker_postpones_without_running() -> None:
    fake = FakeBreakers({"smtp": 31_000})
    outcome = await _attempt(boom, fake, breakers=["smtp"])
    assert outcome.kind is K.POSTPONED and fake.records == []
    assert outcome.delay_s is not None and 30.0 <= outcome.delay_s <= 31.0
    assert "breaker 'smtp' is open" in (outcome.error or "")


async def test_ctx_breaker_postpones_inside_the_handler() -> None:
    fake = FakeBreakers({"smtp": 2_000})
    outcome = await _attempt(guarded, fake)
    assert outcome.kind is K.POSTPONED and outcome.delay_s is not None
    assert 1.0 <= outcome.delay_s <= 1.2


@pytest.mark.parametrize(
    ("fn", "kind", "verdict"),
    [(guarded, K.COMPLETED, Verdict.SUCCESS), (guarded_boom, K.RETRY, Verdict.FAILURE)],
)
async def test_ctx_breaker_reports(fn: Any, kind: K, verdict: Verdict) -> None:
    fake = FakeBreakers()
    assert (await _attempt(fn, fake)).kind is kind
    assert fake.records == [(("smtp",), verdict)]


async def test_redis_down_fails_open() -> None:
    fake = FakeBreakers(down=True)
    assert (await _attempt(ok, fake, breakers=["smtp"])).kind is K.COMPLETED
    assert (await _attempt(guarded, fake)).kind is K.COMPLETED


async def test_outside_a_worker_ctx_breaker_guards_nothing() -> None:
    assert (await _attempt(guarded, None)).kind is K.COMPLETED


def test_a_postponement_gives_the_attempt_back() -> None:
    outcome = Outcome(kind=K.POSTPONED, error="breaker 'smtp' is open", delay_s=12.0)
    finish = decide(outcome, _task(), RetryPolicy(), NOW, 0.5)
    assert finish.status is TaskStatus.SCHEDULED and finish.outcome == "postponed"
    assert finish.run_at == NOW + timedelta(seconds=12.0)  # even on the last attempt


@pytest.mark.parametrize("bad", [["a", "a"], ["x y"], [Breaker("ok"), "ok"]])
def test_bad_declarations_are_refused(bad: list[Any]) -> None:
    with pytest.raises(HandlerError, match="breaker"):
        Registry().task("t", breakers=bad)


def test_one_name_is_one_breaker() -> None:
    assert [b.name for b in _define(ok, breakers="smtp").breakers] == ["smtp"]
