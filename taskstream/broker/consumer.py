"""Reading work from the streams through one consumer group: only streams with work, priority
turns across levels, weighted fair shares between tenants within a level.

The worker never takes more entries than it has free slots, reads without blocking, and blocks
on every stream only when no stream is marked ready. Entries stay pending (owned by this
consumer) until the worker acks them after PostgreSQL committed the outcome.

Ready index. Producers mark a stream in its priority's ready set when they add an entry
(``Producer.publish``). A turn reads the ready sets (one round trip), picks the first priority in
this turn's order (core.priority) that has ready streams this worker serves, shares the free
slots between them and reads them (one more round trip). An idle stream costs nothing: it is
not in a ready set. A stream that had nothing new is unmarked and then read once more; an entry
added meanwhile is found by that read (and the stream marked again) or its producer's mark comes
after the unmark, so no entry is left unmarked. A sweep every ``SWEEP_S`` marks every served
stream that holds entries (a mark lost with a failed pipeline, streams of the old layout) and
records which streams hold any, for the reclaim pass.

Fair shares. Within a priority the slots are shared between ready streams in proportion to
their tenant's weight (split evenly between the tenant's streams), with deficit round robin:
each turn a stream earns ``slots * share`` credit and reads as many entries as its whole credit,
so with more streams than slots every stream still gets its turn, weight-proportionally. A
tenant's backlog therefore delays another tenant's new task by at most a few reads. Slots left
after the whole credits go to the most owed streams in quanta of ``slots // MAX_STREAMS``
entries: with many ready streams a turn reads a few of them, several entries each, rather than
one entry from each of hundreds (a stream costs the read, the ack and PostgreSQL's claim about
as much as an entry: 1,000 tenants drained at 0.59x the rate of one when every turn read one
entry each from hundreds of streams).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from importlib import resources
from typing import Any, NamedTuple
from uuid import UUID

from ..core.errors import BrokerRefused
from ..core.models import Priority
from ..core.priority import read_order
from .connection import Redis, is_missing_group, slot_groups, translate_errors
from .entries import Entry as Entry  # the worker takes it from here
from .entries import group, parse
from .keys import Keys, ServedQueue

_TOUCH = resources.files(__package__).joinpath("lua", "touch.lua").read_text("utf-8")
SWEEP_S = 5.0
GROUPS_PER_TRIP = 500  # XGROUP CREATEs per pipeline when a worker learns of new streams
MAX_QUIET = 64  # read_new watches this many of the streams emptied last
MAX_STREAMS = 16  # a turn's slots are handed out in quanta of at least slots // MAX_STREAMS
CLUSTER_POLL_MS = 50  # on a cluster, the pause between looks of an idle worker (_read_slots)


Rooms = Callable[[Collection[UUID]], dict[UUID, int]]  # how many more entries each may take


class _Stream(NamedTuple):
    tenant_id: UUID
    priority: Priority
    weight: int
    legacy: bool  # a stream of the layout before issue 12: drained, never created


class Consumer:
    def __init__(self, redis: Redis, keys: Keys, name: str) -> None:
        self.redis = redis
        self.keys = keys
        self.name = name
        self.by_priority: dict[Priority, list[bytes]] = {p: [] for p in Priority}
        self._streams: dict[bytes, _Stream] = {}
        self._known: set[bytes] = set()  # streams whose group is known to exist
        self._credit: dict[Priority, dict[bytes, float]] = {p: {} for p in Priority}
        self._current: frozenset[bytes] = frozenset()  # all_streams, as a set
        self._served: tuple[ServedQueue, ...] = ()
        self._holding: set[bytes] = set()  # streams that held entries at the last sweep
        self._quiet: dict[bytes, None] = {}  # streams this consumer emptied, the last last
        self.held_back = False  # the last read left ready streams for lack of room
        self._swept_at = -SWEEP_S
        self._touch = redis.register_script(_TOUCH)

    @property
    def all_streams(self) -> list[bytes]:
        """The streams of the current layout this worker serves."""
        return [s for p in Priority for s in self.by_priority[p]]

    async def set_queues(self, queues: Iterable[ServedQueue]) -> None:
        """Read these queues from now on; creates missing streams and groups."""
        queues = tuple(queues)
        if queues == self._served and self._known.issuperset(self._current):
            return  # unchanged (the worker asks every second)
        self._served = queues
        by_priority: dict[Priority, list[bytes]] = {p: [] for p in Priority}
        streams: dict[bytes, _Stream] = {}
        for q in queues:
            legacy = self.keys.legacy_streams(q.tenant_id, q.queue)
            for p, key in self.keys.streams(q.tenant, q.queue, q.region).items():
                by_priority[p].append(key.encode())
                streams[key.encode()] = _Stream(q.tenant_id, p, q.weight, legacy=False)
                if not q.region:  # tasks from before regions have none
                    streams[legacy[p].encode()] = _Stream(q.tenant_id, p, q.weight, legacy=True)
        new = [s for p in Priority for s in by_priority[p] if s not in self._known]
        await self._ensure_groups(new)
        if set(streams) - set(self._streams):
            self._swept_at = -SWEEP_S  # sweep new queues (and their old-layout streams) soon
        self.by_priority, self._streams = by_priority, streams
        self._current = frozenset(self.all_streams)

    async def _ensure_groups(self, streams: Sequence[bytes]) -> None:
        """Create each stream's group (and the stream) unless it exists: pipelined, so a worker
        starting with 1,000 tenants' queues does not wait for 4,000 round trips."""
        # Id 0, not $: entries added before the group existed (or before Redis lost the group
        # in a restart) must still be delivered.
        for i in range(0, len(streams), GROUPS_PER_TRIP):
            chunk = streams[i : i + GROUPS_PER_TRIP]
            with translate_errors():
                async with self.redis.pipeline(transaction=False) as pipe:
                    for s in chunk:
                        pipe.xgroup_create(s, self.keys.group, id="0", mkstream=True)
                    replies = await pipe.execute(raise_on_error=False)
            for s, reply in zip(chunk, replies, strict=True):
                if isinstance(reply, Exception) and not str(reply).startswith("BUSYGROUP"):
                    raise BrokerRefused(str(reply))
                self._known.add(s)

    @property
    def tenant_count(self) -> int:
        """How many tenants' queues this worker serves."""
        return len({q.tenant_id for q in self._served})

    async def read(
        self, slots: int, turn: int, block_ms: int, room: Rooms | None = None
    ) -> list[Entry]:
        """Up to ``slots`` new entries: the first priority of this turn's order with ready
        streams, shared between them by weight (see the module's docstring); a tenant takes
        no more than ``room(tenants)[tenant]`` of them. Blocks only if no served stream is ready."""
        if slots <= 0 or not self._streams:
            return []
        if not self._known.issuperset(self._current):  # new queues, or groups Redis lost
            await self._ensure_groups([s for s in self._current if s not in self._known])
        if time.monotonic() - self._swept_at >= SWEEP_S:
            await self.sweep()
        order = read_order(turn)
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for p in order:
                    pipe.smembers(self.keys.ready(p))
                marked = await pipe.execute()
        self.held_back = False
        for p, members in zip(order, marked, strict=True):
            ready = [s for s in members if s in self._streams]
            counts = self._counts(p, ready, slots, room)
            if not counts:
                continue
            found = await self._read_ready(p, counts)
            if found:
                return found
        if self.held_back:  # work is there, for tenants without room now: no blocking wait
            return []
        # Nothing ready: wait on every stream at once. With more streams than slots this may
        # return a few more entries than slots; the caller buffers them.
        return await self._read(dict.fromkeys(self.all_streams, 1), block_ms)

    async def read_new(self, slots: int, block_ms: int, room: Rooms) -> list[Entry] | None:
        """Entries added to streams this worker emptied lately (of tenants with room), waiting
        up to ``block_ms`` for one: what a worker busy with one tenant's backlog watches while
        its slots refill, so that another tenant's new task starts at once (the backlog's
        streams are never emptied, so never watched). None if there is nothing to watch."""
        quiet = [s for s in self._quiet if s in self._streams]
        rooms = room({self._streams[s].tenant_id for s in quiet})
        watched = [s for s in quiet[-MAX_QUIET:] if rooms[self._streams[s].tenant_id] > 0]
        if not watched:
            return None
        found = await self._read(dict.fromkeys(watched, slots), block_ms)
        for e in found:
            self._quiet.pop(e.stream, None)  # marked ready by its producer: read as usual
        return found

    def _counts(
        self, priority: Priority, ready: list[bytes], slots: int, room: Rooms | None
    ) -> dict[bytes, int]:
        """The shares of the ready streams whose tenants have room, each tenant's cut to it."""
        if room is None or not ready:
            return self._share(priority, ready, slots)
        rooms = room({self._streams[s].tenant_id for s in ready})
        allowed = [s for s in ready if rooms[self._streams[s].tenant_id] > 0]
        if len(allowed) == len(ready):
            return _capped(self._share(priority, ready, slots), rooms, self._streams)
        self.held_back = True
        owed, kept = self._credit[priority], set(allowed)
        held = {s: owed[s] for s in ready if s not in kept and s in owed}
        counts = _capped(self._share(priority, allowed, slots), rooms, self._streams)
        self._credit[priority].update(held)  # held back, not forgotten
        return counts

    def _share(self, priority: Priority, ready: list[bytes], slots: int) -> dict[bytes, int]:
        """Deficit round robin: entries to read from each ready stream this turn."""
        if not ready:
            return {}
        per_tenant: dict[UUID, int] = defaultdict(int)
        for s in ready:
            per_tenant[self._streams[s].tenant_id] += 1
        shares = {
            s: self._streams[s].weight / per_tenant[self._streams[s].tenant_id] for s in ready
        }
        total = sum(shares.values())
        owed = self._credit[priority]
        credit = {s: owed.get(s, 0.0) + slots * shares[s] / total for s in ready}
        counts: dict[bytes, int] = {}
        left = slots
        quantum = max(1, slots // MAX_STREAMS)
        for s in ready:  # whole credits first, a quantum or more
            n = min(left, int(credit[s])) if credit[s] >= quantum else 0
            if n:
                counts[s] = n
                credit[s] -= n
                left -= n
        # Slots still free go a quantum at a time to the most owed streams, which may borrow (a
        # negative credit is paid back on later turns).
        owed_most = [(-c, s) for s, c in credit.items()]
        heapq.heapify(owed_most)
        while left > 0:
            c, s = heapq.heappop(owed_most)
            n = min(left, quantum)
            counts[s] = counts.get(s, 0) + n
            credit[s] -= n
            left -= n
            heapq.heappush(owed_most, (c + n, s))
        self._credit[priority] = credit  # a stream that is not ready keeps no credit
        return counts

    async def _read_ready(self, priority: Priority, counts: dict[bytes, int]) -> list[Entry]:
        found, empty = await self._read_each(counts)
        if len(counts) >= MAX_STREAMS // 2:
            # Many streams read a quantum each: one that gave fewer entries than asked is empty
            # now, and left marked it would be handed a quantum in the next turn for nothing
            # (1,000 tenants of 20 tasks each drained at 0.74x of one tenant's). With a few
            # streams the next turn finds out, without two more round trips in this one.
            got = Counter(e.stream for e in found)
            empty += [s for s, n in counts.items() if 0 < got[s] < n]
        if empty:
            # Unmark, then look once more: an entry added before the unmark is read now; one
            # added after it was marked again by its producer.
            await self._mark(priority, empty, ready=False)
            again, still = await self._read_each(dict.fromkeys(empty, 1))
            if again:
                await self._mark(priority, list({e.stream for e in again}), ready=True)
                found.extend(again)
            for s in still:
                self._quiet.pop(s, None)  # to the end: the most recently emptied last
                self._quiet[s] = None
            if len(self._quiet) > 4 * MAX_QUIET:
                self._quiet = dict.fromkeys(list(self._quiet)[-MAX_QUIET:])
        return found

    async def _mark(self, priority: Priority, streams: list[bytes], *, ready: bool) -> None:
        key = self.keys.ready(priority)
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                (pipe.sadd if ready else pipe.srem)(key, *streams)
                await pipe.execute()

    async def _read_each(self, counts: dict[bytes, int]) -> tuple[list[Entry], list[bytes]]:
        """Read each stream with its own count, one XREADGROUP per distinct count (with many
        tenants most read one entry each: one command, not one per stream), in one round trip.
        Also returns the streams that had nothing new (or are gone: an old-layout stream after
        its last entry)."""
        by_count: dict[int, list[bytes]] = defaultdict(list)
        for s, n in counts.items():
            by_count[n].append(s)
        groups = [
            (n, group)
            for n, streams in by_count.items()
            for group in slot_groups(self.redis, streams)
        ]
        replies = await self._pipelined_reads(groups)
        found: list[Entry] = []
        empty: list[bytes] = []
        for (n, streams), reply in zip(groups, replies, strict=True):
            if isinstance(reply, Exception):
                if "NOGROUP" not in str(reply):
                    raise BrokerRefused(str(reply))
                if len(streams) > 1:  # one stream without its group fails the command
                    for stream in streams:  # so read them one by one (it was the same command
                        more, none = await self._read_each({stream: n})  # again, for ever)
                        found.extend(more)
                        empty.extend(none)
                    continue
                self._known.discard(streams[0])  # Redis lost it (or an old stream is gone)
                empty.extend(streams)
                continue
            had: set[bytes] = set()
            for stream, messages in reply or ():
                entries = parse(stream, messages)
                if entries:
                    had.add(stream)
                    found.extend(entries)
            empty.extend(s for s in streams if s not in had)
        return found, empty

    async def _pipelined_reads(self, groups: list[tuple[int, list[bytes]]]) -> list[Any]:
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for n, streams in groups:
                    pipe.xreadgroup(
                        self.keys.group, self.name, dict.fromkeys(streams, b">"), count=n
                    )
                replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def _read(self, counts: dict[bytes, int], block: int | None) -> list[Entry]:
        """One XREADGROUP over several streams (one count for all)."""
        if not counts:
            return []
        groups = slot_groups(self.redis, counts)
        if len(groups) > 1:
            return await self._read_slots(groups, max(counts.values()), block)
        try:
            with translate_errors():
                resp = await self.redis.xreadgroup(
                    self.keys.group, self.name, dict.fromkeys(counts, b">"),
                    count=max(counts.values()), block=block,
                )  # fmt: skip
        except BrokerRefused as exc:
            if not is_missing_group(exc):
                raise
            # Redis lost the group (restart without persistence): recreate from id 0.
            self._known.clear()
            await self._ensure_groups(self.all_streams)
            return []
        out: list[Entry] = []
        for stream, messages in resp or ():
            out.extend(parse(stream, messages))
        return out

    async def _read_slots(
        self, groups: list[list[bytes]], count: int, block: int | None
    ) -> list[Entry]:
        """What ``_read`` does on a cluster for streams of several slots: one XREADGROUP per
        slot, without blocking, in one pipeline; with nothing found, a pause of at most
        ``CLUSTER_POLL_MS`` stands in for the blocking wait."""
        replies = await self._pipelined_reads([(count, g) for g in groups])
        out: list[Entry] = []
        for reply in replies:
            if isinstance(reply, Exception):
                if "NOGROUP" not in str(reply):
                    raise BrokerRefused(str(reply))
                self._known.clear()  # a node lost its streams: read() recreates the groups
                continue
            for stream, messages in reply or ():
                out.extend(parse(stream, messages))
        if not out and block:
            await asyncio.sleep(min(block, CLUSTER_POLL_MS) / 1000)
        return out

    async def sweep(self) -> None:
        """Mark every served stream that holds entries ready (one round trip to look, one to
        mark), and note them for reclaim."""
        self._swept_at = time.monotonic()
        streams = list(self._streams)
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for s in streams:
                    pipe.xlen(s)
                lengths = await pipe.execute()
        holding = {s for s, n in zip(streams, lengths, strict=True) if n}
        self._holding = holding
        by_priority: dict[Priority, list[bytes]] = defaultdict(list)
        for s in holding:
            by_priority[self._streams[s].priority].append(s)
        if by_priority:
            with translate_errors():
                async with self.redis.pipeline(transaction=False) as pipe:
                    for p, ready in by_priority.items():
                        pipe.sadd(self.keys.ready(p), *ready)
                    await pipe.execute()

    async def reclaim(self, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries idle past the visibility timeout (their consumer died or hung), in
        the streams that held entries at the last sweep: an idle stream holds none."""
        out: list[Entry] = []
        for stream in [s for s in self._holding if s in self._streams]:
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
                out.extend(parse(stream, messages))
                if cursor in (b"0-0", "0-0"):
                    break
        return out

    async def ack(self, entries: Iterable[Entry]) -> None:
        """XACK and XDEL: done entries leave the stream (no trimming needed)."""
        grouped = group(entries)
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
        for stream, ids in group(entries).items():
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


def _capped(
    counts: dict[bytes, int], rooms: dict[UUID, int], streams: dict[bytes, _Stream]
) -> dict[bytes, int]:
    """``counts`` with each tenant's total cut to its room (its streams in turn)."""
    left = dict(rooms)
    out: dict[bytes, int] = {}
    for s, n in counts.items():
        tenant = streams[s].tenant_id
        n = min(n, left[tenant])
        if n > 0:
            out[s] = n
            left[tenant] -= n
    return out
