"""Publishing task ids to their streams: one pipelined round trip per batch."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.models import Dispatch
from .connection import Redis, translate_errors
from .keys import Keys


class Producer:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def publish(self, items: Sequence[Dispatch]) -> None:
        """XADD each task id to its (tenant, queue, priority) stream. No MAXLEN: trimming would
        delete entries no worker has read yet."""
        if not items:
            return
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for d in items:
                    pipe.xadd(
                        self.keys.stream(d.tenant_id, d.queue, d.priority), {b"t": d.task_id.bytes}
                    )
                await pipe.execute()
