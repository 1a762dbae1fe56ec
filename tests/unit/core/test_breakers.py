"""Dependency breakers as pure functions: closed -> open after N consecutive failures ->
half-open after the cool-down (one probe) -> closed on its success, open again on its failure.
The same table runs against the Lua script in tests/integration/test_breakers.py."""

from __future__ import annotations

import pytest

from taskstream.core.breakers import (
    CLOSED,
    Breaker,
    BreakerPolicy,
    BreakerState,
    Stored,
    Verdict,
    admit,
    declared,
    effective,
    postpone_delay_s,
    record,
)

P = BreakerPolicy(failures=3, cooldown_s=10.0)
OPEN = Stored(state=BreakerState.OPEN, failures=3, opened_at=1_000, reopens_at=11_000)
PROBING = Stored(
    state=BreakerState.HALF_OPEN, failures=3, opened_at=1_000, reopens_at=11_000,
    probe="a", probe_until=20_000,
)  # fmt: skip
S, F, N = Verdict.SUCCESS, Verdict.FAILURE, Verdict.NEUTRAL


def _fields(s: Stored) -> dict[str, object]:
    return {f: getattr(s, f) for f in s.__struct_fields__}


# (before, verdict, token, now_ms, after)
RECORD = [
    (CLOSED, S, "x", 0, CLOSED),
    (CLOSED, F, "x", 0, Stored(failures=1)),
    (Stored(failures=1), F, "x", 0, Stored(failures=2)),
    (Stored(failures=2), S, "x", 0, CLOSED),  # consecutive: a success starts again
    (Stored(failures=2), N, "x", 0, Stored(failures=2)),
    (Stored(failures=2), F, "x", 1_000, OPEN),  # the third failure opens it
    (Stored(failures=2, postponed=7), F, "x", 1_000, Stored(**{**_fields(OPEN), "postponed": 7})),
    (OPEN, F, "x", 2_000, OPEN),  # late outcomes of tasks admitted before it opened
    (OPEN, S, "x", 2_000, OPEN),
    (PROBING, S, "b", 12_000, PROBING),  # not the probe: ignored
    (PROBING, F, "b", 12_000, PROBING),
    (PROBING, S, "a", 12_000, CLOSED),  # the probe succeeded
    (
        PROBING,
        F,
        "a",
        12_000,
        Stored(state=BreakerState.OPEN, failures=3, opened_at=12_000, reopens_at=22_000),
    ),
    (
        PROBING,
        N,
        "a",
        12_000,
        Stored(state=BreakerState.HALF_OPEN, failures=3, opened_at=1_000, reopens_at=11_000),
    ),
]


@pytest.mark.parametrize(("before", "verdict", "token", "now_ms", "after"), RECORD)
def test_record(before: Stored, verdict: Verdict, token: str, now_ms: int, after: Stored) -> None:
    assert record(before, verdict, token, now_ms, P) == after


# (stored, now_ms, token, postpone (breaker, state, until) or None, probes taken)
ADMIT = [
    ({}, 0, "t", None, ()),
    ({"smtp": Stored(failures=2)}, 0, "t", None, ()),
    ({"smtp": OPEN}, 5_000, "t", ("smtp", BreakerState.OPEN, 11_000), ()),
    ({"smtp": OPEN}, 11_000, "t", None, ("smtp",)),  # cool-down over: this one probes
    ({"smtp": PROBING}, 12_000, "t", ("smtp", BreakerState.HALF_OPEN, 20_000), ()),
    ({"smtp": PROBING}, 15_000, "t", ("smtp", BreakerState.HALF_OPEN, 20_000), ()),
    ({"smtp": PROBING}, 20_000, "t", None, ("smtp",)),  # the probe's holder died: taken over
    ({"smtp": Stored(state=BreakerState.HALF_OPEN, failures=3, reopens_at=11_000)}, 12_000, "t",
     None, ("smtp",)),  # a probe that ended neutral: the next one probes
]  # fmt: skip


