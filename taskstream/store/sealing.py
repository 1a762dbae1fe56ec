"""Key rotation: every stored payload and result sealed again with the first key, in batches
(``taskstream reencrypt``). Rows written meanwhile are already sealed with it; rows changed
between the read and the write of a batch are left for the next pass (compare-and-set)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from ..core.crypto import PAYLOAD, RESULT, Keyring
from . import queries
from .database import acquire

Q = queries.load("sealing")
MAX_PASSES = 5


class Resealed(msgspec.Struct, kw_only=True):
    moved: int = 0  # rows sealed again
    changed: int = 0  # rows that changed under a pass (taken by the next one)
    passes: int = 0


class Resealer:
    def __init__(self, pool: asyncpg.Pool[Any], keys: Keyring) -> None:
        if keys.current is None:
            raise ValueError("TASKSTREAM_ENCRYPTION_KEYS is not set: there is no key to move to")
        self.pool = pool
        self.keys = keys
        self.kid: str = keys.current

    async def count(self) -> int:
        async with acquire(self.pool) as conn:
            return int(await conn.fetchval(Q["count_stale"], self.kid))

    async def run(self, batch: int = 1000, progress: Callable[[str], None] = print) -> Resealed:
        total = await self.count()
        progress(f"{total:,} rows to seal with key {self.kid!r}")
        out = Resealed()
        shown = time.monotonic()
        while out.passes < MAX_PASSES:
            out.passes += 1
            changed = 0
            after = UUID(int=0)
            while True:
                async with acquire(self.pool) as conn:
                    rows = await conn.fetch(Q["stale_after"], self.kid, after, batch)
                    if not rows:
                        break
                    done = await conn.fetch(Q["reseal"], *self._columns(rows))
                after = rows[-1]["id"]
                out.moved += len(done)
                changed += len(rows) - len(done)
                if time.monotonic() - shown >= 1:
                    shown = time.monotonic()
                    progress(f"sealed {out.moved:,} of {total:,} rows")
            out.changed += changed
            if not changed:
                break
        return out

    def _columns(self, rows: list[asyncpg.Record]) -> list[list[Any]]:
        keys = self.keys
        cols: list[list[Any]] = [[] for _ in range(9)]
        for r in rows:
            payload = keys.open(r["payload"], r["payload_key"], r["id"], PAYLOAD)
            sealed_payload, payload_key = keys.seal(payload.encode(), r["id"], PAYLOAD)
            sealed_result, result_key = None, None
            if r["result"] is not None:
                result = keys.open(r["result"], r["result_key"], r["id"], RESULT)
                sealed_result, result_key = keys.seal(result.encode(), r["id"], RESULT)
            row = (r["id"], sealed_payload, payload_key, sealed_result, result_key,
                   r["payload"], r["payload_key"], r["result"], r["result_key"])  # fmt: skip
            for col, value in zip(cols, row, strict=True):
                col.append(value)
        return cols
