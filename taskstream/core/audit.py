"""The audit log's chain, as pure functions (the store writes it, ``audit verify`` checks it).

Every entry has a digest: SHA-256 of its content, a JSON array of everything but the target,
a NUL byte (which JSON text never holds), and the target. Entries are appended in
blocks (one group commit of submissions, or one call); a block's chain value is
``sha256(previous chain || sha256(the block's digests in seq order))``, starting from 32 zero
bytes, and is stored on the block's last row. The digests are computed where the entry is made;
PostgreSQL computes the chain in the statement that appends the block, under the tenant's head
row, so concurrent writers never fork it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from uuid import UUID

import msgspec

GENESIS = bytes(32)
_encode = msgspec.json.Encoder().encode


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded action."""

    tenant_id: UUID
    at: datetime
    actor: str
    action: str
    target: str
    request_id: str | None = None

    @property
    def digest(self) -> bytes:
        return digest(self.tenant_id, self.at, self.actor, self.action, self.target,
                      self.request_id)  # fmt: skip


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who acts (``key:<prefix>``, ``cli:<user>``, ``schedule:<name>``), in which request,
    when: the entries of one call share it."""

    name: str
    request_id: str | None
    at: datetime

    def entry(self, tenant_id: UUID, action: str, target: str) -> Entry:
        return Entry(tenant_id=tenant_id, at=self.at, actor=self.name, action=action,
                     target=target, request_id=self.request_id)  # fmt: skip


def digest(
    tenant_id: UUID, at: datetime, actor: str, action: str, target: str, request_id: str | None
) -> bytes:
    common = _common(tenant_id, at, actor, action, request_id)
    return hashlib.sha256(common + target.encode()).digest()


@functools.lru_cache(maxsize=256)
def _common(
    tenant_id: UUID, at: datetime, actor: str, action: str, request_id: str | None
) -> bytes:
    """What the entries of one call share (a batch of 1,000 submissions: made once)."""
    at_text = at.astimezone(UTC).isoformat(timespec="microseconds")
    return _encode([str(tenant_id), at_text, actor, action, request_id]) + b"\x00"


def chain(previous: bytes, digests: Iterable[bytes]) -> bytes:
    return hashlib.sha256(previous + hashlib.sha256(b"".join(digests)).digest()).digest()


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """A stored entry as verification reads it."""

    entry: Entry
    seq: int
    digest: bytes
    chain: bytes | None


class Broken(msgspec.Struct, frozen=True, kw_only=True):
    """The first link that does not hold."""

    tenant_id: UUID
    seq: int
    reason: str


class Checker:
    """Checks one tenant's rows, fed in seq order, then its head ``(seq, chain)``; each step
    returns the first broken link, or None while the log holds."""

    def __init__(self, tenant_id: UUID) -> None:
        self.tenant_id = tenant_id
        self.expected = 1
        self.current = GENESIS
        self.block: list[bytes] = []

    def _broken(self, seq: int, reason: str) -> Broken:
        return Broken(tenant_id=self.tenant_id, seq=seq, reason=reason)

    def feed(self, row: Row) -> Broken | None:
        if row.seq != self.expected:
            return self._broken(self.expected, f"rows {self.expected}..{row.seq - 1} are missing")
        if row.entry.digest != row.digest:
            return self._broken(row.seq, "the row's content does not match its digest (edited)")
        self.block.append(row.digest)
        if row.chain is not None:
            self.current = chain(self.current, self.block)
            self.block = []
            if self.current != row.chain:
                return self._broken(
                    row.seq,
                    "the chain breaks at the end of this row's block (a row of the block was "
                    "deleted, edited or moved)",
                )
        self.expected += 1
        return None

    def end(self, head: tuple[int, bytes]) -> Broken | None:
        last = self.expected - 1
        if self.block:
            return self._broken(last, "the last block has no chain value (rows deleted)")
        if last < head[0]:
            return self._broken(last + 1, f"the head counts {head[0]} rows; those after {last} "
                                "are missing")  # fmt: skip
        if (last, self.current) != head:
            return self._broken(last, "the head does not match the last block's chain")
        return None


def verify(tenant_id: UUID, rows: Iterable[Row], head: tuple[int, bytes]) -> Broken | None:
    """The first broken link of one tenant's rows (in seq order), or None when intact."""
    checker = Checker(tenant_id)
    for row in rows:
        if (broken := checker.feed(row)) is not None:
            return broken
    return checker.end(head)
