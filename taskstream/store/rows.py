"""Rows of the tasks table to and from models, through the process's keyring: payloads are
sealed on the way in, payloads and results opened on the way out (core/crypto.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import msgspec

from ..core.crypto import PAYLOAD, RESULT, Keyring
from ..core.errors import SealBroken, SealKeyMissing
from ..core.models import ClaimedTask, Dispatch, Finish, NewTask, Priority, TaskRecord, TaskStatus

INSERT_COLUMNS = 16
AUDIT_COLUMNS = 5


def dispatches(rows: Iterable[asyncpg.Record]) -> list[Dispatch]:
    return [Dispatch(r["id"], r["tenant_id"], r["queue"], Priority(r["priority"]), r["region"])
            for r in rows]  # fmt: skip


class Rows:
    """The conversions of one store; ``keys`` empty: nothing sealed, sealed rows do not open."""

    __slots__ = ("keys",)

    def __init__(self, keys: Keyring) -> None:
        self.keys = keys

    def record(self, row: asyncpg.Record, payload: bytes | None = None) -> TaskRecord:
        """``payload``: the clear payload when the caller has it (saves opening it again)."""
        if payload is None:
            payload = self.keys.open(
                row["payload"], row["payload_key"], row["id"], PAYLOAD
            ).encode()
        result = row["result"]
        if result is not None:
            result = self.keys.open(result, row["result_key"], row["id"], RESULT)
        return TaskRecord(
            id=row["id"],
            tenant_id=row["tenant_id"],
            type=row["type"],
            queue=row["queue"],
            priority=Priority(row["priority"]),
            status=TaskStatus(row["status"]),
            payload=msgspec.Raw(payload),
            result=None if result is None else msgspec.Raw(result.encode()),
            last_error=row["last_error"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            timeout_s=row["timeout_s"],
            idempotency_key=row["idempotency_key"],
            correlation_id=row["correlation_id"],
            run_at=row["run_at"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            region=row["region"],
        )

    def claimed(self, r: asyncpg.Record) -> ClaimedTask:
        """A claimed task; one whose payload does not open carries why (``unreadable``), and
        its attempt ends with that error instead of running the handler."""
        unreadable = None
        try:
            payload = self.keys.open(r["payload"], r["payload_key"], r["id"], PAYLOAD)
        except (SealKeyMissing, SealBroken) as exc:
            payload, unreadable = "null", f"{exc.code}: {exc.detail}"
        return ClaimedTask(
            id=r["id"],
            tenant_id=r["tenant_id"],
            type=r["type"],
            queue=r["queue"],
            payload_json=payload,
            attempt=r["attempts"],
            max_attempts=r["max_attempts"],
            timeout_s=r["timeout_s"],
            lease_epoch=r["lease_epoch"],
            idempotency_key=r["idempotency_key"],
            correlation_id=r["correlation_id"],
            created_unix=r["created_unix"],
            run_unix=r["run_unix"],
            lease_s=r["lease_s"],
            unreadable=unreadable,
            trace_context=r["trace_context"],
        )

    def columns(self, tasks: Sequence[NewTask]) -> list[list[Any]]:
        """Column arrays for the ``unnest`` insert, payloads sealed, then the audit entries."""
        rows = []
        for t in tasks:
            payload, kid = self.keys.seal(t.payload_json, t.id, PAYLOAD)
            rows.append((
                t.id, t.tenant_id, t.type, t.queue, int(t.priority), payload, t.max_attempts,
                t.timeout_s, t.idempotency_key, t.request_hash, t.correlation_id, t.run_at,
                t.visibility_timeout_s, kid, t.region, t.trace_context,
            ))  # fmt: skip
        if not rows:
            return [[] for _ in range(INSERT_COLUMNS + AUDIT_COLUMNS)]
        cols = [list(col) for col in zip(*rows, strict=True)]
        audit: list[list[Any]] = [[] for _ in range(AUDIT_COLUMNS)]
        for t in tasks:
            if (e := t.audit) is not None:
                for col, value in zip(
                    audit, (t.id, e.at, e.actor, e.request_id, e.digest), strict=True
                ):
                    col.append(value)
        return cols + audit

    def results(self, items: Sequence[Finish]) -> tuple[list[str | None], list[str | None]]:
        """Sealed results and their key ids, for ``finish_tasks``."""
        if self.keys.current is None:
            return [f.result_json for f in items], [None] * len(items)
        texts: list[str | None] = []
        kids: list[str | None] = []
        for f in items:
            if f.result_json is None:
                texts.append(None)
                kids.append(None)
            else:
                text, kid = self.keys.seal(f.result_json.encode(), f.task_id, RESULT)
                texts.append(text)
                kids.append(kid)
        return texts, kids
