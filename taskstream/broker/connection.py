"""The Redis client and the boundary where redis-py's errors become ours."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis import exceptions as rex

from ..core.errors import BrokerRefused, BrokerUnavailable

Redis = aioredis.Redis


def connect(url: str) -> Redis:
    client: Redis = aioredis.Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=2,
        socket_keepalive=True,
        health_check_interval=15,
    )
    return client


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Every redis-py error leaves as ours: connection failures as :class:`BrokerUnavailable`,
    a server's error reply (``OOM command not allowed``, ``READONLY``, ``NOSCRIPT``, ``LOADING``)
    as :class:`BrokerRefused`. An error that escaped here once left a submission unanswered."""
    try:
        yield
    except (rex.ConnectionError, rex.TimeoutError, OSError) as exc:
        raise BrokerUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
    except rex.RedisError as exc:  # ResponseError and the rest: the server said no
        raise BrokerRefused(str(exc) or type(exc).__name__) from exc


def is_missing_group(exc: BrokerRefused) -> bool:
    """The stream or its consumer group is gone (Redis restarted empty)."""
    return exc.reply.startswith("NOGROUP")
