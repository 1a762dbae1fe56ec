"""Submission bodies: unknown fields, priorities and bounds are rejected at decode time."""

from __future__ import annotations

import json
import typing
from typing import Any

import msgspec
import pytest

from taskstream.api.schemas import PriorityName, SubmitBatch, SubmitTask
from taskstream.core.models import Priority

task_decoder = msgspec.json.Decoder(SubmitTask)
batch_decoder = msgspec.json.Decoder(SubmitBatch)
DAY = 86_400


def _task(**fields: Any) -> bytes:
    return json.dumps({"type": "email.send", **fields}).encode()


def test_minimal_body_gets_the_defaults() -> None:
    body = task_decoder.decode(_task())
    assert body.type == "email.send"
    assert body.payload == {}
    assert body.priority == "normal"
    assert (body.queue, body.timeout_s, body.max_attempts, body.delay_s) == (None,) * 4


def test_priority_names_are_the_core_labels() -> None:
    assert set(typing.get_args(PriorityName)) == {p.label for p in Priority}


@pytest.mark.parametrize(
    "fields",
    [
        {"priority": "critical"},
        {"priority": "low"},
        {"timeout_s": 0.001},
        {"timeout_s": DAY},
        {"max_attempts": 1},
        {"max_attempts": 100},
        {"delay_s": 0},
        {"delay_s": 366 * DAY},
        {"type": "t" * 128},
        {"queue": "q" * 64},
        {"payload": {"nested": [1, {"a": None}]}},
        {"run_at": "2030-01-01T00:00:00Z", "idempotency_key": "k"},
    ],
)
def test_accepted(fields: dict[str, Any]) -> None:
    body = task_decoder.decode(_task(**fields))
    for name, value in fields.items():
        if name != "run_at":
            assert getattr(body, name) == value


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"prio": "high"}, "prio"),  # unknown field
        ({"priority": "urgent"}, "priority"),
        ({"priority": "HIGH"}, "priority"),
        ({"priority": 1}, "priority"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": DAY + 0.5}, "timeout_s"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 101}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"delay_s": -0.1}, "delay_s"),
        ({"delay_s": 366 * DAY + 1}, "delay_s"),
        ({"type": ""}, "type"),
        ({"type": "t" * 129}, "type"),
        ({"queue": ""}, "queue"),
        ({"queue": "q" * 65}, "queue"),
        ({"payload": [1]}, "payload"),
        ({"payload": "x"}, "payload"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"run_at": "tomorrow"}, "run_at"),
    ],
)
def test_rejected(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=where):
        task_decoder.decode(_task(**fields))


def test_type_is_required() -> None:
    with pytest.raises(msgspec.ValidationError, match="type"):
        task_decoder.decode(b'{"payload": {}}')


def _batch(n: int, **extra: Any) -> bytes:
    return json.dumps({"tasks": [{"type": "t"}] * n, **extra}).encode()


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_batch_sizes_accepted(n: int) -> None:
    assert len(batch_decoder.decode(_batch(n)).tasks) == n


@pytest.mark.parametrize("n", [0, 1001])
def test_batch_sizes_rejected(n: int) -> None:
    with pytest.raises(msgspec.ValidationError, match="tasks"):
        batch_decoder.decode(_batch(n))


@pytest.mark.parametrize(
    "raw",
    [
        _batch(1, extra=True),
        b'{"tasks": [{"type": "t", "bogus": 1}]}',
        b'{"tasks": [{"type": "t", "max_attempts": 0}]}',
        b'{"tasks": {"type": "t"}}',
        b"{}",
    ],
)
def test_batch_rejects_bad_bodies(raw: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        batch_decoder.decode(raw)
