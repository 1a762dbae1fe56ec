"""The peers' task body as a taskstream task, so the drain can be compared like with like.

Every library in the peer benchmark (`bench/peers/peerlibs/common.py`) runs the same body:
one Redis round trip at task start, a non-transactional pipeline `INCR bench:done` +
`SETBIT bench:bits <n> 1`. `bench:done` counts executions (duplicates show as more than N), the
bitmap's `BITCOUNT` counts distinct jobs (losses show as fewer than N). Here the keys carry the
run's prefix (`config.body_keys`), so the run's cleanup removes them.

Loaded by the worker processes with ``--app e2e_parts.benchapp`` (the bench puts `bench/` on
their PYTHONPATH); the server comes from the environment the bench sets.
"""

from __future__ import annotations

import asyncio
import os

import msgspec
import redis.asyncio as aioredis

from taskstream import TaskContext, task

from .config import BODY_PREFIX_ENV, BODY_REDIS_URL_ENV, PEER_TYPE, body_keys


class PeerJob(msgspec.Struct):
    n: int
    to: str


# One client per event loop, made on first use (after a fork, never inherited), like the
# peers' `_aredis()`.
_clients: dict[int, aioredis.Redis] = {}


def _redis() -> aioredis.Redis:
    loop = id(asyncio.get_running_loop())
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.Redis.from_url(os.environ[BODY_REDIS_URL_ENV])
    return client


_DONE, _BITS = body_keys(os.environ.get(BODY_PREFIX_ENV, "bench"))


@task(PEER_TYPE, queue="default", timeout_s=10)
async def peer_body(ctx: TaskContext, payload: PeerJob) -> None:
    """The peers' body: one pipelined round trip, nothing stored as the result."""
    pipe = _redis().pipeline(transaction=False)
    pipe.incr(_DONE)
    pipe.setbit(_BITS, payload.n, 1)
    await pipe.execute()
