"""Running one attempt: a handler call becomes an :class:`Outcome`, and an outcome becomes the
:class:`Finish` written to PostgreSQL. The mapping is pure; only ``execute`` awaits."""

from __future__ import annotations

import asyncio
import contextvars
import time
import traceback
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import Any

import msgspec
import structlog

from ..core.breakers import PROBE_MARGIN_MS, Verdict
from ..core.errors import BreakerOpen
from ..core.models import ClaimedTask, Finish, TaskStatus
from ..core.outcomes import Fail, Outcome, OutcomeKind, Retry
from ..core.retry import RetryPolicy, next_run_at
from ..observability import tracing
from .context import TaskContext
from .registry import TaskDefinition
from .storable import MAX_ERROR_CHARS, result_problem, storable_text

log = structlog.get_logger("taskstream.worker")
_encode = msgspec.json.Encoder().encode
# A retry's delay is capped so its date stays inside datetime's (and PostgreSQL's) range.
MAX_RETRY_DELAY_S = 100 * 365 * 86_400.0


def _error_text(exc: BaseException) -> str:
    """The message, then the innermost frames (the handler's own code, usually)."""
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "".join(traceback.format_list(frames)).rstrip()
    return (f"{message}\n{where}" if where else message)[:MAX_ERROR_CHARS]


async def attempt(
    definition: TaskDefinition | None,
    ctx: TaskContext,
    task: ClaimedTask,
    threads: Executor | None,
    max_result_bytes: int,
) -> Outcome:
    """One attempt of a claimed task: its handler run (in a consumer span with tracing on), or
    why it cannot run here (retried: another worker may have the handler or the key), or
    postponed while a breaker of its type is open. Only a type with breakers asks Redis."""
    if definition is None:
        return Outcome(kind=OutcomeKind.RETRY, error=f"no handler for {task.type!r} here")
    if task.unreadable is not None:
        return Outcome(kind=OutcomeKind.RETRY, error=task.unreadable)
    if not definition.breakers:
        return await _run(definition, ctx, task, threads, max_result_bytes)
    ttl_ms = round(task.timeout_s * 1000) + PROBE_MARGIN_MS
    refused = await ctx.enter_breakers(definition.breakers, ttl_ms)
    if refused is not None:
        return _postponed(refused)
    outcome = await _run(definition, ctx, task, threads, max_result_bytes)
    await ctx.leave_breakers(definition.breakers, VERDICTS[outcome.kind])
    return outcome


# What an attempt's outcome says about its type's dependencies. Fail: the handler judged its
# input (or its result was refused), not the dependency; postponed: it did not run.
VERDICTS = {
    OutcomeKind.COMPLETED: Verdict.SUCCESS,
    OutcomeKind.RETRY: Verdict.FAILURE,
    OutcomeKind.TIMEOUT: Verdict.FAILURE,
    OutcomeKind.FAIL: Verdict.NEUTRAL,
    OutcomeKind.POSTPONED: Verdict.NEUTRAL,
}


def _postponed(refused: BreakerOpen) -> Outcome:
    return Outcome(kind=OutcomeKind.POSTPONED, error=str(refused), delay_s=refused.delay_s)


async def _run(
    definition: TaskDefinition,
    ctx: TaskContext,
    task: ClaimedTask,
    threads: Executor | None,
    max_result_bytes: int,
) -> Outcome:
    log.debug("attempt started", attempt=task.attempt, type=task.type)
    with tracing.process(task) as span:  # the handler's own spans nest inside
        outcome = await execute(
            definition,
            ctx,
            task.payload_json,
            task.timeout_s,
            threads=threads,
            max_result_bytes=max_result_bytes,
        )
        tracing.ended(span, str(outcome.kind), outcome.error)
    log.debug("attempt ended", outcome=str(outcome.kind))
    return outcome


async def execute(
    definition: TaskDefinition,
    ctx: TaskContext,
    payload_json: str,
    timeout_s: float,
    *,
    threads: Executor | None,
    max_result_bytes: int,
) -> Outcome:
    """Call the handler with its timeout; never raises except on cancellation."""
    started = time.perf_counter()
    try:
        payload = definition.decoder.decode(payload_json)
    except msgspec.DecodeError as exc:  # ValidationError included
        return Outcome(kind=OutcomeKind.FAIL, error=f"payload rejected by handler: {exc}")
    deadline = _Deadline(timeout_s)
    try:
        result = await _call(definition, ctx, payload, threads)
    except asyncio.CancelledError:
        if not deadline.uncancel_if_expired():
            raise  # cancelled from outside: shutdown, or the lease was lost
        return Outcome(
            kind=OutcomeKind.TIMEOUT,
            error=f"timeout: handler ran past {timeout_s:g} s",
            duration_s=time.perf_counter() - started,
        )
    except Exception as exc:  # noqa: BLE001 - any handler error is an attempt outcome
        return _raised(exc, time.perf_counter() - started)
    finally:
        deadline.cancel()
    duration = time.perf_counter() - started
    try:
        encoded = _encode(result)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError) as exc:
        # ValueError: a str that is not UTF-8 (lone surrogates); RecursionError: nested too deep
        return Outcome(
            kind=OutcomeKind.FAIL, error=f"result is not JSON: {exc}", duration_s=duration
        )
    if len(encoded) > max_result_bytes:
        return Outcome(
            kind=OutcomeKind.FAIL,
            duration_s=duration,
            error=f"result of {len(encoded)} bytes exceeds {max_result_bytes}",
        )
    if problem := result_problem(encoded):
        return Outcome(kind=OutcomeKind.FAIL, duration_s=duration, error=problem)
    return Outcome(kind=OutcomeKind.COMPLETED, result_json=encoded, duration_s=duration)


