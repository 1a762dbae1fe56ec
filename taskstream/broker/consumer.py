"""Reading work from the streams through one consumer group, in priority turns.

The worker never takes more entries than it has free slots, reads without blocking in priority
order, and blocks on every stream only when all are empty. Entries stay pending (owned by this
consumer) until the worker acks them after PostgreSQL committed the outcome.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, NamedTuple
from uuid import UUID

from ..core.errors import BrokerRefused
from ..core.models import Priority
from ..core.priority import read_order
from .connection import Redis, is_missing_group, translate_errors
from .keys import Keys

_TOUCH = resources.files(__package__).joinpath("lua", "touch.lua").read_text("utf-8")


class Entry(NamedTuple):
    stream: bytes
    entry_id: bytes
    task_id: UUID


def _parse(stream: bytes, messages: Iterable[Any]) -> list[Entry]:
    out = []
    for entry_id, fields in messages:
        if fields and b"t" in fields:  # a deleted entry comes back with no fields
            out.append(Entry(stream, entry_id, UUID(bytes=fields[b"t"])))
    return out


class Consumer:
    def __init__(self, redis: Redis, keys: Keys, name: str) -> None:
        self.redis = redis
        self.keys = keys
        self.name = name
        self.by_priority: dict[Priority, list[bytes]] = {p: [] for p in Priority}
        self._known: set[bytes] = set()
        self._touch = redis.register_script(_TOUCH)

    @property
    def all_streams(self) -> list[bytes]:
        return [s for p in Priority for s in self.by_priority[p]]

    async def set_queues(self, queues: Iterable[tuple[UUID, str]]) -> None:
        """Read these (tenant, queue) pairs from now on; creates missing groups."""
        by_priority: dict[Priority, list[bytes]] = {p: [] for p in Priority}
        for tenant_id, queue in queues:
            for p, key in self.keys.streams(tenant_id, queue).items():
                by_priority[p].append(key.encode())
        new = [s for p in Priority for s in by_priority[p] if s not in self._known]
        await self._ensure_groups(new)
        self.by_priority = by_priority

    async def _ensure_groups(self, streams: Sequence[bytes]) -> None:
        # Id 0, not $: entries added before the group existed (or before Redis lost the group
        # in a restart) must still be delivered.
        for s in streams:
            try:
                with translate_errors():
                    await self.redis.xgroup_create(s, self.keys.group, id="0", mkstream=True)
            except BrokerRefused as exc:
                if not exc.reply.startswith("BUSYGROUP"):
                    raise
            self._known.add(s)

    async def read(self, slots: int, turn: int, block_ms: int) -> list[Entry]:
        """Up to ``slots`` new entries, highest priority first (see core.priority)."""
        if slots <= 0 or not self.all_streams:
            return []
        missing = [s for s in self.all_streams if s not in self._known]
        if missing:  # new queues, or groups Redis lost
            await self._ensure_groups(missing)
        try:
            for p in read_order(turn):
                keys = self.by_priority[p]
                if not keys:
                    continue
                start = turn % len(keys)  # rotate so no tenant's stream is always read first
                chosen = (keys[start:] + keys[:start])[:slots]
                found = await self._xreadgroup(chosen, slots // len(chosen), None)
                if found:
                    return found
            # Everything is empty: wait on all streams at once. With more streams than slots
            # this may return a few more entries than slots; the caller buffers them.
            return await self._xreadgroup(self.all_streams, 1, block_ms)
        except BrokerRefused as exc:
            if not is_missing_group(exc):
                raise
            # Redis lost the group (restart without persistence): recreate from id 0.
            self._known.clear()
            await self._ensure_groups(self.all_streams)
            return []

    async def _xreadgroup(
        self, keys: Sequence[bytes], count: int, block: int | None
    ) -> list[Entry]:
        with translate_errors():
            resp = await self.redis.xreadgroup(
                self.keys.group, self.name, dict.fromkeys(keys, b">"), count=count, block=block
            )
        out: list[Entry] = []
        for stream, messages in resp or ():
            out.extend(_parse(stream, messages))
        return out

    async def reclaim(self, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries idle past the visibility timeout (their consumer died or hung)."""
        out: list[Entry] = []
        for stream in self.all_streams:
            cursor: bytes | str = b"0-0"
            while len(out) < count:
                try:
                    with translate_errors():
                        resp = await self.redis.xautoclaim(
                            stream,
                            self.keys.group,
                            self.name,
                            min_idle_ms,
                            cursor,
                            count=count - len(out),
                        )
                except BrokerRefused as exc:
                    if not is_missing_group(exc):
                        raise
                    self._known.discard(stream)  # Redis lost it; read() recreates groups
                    break
                cursor, messages = resp[0], resp[1]
                out.extend(_parse(stream, messages))
                if cursor in (b"0-0", "0-0"):
                    break
        return out

    async def ack(self, entries: Iterable[Entry]) -> None:
        """XACK and XDEL: done entries leave the stream (no trimming needed)."""
        grouped = _group(entries)
        if not grouped:
            return
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream, ids in grouped.items():
                    pipe.xack(stream, self.keys.group, *ids)
                    pipe.xdel(stream, *ids)
                await pipe.execute()

    async def touch(self, entries: Iterable[Entry]) -> set[bytes]:
        """Reset idle time of entries this consumer owns; returns the entry ids still owned."""
        kept: set[bytes] = set()
        for stream, ids in _group(entries).items():
            try:
                with translate_errors():
                    result = await self._touch(
                        keys=[stream], args=[self.keys.group, self.name, *ids]
                    )
            except BrokerRefused as exc:
                if not is_missing_group(exc):
                    raise
                continue  # the stream is gone (Redis restarted empty): nothing to keep
            kept.update(result)
        return kept


def _group(entries: Iterable[Entry]) -> dict[bytes, list[bytes]]:
    grouped: dict[bytes, list[bytes]] = defaultdict(list)
    for e in entries:
        grouped[e.stream].append(e.entry_id)
    return grouped
