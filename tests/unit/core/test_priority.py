"""Weighted turns 8:4:2:1 — critical is favoured, low is never starved."""

from __future__ import annotations

from collections import Counter

import pytest

from taskstream.core.models import Priority
from taskstream.core.priority import CYCLE, WEIGHTS, read_order

P = Priority
TURNS = [*range(-20, 50), 10**6 + 7, 2**63, -(2**40)]


def test_cycle_has_fifteen_turns_weighted_8_4_2_1() -> None:
    assert len(CYCLE) == 15
    assert Counter(CYCLE) == {P.CRITICAL: 8, P.HIGH: 4, P.NORMAL: 2, P.LOW: 1}
    assert Counter(CYCLE) == WEIGHTS


@pytest.mark.parametrize("turn", TURNS)
def test_read_order_is_the_favoured_one_then_strict_order(turn: int) -> None:
    order = read_order(turn)
    assert sorted(order) == list(Priority)
    assert order[0] is CYCLE[turn % 15]
    assert list(order[1:]) == sorted(set(Priority) - {order[0]})


@pytest.mark.parametrize("start", TURNS)
def test_every_window_of_fifteen_turns_has_the_weights(start: int) -> None:
    firsts = Counter(read_order(t)[0] for t in range(start, start + 15))
    assert firsts[P.LOW] == 1  # never starved
    assert firsts[P.CRITICAL] == 8
    assert firsts == WEIGHTS


@pytest.mark.parametrize("start", range(15))
def test_turns_are_spread_not_bunched(start: int) -> None:
    # Smooth round robin: critical leads at least every other turn.
    for t in range(start, start + 15):
        assert P.CRITICAL in (read_order(t)[0], read_order(t + 1)[0])
