"""Publishing task ids to their streams: one pipelined round trip per batch.

Each entry goes to its (tenant, queue, priority) stream, and the stream is marked in that
priority's ready set (``Keys.ready``), in the same pipeline: workers read only streams marked
ready. The pipeline is not a transaction: a mark lost after its entry was added is found by the
workers' sweep (``Consumer.sweep``). Streams are named by tenant name; names are looked up once
per tenant and kept (a tenant is never renamed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from uuid import UUID

from ..core.breaker import Breaker
from ..core.errors import BrokerUnavailable
from ..core.models import Dispatch, Priority
from .connection import Redis, one_key_per_node, translate_errors
from .keys import Keys

NameSource = Callable[[Collection[UUID]], Awaitable[Mapping[UUID, str]]]
MAX_NAMES = 100_000


class Producer:
    def __init__(
        self, redis: Redis, keys: Keys, names: NameSource, breaker: Breaker | None = None
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.names = names  # tenant ids -> names (TenantStore.names)
        # While Redis is down, submissions must not each wait for a connect timeout: the row
        # is already committed and the relay publishes it later.
        self.breaker = breaker or Breaker()
        self._names: dict[UUID, str] = {}

    async def sentinel_was_missing(self) -> bool:
        """Set the sentinel key; True if it was missing, i.e. Redis lost its data (a restart
        without persistence, a failover to an empty replica) or this is a new deployment. On
        a cluster there is a sentinel on every master: True if any of them was missing."""
        with translate_errors():
            keys = await one_key_per_node(self.redis, self.keys.sentinel)
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, b"1", nx=True)
                return any(await pipe.execute())

    async def publish(self, items: Sequence[Dispatch]) -> None:
        """XADD each task id (as text) to its stream and mark the streams ready. No MAXLEN:
        trimming would delete entries no worker has read yet."""
        if not items:
            return
        if self.breaker.is_open:
            raise BrokerUnavailable("Redis unavailable (circuit open)")
        names = await self._tenant_names({d.tenant_id for d in items})
        ready: dict[Priority, set[str]] = {}
        try:
            with translate_errors():
                async with self.redis.pipeline(transaction=False) as pipe:
                    for d in items:
                        key = self.keys.stream(names[d.tenant_id], d.queue, d.priority, d.region)
                        pipe.xadd(key, {b"t": str(d.task_id)})
                        ready.setdefault(d.priority, set()).add(key)
                    for priority, streams in ready.items():
                        pipe.sadd(self.keys.ready(priority), *streams)
                    await pipe.execute()
        except BrokerUnavailable:
            self.breaker.failure()
            raise
        self.breaker.success()

    async def _tenant_names(self, ids: set[UUID]) -> Mapping[UUID, str]:
        missing = ids.difference(self._names)
        if missing:
            found = await self.names(missing)
            if len(self._names) + len(found) > MAX_NAMES:
                self._names.clear()
            self._names.update(found)
            unknown = missing.difference(found)
            if unknown:  # a task always belongs to an existing tenant: a bug if not
                raise LookupError(f"no tenant with id {sorted(unknown)[0]}")
        return self._names
