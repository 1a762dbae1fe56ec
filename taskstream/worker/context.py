"""What a handler gets besides its payload."""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog

from ..core.breakers import PROBE_MARGIN_MS, Breaker, BreakerState, Verdict, postpone_delay_s
from ..core.errors import BreakerOpen, Unavailable
from ..core.outcomes import Fail
from ..store.transactions import AttemptTransaction

if TYPE_CHECKING:  # `import taskstream` (TaskContext) loads no Redis client
    from ..broker.breakers import Breakers

log = structlog.get_logger("taskstream.worker")


class TaskContext:
    """Identity of the running attempt, a bound logger, ``transaction()`` and ``breaker()``.

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
        breakers: Breakers | None = None,
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
        self.breakers = breakers  # None outside a worker: breaker() then guards nothing

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

    @contextlib.asynccontextmanager
    async def breaker(self, dependency: str | Breaker) -> AsyncIterator[None]:
        """Guard a dependency used on some paths only (``async with ctx.breaker("smtp"):``).
        While the tenant's breaker is open this raises :class:`BreakerOpen`: let it propagate,
        the task is postponed without spending an attempt. An exception inside counts as a
        failure of the dependency (except ``Fail``: a verdict on the input, not on it)."""
        needs = (dependency if isinstance(dependency, Breaker) else Breaker(dependency),)
        ttl_ms = needs[0].policy(self.breakers.default).cooldown_ms if self.breakers else 0
        refused = await self.enter_breakers(needs, ttl_ms + PROBE_MARGIN_MS)
        if refused is not None:
            raise refused
        try:
            yield
        except (Fail, BreakerOpen):
            await self.leave_breakers(needs, Verdict.NEUTRAL)
            raise
        except BaseException:  # a timeout (cancellation) of a slow dependency included
            await self.leave_breakers(needs, Verdict.FAILURE)
            raise
        await self.leave_breakers(needs, Verdict.SUCCESS)

    @property
    def _token(self) -> str:
        return f"{self.task_id}:{self.lease_epoch}"  # this attempt, and no other

    async def enter_breakers(
        self, needs: Sequence[Breaker], probe_ttl_ms: int
    ) -> BreakerOpen | None:
        """Why this attempt must wait (a BreakerOpen to return or raise), or None to go on. With
        Redis unreachable the breakers are not known: the attempt goes on (fails open)."""
        if self.breakers is None:
            return None
        try:
            gate = await self.breakers.admit(self.tenant_id, needs, self._token, probe_ttl_ms)
        except Unavailable as exc:
            log.warning(
                "breakers unknown (Redis): running", error=str(exc), task_id=str(self.task_id)
            )
            return None
        wait = gate.admission.postpone
        if wait is None:
            if gate.admission.probes:
                log.info("breaker probe", breakers=list(gate.admission.probes),
                         tenant_id=str(self.tenant_id), task_id=str(self.task_id))  # fmt: skip
            return None
        # Jitter, not security: a PRNG is right here.
        delay_s = postpone_delay_s(wait.until_ms, gate.now_ms, random.random())  # noqa: S311
        return BreakerOpen(wait.breaker, str(wait.state), delay_s)

    async def leave_breakers(self, needs: Sequence[Breaker], verdict: Verdict) -> None:
        """Report what this attempt says about its dependencies; a lost report (Redis down)
        costs one count, never the task."""
        if self.breakers is None:
            return
        try:
            changed = await self.breakers.record(self.tenant_id, needs, self._token, verdict)
        except Unavailable as exc:
            log.warning("breaker outcome not recorded", error=str(exc), task_id=str(self.task_id))
            return
        for name, state in changed:  # opened (a warning), or closed after a probe
            say = log.warning if state is BreakerState.OPEN else log.info
            say(f"breaker {state.replace('_', '-')}", breaker=name, tenant_id=str(self.tenant_id),
                task_id=str(self.task_id))  # fmt: skip