@pytest.mark.parametrize(("stored", "now_ms", "token", "postpone", "probes"), ADMIT)
def test_admit_one_breaker(
    stored: dict[str, Stored],
    now_ms: int,
    token: str,
    postpone: tuple[str, BreakerState, int] | None,
    probes: tuple[str, ...],
) -> None:
    verdict, writes = admit(stored, {"smtp": P}, now_ms, token, 9_000)
    got = verdict.postpone
    assert (got and (got.breaker, got.state, got.until_ms)) == (postpone or None)
    assert verdict.probes == probes
    if postpone:
        assert writes["smtp"].postponed == stored["smtp"].postponed + 1
    elif probes:
        assert writes["smtp"].probe == token
        assert writes["smtp"].probe_until == now_ms + 9_000
        assert writes["smtp"].state is BreakerState.HALF_OPEN
    else:
        assert writes == {}


def test_a_postponed_task_takes_no_probe() -> None:
    bank = Stored(state=BreakerState.OPEN, failures=3, opened_at=9_000, reopens_at=19_000)
    verdict, writes = admit({"smtp": OPEN, "bank": bank}, {"smtp": P, "bank": P}, 11_000, "t", 1)
    assert verdict.postpone is not None and verdict.postpone.breaker == "bank"
    assert verdict.probes == () and set(writes) == {"bank"}


def test_a_probe_wait_is_capped_by_the_cooldown() -> None:
    slow = Stored(state=BreakerState.HALF_OPEN, probe="a", probe_until=500_000)
    verdict, _ = admit({"smtp": slow}, {"smtp": P}, 12_000, "t", 1)
    assert verdict.postpone is not None and verdict.postpone.until_ms == 22_000


@pytest.mark.parametrize(
    ("stored", "now_ms", "state"),
    [
        (CLOSED, 0, BreakerState.CLOSED),
        (OPEN, 10_999, BreakerState.OPEN),
        (OPEN, 11_000, BreakerState.HALF_OPEN),
        (PROBING, 12_000, BreakerState.HALF_OPEN),
    ],
)
def test_effective_state(stored: Stored, now_ms: int, state: BreakerState) -> None:
    assert effective(stored, now_ms) is state


def test_a_full_cycle() -> None:
    s = CLOSED
    for now in (0, 1, 2):
        s = record(s, F, "w", now, P)
    assert s.state is BreakerState.OPEN and s.reopens_at == 10_002
    first, w1 = admit({"x": s}, {"x": P}, 10_002, "probe", 1_000)
    assert first.probes == ("x",)
    s = w1["x"]
    second, w2 = admit({"x": s}, {"x": P}, 10_003, "other", 1_000)
    assert second.postpone is not None and second.postpone.until_ms == 11_002
    s = record(w2["x"], S, "probe", 10_500, P)
    assert s == Stored(postponed=1)


@pytest.mark.parametrize(
    ("until_ms", "now_ms", "unit", "low", "high"),
    [
        (10_000, 0, 0.0, 10.0, 10.0),
        (10_000, 0, 1.0, 11.0, 11.0),  # jitter at most 1 s
        (1_000, 0, 1.0, 1.11, 1.11),  # a tenth of the wait (+10 ms)
        (0, 5_000, 0.5, 0.005, 0.005),  # already due
    ],
)
def test_postpone_delay(until_ms: int, now_ms: int, unit: float, low: float, high: float) -> None:
    assert low <= postpone_delay_s(until_ms, now_ms, unit) <= high + 1e-9


def test_declarations() -> None:
    got = declared(["smtp", Breaker("bank", failures=2)])
    assert [b.name for b in got] == ["smtp", "bank"]
    assert got[1].policy(P) == BreakerPolicy(failures=2, cooldown_s=10.0)
    for bad in (["a", "a"], ["{x}"], [""], ["a b"]):
        with pytest.raises(ValueError, match="breaker"):
            declared(bad)
    with pytest.raises(ValueError, match="failures"):
        Breaker("x", failures=0)
    with pytest.raises(ValueError, match="cooldown"):
        Breaker("x", cooldown_s=0)
