"""Tenants' request budgets in Redis: one script call takes tokens from a tenant's bucket
(``lua/rate.lua``), shared by every API process."""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple
from uuid import UUID

from .connection import Redis, translate_errors
from .keys import Keys

_RATE = resources.files(__package__).joinpath("lua", "rate.lua").read_text("utf-8")


class Grant(NamedTuple):
    tokens: int  # taken now (0: none left)
    left: int  # whole tokens still in the bucket
    wait_s: float  # until the next token, when none is left


class RateBuckets:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.keys = keys
        self._take = redis.register_script(_RATE)

    async def take(self, tenant_id: UUID, per_minute: int, want: int) -> Grant:
        """Up to ``want`` tokens of the tenant's bucket; raises BrokerUnavailable/BrokerRefused."""
        with translate_errors():
            granted, left, wait_ms = await self._take(
                keys=[self.keys.rate(tenant_id)], args=[per_minute, want]
            )
        return Grant(int(granted), int(left), int(wait_ms) / 1000)
