"""How many entries wait in a set of streams: not yet delivered to the consumer group. Acked
entries are deleted (consumer.ack), so a stream holds the waiting ones plus the pending ones
(delivered, not acked yet): waiting = XLEN - the group's pending count. One pipeline of two
single-key commands per stream, so it works on Redis Cluster as on one server. A worker in a
supervised pool reports it (worker/member.py) and the pool grows on it (pool/policy.py)."""

from __future__ import annotations

from collections.abc import Sequence

from .connection import Redis, translate_errors


async def waiting(redis: Redis, group: str, streams: Sequence[bytes]) -> int:
    """Entries in ``streams`` that no consumer of ``group`` has been handed yet."""
    if not streams:
        return 0
    with translate_errors():
        async with redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xlen(stream)
                pipe.xpending(stream, group)
            replies = await pipe.execute(raise_on_error=False)
    total = 0
    for length, pending in zip(replies[::2], replies[1::2], strict=True):
        if isinstance(length, int):  # an error reply: a stream without its group yet
            held = pending.get("pending", 0) if isinstance(pending, dict) else 0
            total += max(0, length - int(held))
    return total
