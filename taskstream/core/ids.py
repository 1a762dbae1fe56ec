"""Time-ordered UUIDs (RFC 9562 version 7): ids sort by creation, so keyset pagination and the
primary-key index stay append-mostly."""

from __future__ import annotations

import os
import time
from uuid import UUID


def uuid7(unix_ms: int | None = None, rand: bytes | None = None) -> UUID:
    """A UUIDv7 from a millisecond timestamp and 10 random bytes (both injectable for tests)."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    tail = os.urandom(10) if rand is None else rand
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= (int.from_bytes(tail[:2], "big") & 0x0FFF) << 64  # rand_a
    value |= 0b10 << 62  # variant
    value |= int.from_bytes(tail[2:], "big") & ((1 << 62) - 1)  # rand_b
    return UUID(int=value)
