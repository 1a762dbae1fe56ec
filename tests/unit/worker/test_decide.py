"""decide(): every outcome kind, with attempts remaining and exhausted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from taskstream.core.models import ClaimedTask, TaskStatus
from taskstream.core.outcomes import Outcome, OutcomeKind
from taskstream.core.retry import RetryPolicy
from taskstream.worker.executor import decide

K, S = OutcomeKind, TaskStatus
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_s=1.0, cap_s=300.0)
TASK_ID = UUID("01890000-0000-7000-8000-000000000001")


def _task(attempt: int, max_attempts: int = 3) -> ClaimedTask:
    return ClaimedTask(
        id=TASK_ID, tenant_id=UUID(int=1), type="t", queue="default", payload_json="{}",
        attempt=attempt, max_attempts=max_attempts, timeout_s=10.0, lease_epoch=42,
        idempotency_key=None, correlation_id=None, created_unix=0.0, run_unix=0.0, lease_s=30.0,
    )  # fmt: skip


def _seconds(s: float) -> datetime:
    return NOW + timedelta(seconds=s)


# attempt 2 of 3 with unit_random 0.5: backoff ceiling 2 s -> 1 s; attempt 1: ceiling 1 s -> 0.5 s
CASES = [
    # kind, attempt, max, delay_s, status, run_at
    (K.RETRY, 1, 3, None, S.SCHEDULED, _seconds(0.5)),
    (K.RETRY, 2, 3, None, S.SCHEDULED, _seconds(1.0)),
    (K.RETRY, 2, 3, 7.5, S.SCHEDULED, _seconds(7.5)),  # the handler's delay, no jitter
    (K.RETRY, 2, 3, 0.0, S.SCHEDULED, NOW),
    (K.RETRY, 2, 3, -4.0, S.SCHEDULED, NOW),  # never in the past
    (K.RETRY, 3, 3, None, S.FAILED, None),
    (K.RETRY, 3, 3, 7.5, S.FAILED, None),
    (K.RETRY, 5, 3, None, S.FAILED, None),  # max_attempts lowered under a running task
    (K.RETRY, 1, 1, None, S.FAILED, None),
    (K.TIMEOUT, 1, 3, None, S.SCHEDULED, _seconds(0.5)),
    (K.TIMEOUT, 2, 3, None, S.SCHEDULED, _seconds(1.0)),
    (K.TIMEOUT, 3, 3, None, S.FAILED, None),
    (K.FAIL, 1, 3, None, S.FAILED, None),
    (K.FAIL, 1, 100, 7.5, S.FAILED, None),
    (K.FAIL, 3, 3, None, S.FAILED, None),
]


@pytest.mark.parametrize(("kind", "attempt", "max_attempts", "delay_s", "status", "run_at"), CASES)
def test_unsuccessful_attempts(
    kind: OutcomeKind,
    attempt: int,
    max_attempts: int,
    delay_s: float | None,
    status: TaskStatus,
    run_at: datetime | None,
) -> None:
    outcome = Outcome(kind=kind, error="boom", delay_s=delay_s)
    finish = decide(outcome, _task(attempt, max_attempts), POLICY, NOW, 0.5)
    assert (finish.task_id, finish.lease_epoch) == (TASK_ID, 42)
    assert finish.status is status
    assert finish.run_at == run_at
    assert finish.error == "boom"
    assert finish.result_json is None


@pytest.mark.parametrize("attempt", [1, 3])
@pytest.mark.parametrize(("result", "text"), [(b'{"sent":1}', '{"sent":1}'), (None, None)])
def test_completed_keeps_the_result_text(
    attempt: int, result: bytes | None, text: str | None
) -> None:
    outcome = Outcome(kind=K.COMPLETED, result_json=result)
    finish = decide(outcome, _task(attempt), POLICY, NOW, 0.5)
    assert finish.status is S.COMPLETED
    assert finish.result_json == text
    assert (finish.error, finish.run_at) == (None, None)
    assert (finish.task_id, finish.lease_epoch) == (TASK_ID, 42)


@pytest.mark.parametrize(("unit_random", "delay_s"), [(0.0, 0.0), (0.25, 1.0), (0.999, 3.996)])
def test_backoff_uses_the_given_randomness(unit_random: float, delay_s: float) -> None:
    finish = decide(Outcome(kind=K.RETRY), _task(3, 5), POLICY, NOW, unit_random)
    assert finish.run_at == _seconds(delay_s)
