"""The Redis client and the boundary where redis-py's errors become ours.

``redis://`` (and ``rediss://``, ``unix://``) is one server; ``redis+cluster://host:port`` (or
``rediss+cluster://``) is Redis Cluster, reached through any of its nodes with redis-py's cluster
client. Both are typed :data:`Redis`: the cluster client answers the same commands, as long as
every command and script names keys of one slot (keys.py tags a queue's streams alike) and a
pipeline is not a transaction. Code that must read several slots groups its keys with
:func:`slot_groups`.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, cast

import redis.asyncio as aioredis
from redis import Redis as SyncRedis
from redis import RedisCluster as SyncRedisCluster
from redis import exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from ..core.errors import BrokerRefused, BrokerUnavailable

Redis = aioredis.Redis


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def _plain(url: str) -> str:
    """The URL redis-py's cluster client takes (``redis://`` of any node)."""
    return url.replace("+cluster", "", 1)


def connect_blocking(url: str) -> Any:
    """A blocking client (``redis.Redis`` or ``redis.RedisCluster``) for tools and tests that
    look at what the services wrote; the services use :func:`connect`."""
    if is_cluster_url(url):
        return SyncRedisCluster.from_url(_plain(url))
    return SyncRedis.from_url(url)


def connect(url: str) -> Redis:
    if is_cluster_url(url):
        plain = _plain(url)
        cluster = RedisCluster.from_url(
            plain, decode_responses=False, socket_connect_timeout=2, socket_keepalive=True
        )
        return cast(Redis, cluster)  # same commands; see the module's docstring
    client: Redis = aioredis.Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=2,
        socket_keepalive=True,
        health_check_interval=15,
    )
    return client


def is_cluster(redis: Redis) -> bool:
    return isinstance(redis, RedisCluster)


def slot_groups(redis: Redis, keys: Iterable[bytes]) -> list[list[bytes]]:
    """``keys`` split into lists of one hash slot each, in order of first appearance: what
    one multi-key command may name on a cluster. One list on a single server."""
    keys = list(keys)
    if not is_cluster(redis):
        return [keys] if keys else []
    groups: dict[int, list[bytes]] = defaultdict(list)
    for key in keys:
        groups[key_slot(key)].append(key)
    return list(groups.values())


async def one_key_per_node(redis: Redis, base: str) -> list[str]:
    """``[base]`` on a single server; on a cluster, one key per master, ``base:{tag}`` with a
    tag chosen so the key lands in a slot that master serves: what must be written to every
    node to learn which of them lost its data."""
    if not isinstance(redis, RedisCluster):
        return [base]
    await redis.initialize()  # loads the slot map (at once if it is loaded already)
    slots: dict[str, set[int]] = defaultdict(set)
    for slot, nodes in redis.nodes_manager.slots_cache.items():
        if nodes:
            slots[nodes[0].name].add(slot)  # nodes[0] is the slot's master
    keys = []
    for owned in slots.values():
        tag = 0
        while key_slot(f"{base}:{{{tag}}}".encode()) not in owned:
            tag += 1  # a master holds a third of the slots: about three tries
        keys.append(f"{base}:{{{tag}}}")
    return keys


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Every redis-py error leaves as ours: connection failures as :class:`BrokerUnavailable`,
    a server's error reply (``OOM command not allowed``, ``READONLY``, ``NOSCRIPT``, ``LOADING``)
    as :class:`BrokerRefused`. An error that escaped here once left a submission unanswered.
    On a cluster, a node down or a slot without its master (``CLUSTERDOWN``, ``TRYAGAIN``,
    no node for a slot) is an outage too: it passes when the cluster heals."""
    try:
        yield
    except (rex.ConnectionError, rex.TimeoutError, OSError) as exc:
        raise BrokerUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
    except (rex.ClusterDownError, rex.TryAgainError, rex.RedisClusterException) as exc:
        raise BrokerUnavailable(f"Redis Cluster unavailable: {exc}") from exc
    except rex.RedisError as exc:  # ResponseError and the rest: the server said no
        raise BrokerRefused(str(exc) or type(exc).__name__) from exc


def is_missing_group(exc: BrokerRefused) -> bool:
    """The stream or its consumer group is gone (Redis restarted empty)."""
    return exc.reply.startswith("NOGROUP")
