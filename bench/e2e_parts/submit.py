"""Batch submission as fast as the API takes it (the drain's pre-fill): concurrent clients, each
on one keep-alive connection, sending ``POST /v1/tasks/batch`` until every batch is accepted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from .clients import JSON_HEADERS, BatchOut
from .config import NOOP_TYPE, PEER_EMAIL, PEER_TYPE
from .console import BenchError, Progress, say


@dataclass
class Submitted:
    ids: list[str] = field(default_factory=list)
    request_s: list[float] = field(default_factory=list)
    ended: float = 0.0


def batch_bodies(
    task_type: str, total: int, batch_size: int, extra: Mapping[str, Any] | None = None
) -> Iterator[tuple[int, bytes]]:
    """(tasks, encoded body) per request. The no-op's bodies are encoded once per size (the load
    generator's CPU belongs to the measured machine too); the peer body numbers its tasks 0..N-1,
    as the peers do, so its bitmap can tell lost tasks from duplicated ones. `extra`: more fields
    in every peer payload (the lifecycle phase's realistic job), which the body ignores."""
    cache: dict[int, bytes] = {}
    more = dict(extra or {})
    for start in range(0, total, batch_size):
        size = min(batch_size, total - start)
        if task_type == NOOP_TYPE:
            if size not in cache:
                item: dict[str, Any] = {"type": NOOP_TYPE, "payload": {}}
                cache[size] = msgspec.json.encode({"tasks": [item] * size})
            yield size, cache[size]
        else:
            items = [
                {"type": PEER_TYPE, "payload": {"n": i, "to": PEER_EMAIL, **more}}
                for i in range(start, start + size)
            ]
            yield size, msgspec.json.encode({"tasks": items})


def accepted_ids(resp: httpx.Response) -> list[Any]:
    """The task ids of a batch submit, every item created; a BenchError otherwise."""
    if resp.status_code != 201:
        raise BenchError(f"batch submit: HTTP {resp.status_code} {resp.text[:500]}")
    items = msgspec.json.decode(resp.content, type=BatchOut).items
    refused = [i for i in items if i.status != 201 or i.task is None]
    if refused:
        raise BenchError(f"{len(refused)} batch items refused, e.g. {refused[0]}")
    return [i.task.id for i in items if i.task is not None]


async def submit_batches(
    clients: list[httpx.AsyncClient], bodies: Iterator[tuple[int, bytes]], total: int
) -> Submitted:
    out = Submitted()
    progress = Progress()

    async def run(client: httpx.AsyncClient) -> None:
        # `bodies` is shared by the clients; one event loop thread, so no lock is needed.
        for _, body in bodies:
            sent = time.perf_counter()
            resp = await client.post("/v1/tasks/batch", content=body, headers=JSON_HEADERS)
            out.request_s.append(time.perf_counter() - sent)
            out.ids.extend(accepted_ids(resp))
            progress.maybe(f"submitted {len(out.ids):,}/{total:,}")

    await asyncio.gather(*(run(c) for c in clients))
    out.ended = time.perf_counter()
    say(f"submitted {len(out.ids):,}/{total:,}")
    return out
