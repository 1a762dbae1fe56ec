"""execute(): a handler call becomes an Outcome. No sockets: threads=None, tx=None."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec
import pytest

from taskstream.core.outcomes import Fail, Outcome, OutcomeKind, Retry
from taskstream.worker.context import TaskContext
from taskstream.worker.executor import MAX_ERROR_CHARS, execute
from taskstream.worker.registry import Registry, TaskDefinition

K = OutcomeKind


class Job(msgspec.Struct):
    n: int


def _ctx() -> TaskContext:
    return TaskContext(
        task_id=UUID(int=1), tenant_id=UUID(int=2), type="t", attempt=1, max_attempts=3,
        lease_epoch=1, idempotency_key=None, correlation_id=None, tx=None,
    )  # fmt: skip


def _define(fn: Callable[..., Any]) -> TaskDefinition:
    reg = Registry()
    reg.task("t")(fn)
    definition = reg.get("t")
    assert definition is not None
    return definition


async def _run(
    fn: Callable[..., Any], payload: str = '{"n": 2}', timeout_s: float = 5.0, limit: int = 1000
) -> Outcome:
    return await execute(
        _define(fn), _ctx(), payload, timeout_s, threads=None, max_result_bytes=limit
    )


async def double(ctx: TaskContext, payload: Job) -> dict[str, int]:
    return {"n": payload.n * 2}


async def retry_later(ctx: TaskContext, payload: Job) -> None:
    raise Retry(delay_s=9.0, reason="busy")


async def retry_plain(ctx: TaskContext, payload: Job) -> None:
    raise Retry


async def fail_now(ctx: TaskContext, payload: Job) -> None:
    raise Fail("bad input")


async def crash(ctx: TaskContext, payload: Job) -> None:
    raise ValueError("boom")


async def crash_long(ctx: TaskContext, payload: Job) -> None:
    raise ValueError("x" * 10 * MAX_ERROR_CHARS)


def sync_fail(ctx: TaskContext, payload: Job) -> None:
    raise Fail("sync says no")


def sync_retry(ctx: TaskContext, payload: Job) -> None:
    raise Retry(delay_s=1.0, reason="later")


@pytest.mark.parametrize(
    ("fn", "kind", "error", "delay_s"),
    [
        (retry_later, K.RETRY, "busy", 9.0),
        (retry_plain, K.RETRY, "retry requested", None),
        (fail_now, K.FAIL, "bad input", None),
        (crash, K.RETRY, "ValueError: boom", None),
        (sync_fail, K.FAIL, "sync says no", None),
        (sync_retry, K.RETRY, "later", 1.0),
    ],
)
async def test_exceptions_map_to_outcomes(
    fn: Callable[..., Any], kind: OutcomeKind, error: str, delay_s: float | None
) -> None:
    outcome = await _run(fn)
    assert outcome.kind is kind
    assert outcome.error is not None
    # The message first; an unexpected exception adds where it was raised.
    first, _, rest = outcome.error.partition("\n")
    assert first == error
    if fn is crash:
        assert "in crash" in rest and "test_execute.py" in rest
    else:
        assert rest == ""
    assert outcome.delay_s == delay_s
    assert outcome.result_json is None


async def test_success_result_is_encoded() -> None:
    outcome = await _run(double)
    assert outcome.kind is K.COMPLETED
    assert outcome.result_json == b'{"n":4}'
    assert outcome.error is None
    assert outcome.duration_s >= 0


async def test_long_errors_are_truncated() -> None:
    outcome = await _run(crash_long)
    assert outcome.error is not None
    assert len(outcome.error) == MAX_ERROR_CHARS
    assert outcome.error.startswith("ValueError: xxx")


async def hang(ctx: TaskContext, payload: Job) -> None:
    await asyncio.Event().wait()


async def test_async_handler_times_out() -> None:
    started = time.perf_counter()
    outcome = await _run(hang, timeout_s=0.05)
    elapsed = time.perf_counter() - started
    assert outcome.kind is K.TIMEOUT
    assert outcome.error == "timeout: handler ran past 0.05 s"
    assert 0.04 <= elapsed < 1.0
    assert outcome.duration_s == pytest.approx(elapsed, abs=0.05)


async def own_timeout(ctx: TaskContext, payload: Job) -> None:
    raise TimeoutError("the handler's own deadline")


async def test_handlers_own_timeout_error_is_an_ordinary_failure() -> None:
    outcome = await _run(own_timeout)
    assert outcome.kind is K.RETRY
    assert outcome.error is not None and "the handler's own deadline" in outcome.error


async def swallow_cancel(ctx: TaskContext, payload: Job) -> dict[str, int]:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()  # a badly behaved handler: ignores its deadline
    return {"n": 1}


async def test_swallowed_deadline_leaves_no_cancel_request_behind() -> None:
    outcome = await _run(swallow_cancel, timeout_s=0.02)
    assert outcome.kind is K.COMPLETED
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # a later await of the attempt is not cancelled


async def test_cancel_from_outside_is_not_reported_as_a_timeout() -> None:
    attempt = asyncio.create_task(_run(hang, timeout_s=5.0))
    await asyncio.sleep(0.01)
    attempt.cancel()  # what the worker does when the lease is lost
    with pytest.raises(asyncio.CancelledError):
        await attempt


def where(ctx: TaskContext, payload: Job) -> dict[str, Any]:
    return {"thread": threading.get_ident(), "n": payload.n}


async def test_sync_handler_runs_in_a_thread() -> None:
    outcome = await _run(where)
    assert outcome.kind is K.COMPLETED
    assert outcome.result_json is not None
    result = msgspec.json.decode(outcome.result_json)
    assert result["n"] == 2
    assert result["thread"] != threading.get_ident()


def _returning(value: Any) -> Callable[..., Any]:
    async def handler(ctx: TaskContext, payload: dict[str, Any]) -> Any:
        return value

    return handler


@pytest.mark.parametrize(
    ("value", "limit", "kind"),
    [
        ("x" * 8, 10, K.COMPLETED),  # '"xxxxxxxx"' is exactly 10 bytes
        ("x" * 9, 10, K.FAIL),
        ([0] * 10_000, 1000, K.FAIL),
        (None, 4, K.COMPLETED),
    ],
)
async def test_result_size_limit(value: Any, limit: int, kind: OutcomeKind) -> None:
    outcome = await _run(_returning(value), payload="{}", limit=limit)
    assert outcome.kind is kind
    if kind is K.FAIL:
        assert outcome.error is not None
        assert f"exceeds {limit}" in outcome.error
        assert outcome.result_json is None


@pytest.mark.parametrize("value", [object(), complex(1, 2), {(1, 2): 3}, _ctx])
async def test_non_json_result_fails(value: Any) -> None:
    outcome = await _run(_returning(value), payload="{}")
    assert outcome.kind is K.FAIL
    assert outcome.error is not None
    assert outcome.error.startswith("result is not JSON")


@pytest.mark.parametrize("payload", ['{"n": "two"}', "{}", "[1]", '{"n": 1.5}', "null"])
async def test_payload_failing_the_struct_fails(payload: str) -> None:
    outcome = await _run(double, payload=payload)
    assert outcome.kind is K.FAIL
    assert outcome.error is not None
    assert outcome.error.startswith("payload rejected by handler")


@pytest.mark.parametrize("payload", ["[1]", '"text"', "3"])
async def test_dict_handler_rejects_non_objects(payload: str) -> None:
    outcome = await _run(_returning(1), payload=payload)
    assert outcome.kind is K.FAIL


@pytest.mark.parametrize("payload", ["{", "", "not json"])
async def test_malformed_payload_fails_instead_of_raising(payload: str) -> None:
    outcome = await _run(double, payload=payload)
    assert outcome.kind is K.FAIL
