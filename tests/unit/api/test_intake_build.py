"""build(): one submission checked against its (cached) type, with a fake catalog; no I/O."""

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
from taskstream.core.errors import PayloadTooLarge, Unprocessable
from taskstream.core.models import Priority
from taskstream.store.task_types import TaskTypeRow

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TENANT = UUID(int=7)
ROW = TaskTypeRow(name="t", queue="default", timeout_s=60.0, max_attempts=3, payload_schema="{}")
decode = msgspec.json.Decoder(SubmitTask).decode


class FakeCatalog:
    async def get(self, name: str) -> KnownType | None:
        return KnownType(ROW, lambda payload: payload) if name == "t" else None


async def _build(raw: bytes, settings: Settings | None = None) -> Any:
    return await build(decode(raw), TENANT, FakeCatalog(), settings or Settings(), "c1", NOW)  # type: ignore[arg-type]


async def test_defaults_come_from_the_type() -> None:
    new = await _build(b'{"type": "t", "priority": "high", "payload": {"a": 1}}')
    assert (new.queue, new.max_attempts, new.timeout_s) == ("default", 3, 60.0)
    assert new.priority is Priority.HIGH
    assert new.payload_json == b'{"a":1}'
    assert (new.tenant_id, new.correlation_id, new.run_at, new.request_hash) == (
        TENANT,
        "c1",
        None,
        None,
    )


@pytest.mark.parametrize("queue", ["default", "eu.1", "a:b-c_d", "0", "q" * 64])
async def test_valid_queues(queue: str) -> None:
    new = await _build(msgspec.json.encode({"type": "t", "queue": queue}))
    assert new.queue == queue


@pytest.mark.parametrize(
    "queue",
    [
        "a b",
        "-x",
        "{tag}",
        "ключ",
        "default\n",
    ],
)
async def test_invalid_queues(queue: str) -> None:
    with pytest.raises(Unprocessable, match="queue names"):
        await _build(msgspec.json.encode({"type": "t", "queue": queue}))


async def test_unknown_type_and_large_payload() -> None:
    with pytest.raises(Unprocessable, match="unknown task type"):
        await _build(b'{"type": "nope"}')
    small = msgspec.structs.replace(Settings(), max_payload_bytes=10)
    with pytest.raises(PayloadTooLarge):
        await _build(b'{"type": "t", "payload": {"a": "0123456789"}}', small)


@pytest.mark.parametrize(
    ("fields", "run_at"),
    [
        ({"delay_s": 30}, NOW + timedelta(seconds=30)),
        ({"delay_s": 0}, None),
        ({"run_at": "2024-05-01T13:00:00Z"}, NOW + timedelta(hours=1)),
        ({"run_at": "2024-05-01T11:00:00Z"}, None),  # in the past: due now
    ],
)
async def test_run_at(fields: dict[str, Any], run_at: datetime | None) -> None:
    new = await _build(msgspec.json.encode({"type": "t", **fields}))
    assert new.run_at == run_at


@pytest.mark.parametrize(
    "fields",
    [{"delay_s": 5, "run_at": "2024-05-01T13:00:00Z"}, {"run_at": "2024-05-01T13:00:00"}],
)
async def test_bad_schedules(fields: dict[str, Any]) -> None:
    with pytest.raises(Unprocessable, match="run_at"):
        await _build(msgspec.json.encode({"type": "t", **fields}))
