"""Two small pieces the API's in-memory caches share (keys, limits, backlog counts)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedCalls(Generic[K, V]):
    """One call per key at a time: callers that come while it runs wait for the same result
    (a cache miss under load costs one look-up, not one per request). The call is shielded, so
    a caller that gives up does not cancel it for the others."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    async def __call__(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(call())
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(running)


def remember(cache: dict[K, V], key: K, value: V, limit: int) -> None:
    """Keep ``value`` as the newest entry; past ``limit`` entries the oldest are forgotten."""
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > limit:
        cache.pop(next(iter(cache)))
