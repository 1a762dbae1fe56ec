"""Priority names and the stored status strings (both are part of the wire and the schema)."""

from __future__ import annotations

import pytest

from taskstream.core.models import TERMINAL_STATUSES, Priority, TaskStatus

P = Priority


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("critical", P.CRITICAL),
        ("high", P.HIGH),
        ("normal", P.NORMAL),
        ("low", P.LOW),
        ("HIGH", P.HIGH),
        ("Low", P.LOW),
    ],
)
def test_parse(name: str, expected: Priority) -> None:
    assert Priority.parse(name) is expected


@pytest.mark.parametrize("name", ["", "urgent", "0", "3", " high", "high ", "medium", "label"])
def test_parse_rejects_anything_else(name: str) -> None:
    with pytest.raises(KeyError):
        Priority.parse(name)


@pytest.mark.parametrize("priority", list(Priority))
def test_label_round_trips(priority: Priority) -> None:
    assert priority.label == priority.name.lower()
    assert Priority.parse(priority.label) is priority


def test_lower_value_runs_first() -> None:
    assert [int(p) for p in (P.CRITICAL, P.HIGH, P.NORMAL, P.LOW)] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("status", "value", "terminal"),
    [
        (TaskStatus.PENDING, "pending", False),
        (TaskStatus.SCHEDULED, "scheduled", False),
        (TaskStatus.PROCESSING, "processing", False),
        (TaskStatus.COMPLETED, "completed", True),
        (TaskStatus.FAILED, "failed", True),
        (TaskStatus.CANCELLED, "cancelled", True),
    ],
)
def test_status_values(status: TaskStatus, value: str, terminal: bool) -> None:
    assert status == value
    assert str(status) == value
    assert TaskStatus(value) is status
    assert (status in TERMINAL_STATUSES) is terminal


def test_no_status_is_missing_from_the_table() -> None:
    assert len(TaskStatus) == 6
