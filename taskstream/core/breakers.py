"""Circuit breakers for a handler's dependencies (pybreaker / resilience4j semantics), as pure
functions of a stored state and ``now_ms``. (``core/breaker.py`` is another thing: the
in-process breaker that spares our own Redis calls while Redis is down.)

    closed --N consecutive failures--> open --cool-down over--> half-open (one probe)
    half-open --probe succeeds--> closed;  half-open --probe fails--> open (a new cool-down)

Each breaker belongs to one tenant: one tenant's failing calls never stop another tenant's
tasks. While a breaker is open, tasks that need it are postponed to its reopen time without
spending an attempt. Once the cool-down is over, the first task to ask takes the probe (a token
held for ``probe_ttl_ms``, so a probe whose worker died is taken over); the others are postponed
until the probe's verdict is due.

The state lives in Redis and is changed by ``broker/lua/breaker.lua``, which applies these same
rules atomically (``tests/integration/test_breakers.py`` runs one table through both). Times
are integer milliseconds on one clock (Redis' own, in production).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Annotated

import msgspec

# What a breaker may be called: it is a field of a Redis hash and a metric label.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
PROBE_MARGIN_MS = 5_000  # a probe's token outlives its task's timeout by this much


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """When a breaker opens, and for how long."""

    failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    """Consecutive failures that open it."""
    cooldown_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 30.0
    """How long it stays open before a probe may go through."""

    @property
    def cooldown_ms(self) -> int:
        return max(1, round(self.cooldown_s * 1000))


class Breaker(msgspec.Struct, frozen=True):
    """A dependency a handler uses: ``@task(..., breakers=["smtp", Breaker("bank",
    failures=2, cooldown_s=60)])``. Unset numbers take the deployment's
    (``TASKSTREAM_BREAKER_FAILURES``, ``TASKSTREAM_BREAKER_COOLDOWN_S``). Types sharing a
    breaker should give it the same numbers: each call applies its own."""

    name: str
    failures: int | None = None
    cooldown_s: float | None = None

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(f"invalid breaker name {self.name!r} (letters, digits, _ . : -)")
        if self.failures is not None and self.failures < 1:
            raise ValueError(f"breaker {self.name!r}: failures must be >= 1")
        if self.cooldown_s is not None and not 0 < self.cooldown_s <= 86_400:
            raise ValueError(f"breaker {self.name!r}: cooldown_s must be in (0, 86400]")

    def policy(self, default: BreakerPolicy) -> BreakerPolicy:
        return BreakerPolicy(
            failures=default.failures if self.failures is None else self.failures,
            cooldown_s=default.cooldown_s if self.cooldown_s is None else self.cooldown_s,
        )


def declared(items: Iterable[str | Breaker]) -> tuple[Breaker, ...]:
    """``@task``'s ``breakers=`` as Breakers, each name once (ValueError otherwise)."""
    out = tuple(b if isinstance(b, Breaker) else Breaker(b) for b in items)
    names = [b.name for b in out]
    if len(set(names)) != len(names):
        raise ValueError(f"a breaker is named twice in {names}")
    return out


