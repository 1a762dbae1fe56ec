"""A stream entry as a worker holds it, and the parsing and grouping of XREADGROUP replies."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple
from uuid import UUID


class Entry(NamedTuple):
    stream: bytes
    entry_id: bytes
    task_id: UUID


def task_id(raw: bytes) -> UUID:
    return UUID(bytes=raw) if len(raw) == 16 else UUID(raw.decode())  # old layout: raw bytes


def parse(stream: bytes, messages: Iterable[Any]) -> list[Entry]:
    out = []
    for entry_id, fields in messages:
        if fields and b"t" in fields:  # a deleted entry comes back with no fields
            out.append(Entry(stream, entry_id, task_id(fields[b"t"])))
    return out


def group(entries: Iterable[Entry]) -> dict[bytes, list[bytes]]:
    grouped: dict[bytes, list[bytes]] = defaultdict(list)
    for e in entries:
        grouped[e.stream].append(e.entry_id)
    return grouped
