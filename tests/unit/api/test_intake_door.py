"""build() refuses every value PostgreSQL would refuse, before any group write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import pytest

from taskstream.api.catalog import KnownType
from taskstream.api.intake import build
from taskstream.api.schemas import SubmitTask
from taskstream.core.config import Settings
from taskstream.core.errors import ProblemError
from taskstream.store.task_types import TaskTypeRow

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ROW = TaskTypeRow(name="t", queue="default", timeout_s=60.0, max_attempts=3, payload_schema="{}")


class FakeCatalog:
    async def get(self, name: str) -> KnownType | None:
        return KnownType(ROW, lambda payload: payload) if name == "t" else None


async def _build(body: SubmitTask, correlation_id: str | None = "c1") -> Any:
    return await build(body, UUID(int=7), FakeCatalog(), Settings(), correlation_id, NOW)  # type: ignore[arg-type]


def _run_at(text: str) -> SubmitTask:
    return msgspec.json.decode(msgspec.json.encode({"type": "t", "run_at": text}), type=SubmitTask)


@pytest.mark.parametrize(
    "run_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2030-01-01T00:00:00Z"]
)
async def test_run_at_out_of_range_is_422(run_at: str) -> None:
    with pytest.raises(ProblemError) as caught:
        await _build(_run_at(run_at))
    assert (caught.value.status, caught.value.code) == (422, "invalid_schedule")


async def test_run_at_within_a_year_is_kept_in_utc() -> None:
    new = await _build(_run_at("2024-06-01T12:00:00+02:00"))
    assert new.run_at == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert (await _build(_run_at((NOW + timedelta(days=365)).isoformat()))).run_at is not None
    assert (await _build(_run_at("2000-01-01T00:00:00Z"))).run_at is None  # past: due now


@pytest.mark.parametrize(
    "changes",
    [
        {"idempotency_key": "k\x00"},
        {"idempotency_key": "line\nbreak"},
        {"queue": "q\x00"},
        {"type": "t\x00"},
        {"payload": {"a": "x\x00y"}},
        {"payload": {"k\x00": 1}},
        {"payload": {"deep": [{"a": ["\x00"]}]}},
    ],
)
async def test_nul_and_control_characters_are_422(changes: dict[str, Any]) -> None:
    with pytest.raises(ProblemError) as caught:
        await _build(SubmitTask(**{"type": "t", **changes}))
    assert caught.value.status == 422
    assert caught.value.code in ("invalid_character", "invalid_queue")


async def test_correlation_id_with_control_characters_is_400() -> None:
    with pytest.raises(ProblemError) as caught:
        await _build(SubmitTask(type="t"), correlation_id="a\rb")
    assert (caught.value.status, caught.value.code) == (400, "invalid_correlation_id")


async def test_a_backslash_text_is_not_a_nul() -> None:
    new = await _build(SubmitTask(type="t", payload={"a": "\\u0000"}))
    assert new.payload_json == b'{"a":"\\\\u0000"}'
