"""Publishing task ids to their streams: one pipelined round trip per batch."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.breaker import Breaker
from ..core.errors import BrokerUnavailable
from ..core.models import Dispatch
from .connection import Redis, translate_errors
from .keys import Keys


class Producer:
    def __init__(self, redis: Redis, keys: Keys, breaker: Breaker | None = None) -> None:
        self.redis = redis
        self.keys = keys
        # While Redis is down, submissions must not each wait for a connect timeout: the row
        # is already committed and the relay publishes it later.
        self.breaker = breaker or Breaker()

    async def sentinel_was_missing(self) -> bool:
        """Set the sentinel key; True if it was missing, i.e. Redis lost its data (a restart
        without persistence, a failover to an empty replica) or this is a new deployment."""
        with translate_errors():
            return bool(await self.redis.set(self.keys.sentinel, b"1", nx=True))

    async def publish(self, items: Sequence[Dispatch]) -> None:
        """XADD each task id to its (tenant, queue, priority) stream. No MAXLEN: trimming would
        delete entries no worker has read yet."""
        if not items:
            return
        if self.breaker.is_open:
            raise BrokerUnavailable("Redis unavailable (circuit open)")
        try:
            with translate_errors():
                async with self.redis.pipeline(transaction=False) as pipe:
                    for d in items:
                        key = self.keys.stream(d.tenant_id, d.queue, d.priority)
                        pipe.xadd(key, {b"t": d.task_id.bytes})
                    await pipe.execute()
        except BrokerUnavailable:
            self.breaker.failure()
            raise
        self.breaker.success()