class Stored(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One breaker as stored (a JSON field of the tenant's hash). ``postponed`` counts the
    tasks it postponed, ever (served as a counter)."""

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # consecutive, while closed; the count that opened it, while open
    opened_at: int | None = None  # ms
    reopens_at: int | None = None  # ms: when a probe may go through
    probe: str | None = None  # the token of the attempt holding the probe
    probe_until: int | None = None  # ms: the probe is taken over after this
    postponed: int = 0


CLOSED = Stored()


def effective(s: Stored, now_ms: int) -> BreakerState:
    """What a task asking now sees: an open breaker whose cool-down is over is half-open."""
    if s.state is BreakerState.OPEN and s.reopens_at is not None and now_ms >= s.reopens_at:
        return BreakerState.HALF_OPEN
    return s.state


def _probe_free(s: Stored, now_ms: int) -> bool:
    return s.probe is None or s.probe_until is None or now_ms >= s.probe_until


class Postpone(msgspec.Struct, frozen=True, kw_only=True):
    """The task may not run now: ``breaker`` is open (or probing) until ``until_ms``."""

    breaker: str
    state: BreakerState
    until_ms: int


class Admission(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict for one task over its breakers: ``postpone`` (None: run), and the breakers
    whose probe it holds (it must report back on them)."""

    postpone: Postpone | None = None
    probes: tuple[str, ...] = ()


def _wait(s: Stored, now_ms: int, cooldown_ms: int, token: str) -> tuple[BreakerState, int] | None:
    """Why a task must wait for this breaker, and until when; None if it may pass (the probe's
    holder passes again: a handler using a breaker its type declares)."""
    state = effective(s, now_ms)
    if state is BreakerState.OPEN:
        return state, s.reopens_at or now_ms + cooldown_ms
    probing = s.state is BreakerState.HALF_OPEN and s.probe != token and not _probe_free(s, now_ms)
    if probing:  # someone probes: wait for its verdict, but no longer than a cool-down
        return state, min(s.probe_until or now_ms, now_ms + cooldown_ms)
    return None


def admit(
    stored: Mapping[str, Stored],
    wanted: Mapping[str, BreakerPolicy],
    now_ms: int,
    token: str,
    probe_ttl_ms: int,
) -> tuple[Admission, dict[str, Stored]]:
    """May a task needing ``wanted`` run now, and the states to write. All or nothing: a task
    postponed by one breaker takes no other breaker's probe. A postponement is counted on the
    first breaker (in ``wanted``'s order) that holds the task back."""
    for name, policy in wanted.items():
        s = stored.get(name, CLOSED)
        wait = _wait(s, now_ms, policy.cooldown_ms, token)
        if wait is not None:
            state, until = wait
            counted = msgspec.structs.replace(s, postponed=s.postponed + 1)
            return Admission(postpone=Postpone(breaker=name, state=state, until_ms=until)), {
                name: counted
            }
    writes: dict[str, Stored] = {}
    for name in wanted:
        s = stored.get(name, CLOSED)
        if effective(s, now_ms) is BreakerState.HALF_OPEN:
            writes[name] = msgspec.structs.replace(
                s, state=BreakerState.HALF_OPEN, probe=token, probe_until=now_ms + probe_ttl_ms
            )
    return Admission(probes=tuple(writes)), writes


class Verdict(enum.StrEnum):
    """What an attempt says about a dependency."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"  # neither (Fail() on bad input, postponed by another breaker)


def record(s: Stored, verdict: Verdict, token: str, now_ms: int, policy: BreakerPolicy) -> Stored:
    """The state after an attempt admitted with ``token`` ended. While open, late outcomes of
    tasks admitted before it opened change nothing; while half-open only the probe's count."""
    if s.state is BreakerState.CLOSED:
        if verdict is Verdict.SUCCESS:
            return msgspec.structs.replace(s, failures=0)
        if verdict is Verdict.FAILURE:
            if s.failures + 1 >= policy.failures:
                return _opened(s, s.failures + 1, now_ms, policy)
            return msgspec.structs.replace(s, failures=s.failures + 1)
        return s
    if s.state is BreakerState.HALF_OPEN and s.probe == token:
        if verdict is Verdict.SUCCESS:
            return Stored(postponed=s.postponed)
        if verdict is Verdict.FAILURE:
            return _opened(s, s.failures, now_ms, policy)
        return msgspec.structs.replace(s, probe=None, probe_until=None)  # the next may probe
    return s


def _opened(s: Stored, failures: int, now_ms: int, policy: BreakerPolicy) -> Stored:
    return Stored(
        state=BreakerState.OPEN,
        failures=failures,
        opened_at=now_ms,
        reopens_at=now_ms + policy.cooldown_ms,
        postponed=s.postponed,
    )


def postpone_delay_s(until_ms: int, now_ms: int, unit_random: float) -> float:
    """Seconds from now to a postponed task's run: its breaker's reopen time plus a jitter of
    up to a tenth of the wait (at most 1 s), so the postponed tasks do not all ask at once."""
    wait_s = max(0.0, (until_ms - now_ms) / 1000)
    return wait_s + unit_random * min(1.0, 0.1 * wait_s + 0.01)
