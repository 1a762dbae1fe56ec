"""The state machine table: every edge, every non-edge, and the shape of the graph."""

from __future__ import annotations

import itertools

import pytest

from taskstream.core.models import TERMINAL_STATUSES, TaskStatus
from taskstream.core.states import CANCELLABLE, TRANSITIONS, can_transition

S = TaskStatus

EDGES = {
    (S.PENDING, S.PROCESSING),
    (S.PENDING, S.CANCELLED),
    (S.SCHEDULED, S.PENDING),
    (S.SCHEDULED, S.CANCELLED),
    (S.PROCESSING, S.PROCESSING),
    (S.PROCESSING, S.PENDING),
    (S.PROCESSING, S.SCHEDULED),
    (S.PROCESSING, S.COMPLETED),
    (S.PROCESSING, S.FAILED),
    (S.FAILED, S.PENDING),
}


def test_table_has_a_row_for_every_status() -> None:
    assert set(TRANSITIONS) == set(TaskStatus)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(TaskStatus, repeat=2)))
def test_can_transition_matches_the_edge_list(current: TaskStatus, target: TaskStatus) -> None:
    assert can_transition(current, target) is ((current, target) in EDGES)


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_terminal_states_have_no_exit_but_replay(status: TaskStatus) -> None:
    expected = {S.PENDING} if status is S.FAILED else set()
    assert set(TRANSITIONS[status]) == expected


def test_cancellable_is_exactly_the_states_with_an_edge_to_cancelled() -> None:
    assert {S.PENDING, S.SCHEDULED} == CANCELLABLE
    assert {s for s in TaskStatus if can_transition(s, S.CANCELLED)} == CANCELLABLE
    assert S.PROCESSING not in CANCELLABLE


def _reachable(start: TaskStatus) -> set[TaskStatus]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


@pytest.mark.parametrize("status", sorted(set(TaskStatus) - TERMINAL_STATUSES))
def test_every_live_state_can_still_finish(status: TaskStatus) -> None:
    assert _reachable(status) & TERMINAL_STATUSES


def test_every_state_is_reachable_from_submission() -> None:
    assert _reachable(S.PENDING) | _reachable(S.SCHEDULED) == set(TaskStatus)
