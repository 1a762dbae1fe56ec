"""The task state machine as a table. The store's SQL enforces the same edges with
compare-and-set ``WHERE status = ...`` clauses; this table is what the tests hold them to."""

from __future__ import annotations

from .models import TaskStatus

S = TaskStatus

TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.PENDING: frozenset({S.PROCESSING, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.PENDING, S.CANCELLED}),
    # processing -> processing: a lease that ran out is claimed again with a higher epoch.
    # processing -> pending: a graceful shutdown or a rescued lease hands the task back.
    S.PROCESSING: frozenset({S.PROCESSING, S.PENDING, S.SCHEDULED, S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset({S.PENDING}),  # replay from the dead-letter queue
    S.CANCELLED: frozenset(),
}

CANCELLABLE = frozenset({S.PENDING, S.SCHEDULED})


def can_transition(current: TaskStatus, target: TaskStatus) -> bool:
    """Whether ``current -> target`` is an edge of the state machine."""
    return target in TRANSITIONS[current]