def _raised(exc: Exception, duration_s: float) -> Outcome:
    """What a handler's exception makes of its attempt."""
    if isinstance(exc, Retry):
        return Outcome(
            kind=OutcomeKind.RETRY, error=exc.reason, delay_s=exc.delay_s, duration_s=duration_s
        )
    if isinstance(exc, Fail):
        return Outcome(kind=OutcomeKind.FAIL, error=exc.reason, duration_s=duration_s)
    if isinstance(exc, BreakerOpen):  # ctx.breaker(...) inside an open breaker
        return _postponed(exc)
    return Outcome(kind=OutcomeKind.RETRY, error=_error_text(exc), duration_s=duration_s)


class _Deadline:
    """Cancels the current task when the handler's time is up: one timer handle, cheaper per
    attempt than ``asyncio.timeout`` (measurable at thousands of attempts a second)."""

    __slots__ = ("_pending", "_task", "_timer")

    def __init__(self, timeout_s: float) -> None:
        self._task = asyncio.current_task()
        self._pending = False  # our cancel request is on the task and not withdrawn
        self._timer = asyncio.get_running_loop().call_later(timeout_s, self._expire)

    def _expire(self) -> None:
        if self._task is not None:
            self._pending = True
            self._task.cancel()

    def uncancel_if_expired(self) -> bool:
        """True if our timer alone caused the cancellation; the request is then withdrawn so
        the attempt can report its outcome. False for a cancellation from outside."""
        if not self._pending or self._task is None:
            return False
        self._pending = False
        return self._task.uncancel() == 0

    def cancel(self) -> None:
        """Stop the timer; withdraw a request the handler swallowed, so it cannot hit a later
        await of this attempt."""
        self._timer.cancel()
        if self._pending and self._task is not None:
            self._pending = False
            self._task.uncancel()


async def _call(
    definition: TaskDefinition, ctx: TaskContext, payload: Any, threads: Executor | None
) -> Any:
    if definition.is_async:
        return await definition.fn(ctx, payload)
    # A sync handler that overruns is abandoned with its thread: Python cannot stop it. It runs
    # in a copy of this attempt's context, so its log lines carry the task's ids too.
    loop = asyncio.get_running_loop()
    run = contextvars.copy_context().run
    return await loop.run_in_executor(threads, run, definition.fn, ctx, payload)


def decide(
    outcome: Outcome,
    task: ClaimedTask,
    policy: RetryPolicy,
    now: datetime,
    unit_random: float,
) -> Finish:
    """The state an attempt leads to: completed, scheduled for retry, or failed; or, postponed
    by an open breaker, scheduled with the attempt given back (store: finish_tasks)."""
    if outcome.kind is OutcomeKind.POSTPONED:
        return Finish(
            task_id=task.id,
            lease_epoch=task.lease_epoch,
            status=TaskStatus.SCHEDULED,
            error=storable_text(outcome.error),
            run_at=now
            + timedelta(seconds=min(max(0.0, outcome.delay_s or 0.0), MAX_RETRY_DELAY_S)),
            outcome=str(outcome.kind),
            duration_s=outcome.duration_s,
        )
    if outcome.kind is OutcomeKind.COMPLETED:
        result = None if outcome.result_json is None else outcome.result_json.decode()
        return Finish(
            task_id=task.id,
            lease_epoch=task.lease_epoch,
            status=TaskStatus.COMPLETED,
            result_json=result,
            duration_s=outcome.duration_s,
        )
    retryable = outcome.kind is not OutcomeKind.FAIL and task.attempt < task.max_attempts
    if not retryable:
        return Finish(
            task_id=task.id,
            lease_epoch=task.lease_epoch,
            status=TaskStatus.FAILED,
            error=storable_text(outcome.error),
            outcome=str(outcome.kind),
            duration_s=outcome.duration_s,
        )
    if outcome.delay_s is not None:
        run_at = now + timedelta(seconds=min(max(0.0, outcome.delay_s), MAX_RETRY_DELAY_S))
    else:
        run_at = next_run_at(now, task.attempt, policy, unit_random)
    return Finish(
        task_id=task.id,
        lease_epoch=task.lease_epoch,
        status=TaskStatus.SCHEDULED,
        error=storable_text(outcome.error),
        run_at=run_at,
        outcome=str(outcome.kind),
        duration_s=outcome.duration_s,
    )
