"""Shared constants and the 'work' every benchmark task does.

Every task (in every library) does exactly one Redis round trip at its start:
a non-transactional pipeline of INCR bench:done + SETBIT bench:bits <n> 1
(+ RPUSH bench:lat <ms> when the payload carries an enqueue timestamp 't').
INCR counts executions (duplicates show as done > N), SETBIT/BITCOUNT counts
unique jobs (losses show as bitcount < N).

Server locations come from the environment that bench_peers.py sets for every subprocess:
BENCH_REDIS_URL (from PEERS_REDIS_URL) and BENCH_PG_DSN (a throwaway database on the
PEERS_PG_DSN server). The defaults below only apply when a module is run by hand.
"""
from __future__ import annotations

import asyncio
import os
import time

REDIS_URL = os.environ.get("BENCH_REDIS_URL") or os.environ.get("PEERS_REDIS_URL") or "redis://127.0.0.1:6379/5"
PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://127.0.0.1:5432/bench_peers")

K_DONE = "bench:done"
K_BITS = "bench:bits"
K_LAT = "bench:lat"

EMAIL = "user@example.com"


def payload(i: int, t: float | None = None) -> dict:
    d = {"n": i, "to": EMAIL}
    if t is not None:
        d["t"] = t
    return d


# ---------------------------------------------------------------- async side
_async_clients: dict = {}


def _aredis():
    loop = asyncio.get_running_loop()
    r = _async_clients.get(loop)
    if r is None:
        import redis.asyncio as aredis

        r = aredis.Redis.from_url(REDIS_URL)
        _async_clients[loop] = r
    return r


async def record_async(n: int, t: float | None = None) -> None:
    now = time.time()
    pipe = _aredis().pipeline(transaction=False)
    pipe.incr(K_DONE)
    pipe.setbit(K_BITS, int(n), 1)
    if t is not None:
        pipe.rpush(K_LAT, (now - float(t)) * 1000.0)
    await pipe.execute()


# ----------------------------------------------------------------- sync side
_sync = {"pid": None, "r": None}


def _sredis():
    if _sync["pid"] != os.getpid():
        import redis

        _sync["r"] = redis.Redis.from_url(REDIS_URL)
        _sync["pid"] = os.getpid()
    return _sync["r"]


def record_sync(n: int, t: float | None = None, conn=None) -> None:
    now = time.time()
    pipe = (conn or _sredis()).pipeline(transaction=False)
    pipe.incr(K_DONE)
    pipe.setbit(K_BITS, int(n), 1)
    if t is not None:
        pipe.rpush(K_LAT, (now - float(t)) * 1000.0)
    pipe.execute()


async def gather_bounded(coros_factory, n: int, width: int = 100) -> None:
    """Run coros_factory(i) for i in range(n) with at most `width` in flight."""
    it = iter(range(n))

    async def runner():
        for i in it:
            await coros_factory(i)

    await asyncio.gather(*(runner() for _ in range(min(width, n))))
