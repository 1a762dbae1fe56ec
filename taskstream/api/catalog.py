"""Task-type definitions cached in memory, with compiled payload validators. Reloaded when a
worker announces new definitions (LISTEN/NOTIFY) and, at most once a second, on an unknown type."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import fastjsonschema
import msgspec
import structlog

from ..store.task_types import TaskTypeRow, TaskTypeStore

log = structlog.get_logger("taskstream.api")
RELOAD_ON_MISS_S = 1.0


class KnownType(msgspec.Struct, frozen=True):
    row: TaskTypeRow
    validate: Callable[[Any], Any]


class Catalog:
    def __init__(self, store: TaskTypeStore) -> None:
        self.store = store
        self._types: dict[str, KnownType] = {}
        self._loaded_at = 0.0
        self.stale = True

    async def get(self, name: str) -> KnownType | None:
        known = self._types.get(name)
        now = time.monotonic()
        if self.stale or (known is None and now - self._loaded_at > RELOAD_ON_MISS_S):
            await self.reload()
            known = self._types.get(name)
        return known

    async def reload(self) -> None:
        rows = await self.store.all()
        types: dict[str, KnownType] = {}
        for row in rows:
            try:
                schema = msgspec.json.decode(row.payload_schema)
                validate = fastjsonschema.compile(schema, use_default=False)
            except (msgspec.DecodeError, fastjsonschema.JsonSchemaDefinitionException) as exc:
                log.error("unusable payload schema", task_type=row.name, error=str(exc))
                continue
            types[row.name] = KnownType(row, validate)
        self._types = types
        self._loaded_at = time.monotonic()
        self.stale = False

    def invalidate(self) -> None:
        self.stale = True
