"""The client without I/O: requests as plans, answers parsed, retries decided.

An operation is a generator. It yields what it needs done — a ``Plan`` to send, or a ``Sleep``
— and is sent back what happened: a ``Reply`` (any HTTP answer) or a ``Failure`` (no answer),
and None after a sleep. Its return value is the operation's result. ``Client`` and
``AsyncClient`` only drive these generators (``transport.py``): the requests, their retries,
the parsing and the errors are written once, here and in ``operations.py``, and tested without
sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from .errors import (
    APIError,
    RequestTimeout,
    TransportError,
    UnexpectedResponse,
    error_class,
)
from .models import Problem
from .retries import (
    RetryPolicy,
    delay_s,
    parse_retry_after,
    should_retry_failure,
    should_retry_status,
)

T = TypeVar("T")
log = logging.getLogger("taskstream.client")


@dataclass(frozen=True, slots=True)
class Plan:
    """One HTTP request, ready to send (and to send again: the body is bytes, made once)."""

    method: str
    path: str
    params: dict[str, str] | None = None
    body: bytes | None = None  # JSON
    idempotent: bool = False  # a second copy does no harm: retried after a broken connection


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, whatever its status."""

    status: int
    content: bytes
    retry_after: str | None = None  # the Retry-After header, as sent


@dataclass(frozen=True, slots=True)
class Failure:
    """No answer. ``sent``: the request may have reached the server (the connection broke
    after it was written); ``retryable`` False: trying again cannot help (a bad URL)."""

    error: BaseException
    sent: bool
    timed_out: bool = False
    retryable: bool = True


Step = Plan | Sleep
Outcome = Reply | Failure | None
Op = Generator[Step, Outcome, T]


@dataclass(frozen=True, slots=True)
class Pacing:
    """What decides retries: the policy, and the clock and randomness (parameters, so tests
    drive them)."""

    policy: RetryPolicy
    now: Callable[[], datetime]
    rand: Callable[[], float]
    monotonic: Callable[[], float]


def exchange(plan: Plan, pacing: Pacing) -> Op[Reply]:
    """Send ``plan`` until it gets a 2xx/3xx answer; retries 429/503 and connection errors as
    ``retries.py`` allows, then raises the API's problem or a TransportError."""
    retry = 0
    while True:
        outcome = yield plan
        if isinstance(outcome, Failure):
            if not (
                outcome.retryable
                and should_retry_failure(outcome.sent, plan.idempotent, pacing.policy, retry)
            ):
                raise _transport_error(plan, outcome, retry + 1) from outcome.error
            wait_s = delay_s(pacing.policy, retry, None, pacing.rand)
            why = f"{type(outcome.error).__name__}: {outcome.error}"
        elif isinstance(outcome, Reply):
            if outcome.status < 400:
                return outcome
            after_s = parse_retry_after(outcome.retry_after, pacing.now())
            if not should_retry_status(outcome.status, pacing.policy, retry, after_s or 0.0):
                raise problem_error(outcome, after_s)
            wait_s = delay_s(pacing.policy, retry, after_s, pacing.rand)
            why = f"HTTP {outcome.status}"
        else:  # pragma: no cover - a driver bug
            raise TypeError(f"expected a Reply or a Failure for {plan.path}, got {outcome!r}")
        log.info(
            "%s %s: %s; sending it again in %.2f s (try %d of %d)",
            plan.method, plan.path, why, wait_s, retry + 2, pacing.policy.attempts,
        )  # fmt: skip
        yield Sleep(wait_s)
        retry += 1


def call(plan: Plan, pacing: Pacing, decoder: msgspec.json.Decoder[T]) -> Op[T]:
    """Send ``plan`` (with retries) and decode its answer with ``decoder``."""
    reply = yield from exchange(plan, pacing)
    return decode(reply, decoder)


def decode(reply: Reply, decoder: msgspec.json.Decoder[T]) -> T:
    try:
        return decoder.decode(reply.content)
    except msgspec.DecodeError as exc:
        raise UnexpectedResponse(
            f"the answer ({reply.status}) is not what the API sends: {exc}", status=reply.status
        ) from None


_problem = msgspec.json.Decoder(Problem)


def problem_error(reply: Reply, retry_after_s: float | None = None) -> APIError:
    """The exception for an error answer: the problem's code and detail, classified by code
    then status; a body that is no problem (a proxy's page) still gets its status' class."""
    try:
        p = _problem.decode(reply.content)
    except msgspec.DecodeError:
        text = reply.content[:200].decode("utf-8", "replace").strip()
        detail = f"HTTP {reply.status}" + (f": {text}" if text else "")
        return error_class(reply.status, "")(
            detail, code="http_error", status=reply.status, retry_after_s=retry_after_s
        )
    extra: dict[str, Any] = dict(p.extra or {})
    return error_class(p.status, p.code)(
        p.detail,
        code=p.code,
        status=reply.status,
        errors=p.errors,
        extra=extra,
        retry_after_s=retry_after_s,
    )


def _transport_error(plan: Plan, failure: Failure, sends: int) -> TransportError:
    kind = RequestTimeout if failure.timed_out else TransportError
    tries = f" (after {sends} tries)" if sends > 1 else ""
    return kind(
        f"{plan.method} {plan.path}: {str(failure.error) or type(failure.error).__name__}{tries}"
    )
