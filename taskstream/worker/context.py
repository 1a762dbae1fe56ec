"""What a handler gets besides its payload."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import structlog

from ..store.transactions import AttemptTransaction


class TaskContext:
    """Identity of the running attempt, a bound logger, and ``transaction()``.

    ``lease_epoch`` is the fencing token: pass it (with ``idempotency_key``) to outside systems
    so they can reject a write from an attempt that lost its lease.
    """

    def __init__(
        self,
        *,
        task_id: UUID,
        tenant_id: UUID,
        type: str,  # noqa: A002 - the task's type name
        attempt: int,
        max_attempts: int,
        lease_epoch: int,
        idempotency_key: str | None,
        correlation_id: str | None,
        tx: AttemptTransaction | None = None,
    ) -> None:
        self.task_id = task_id
        self.tenant_id = tenant_id
        self.type = type
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.lease_epoch = lease_epoch
        # Stable across attempts: the submitted key, else the task id.
        self.idempotency_key = idempotency_key or str(task_id)
        self.correlation_id = correlation_id
        self._tx = tx

    @functools.cached_property
    def log(self) -> Any:
        """A logger bound to this attempt; made on first use (most handlers never log)."""
        return structlog.get_logger("taskstream.task").bind(
            task_id=str(self.task_id),
            task_type=self.type,
            attempt=self.attempt,
            correlation_id=self.correlation_id,
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """An asyncpg connection whose writes commit together with this task's completion, or
        not at all (handler error, timeout, or a lost lease). May be entered more than once."""
        if self._tx is None:
            raise RuntimeError("transaction() is only available inside a worker")
        yield await self._tx.connection()
