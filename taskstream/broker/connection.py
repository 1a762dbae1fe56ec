"""The Redis client and the boundary where redis-py's errors become ours."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis import exceptions as rex

from ..core.errors import BrokerUnavailable

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
    """Re-raise connection-level failures as :class:`BrokerUnavailable`."""
    try:
        yield
    except (rex.ConnectionError, rex.TimeoutError, OSError) as exc:
        raise BrokerUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
    except rex.ResponseError as exc:
        if str(exc).startswith(("LOADING", "MASTERDOWN", "READONLY", "BUSY ")):
            raise BrokerUnavailable(f"Redis not ready: {exc}") from exc
        raise
