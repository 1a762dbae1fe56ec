"""Tenants' dependency breakers in Redis, shared by every worker (and read by the API): one
hash per tenant, a JSON field per breaker, changed only by ``lua/breaker.lua`` (the rules of
``core/breakers.py``, applied atomically on one key, so also on Redis Cluster)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any, NamedTuple
from uuid import UUID

import msgspec

from ..core.breakers import (
    Admission,
    Breaker,
    BreakerPolicy,
    BreakerState,
    Postpone,
    Stored,
    Verdict,
)
from ..core.config import Settings
from .connection import Redis, translate_errors
from .keys import Keys

_LUA = resources.files(__package__).joinpath("lua", "breaker.lua").read_text("utf-8")
_decode = msgspec.json.Decoder(Stored).decode


class Gate(NamedTuple):
    """A task's admission over its breakers, with what it needs to report back: the Redis
    clock's ``now_ms`` when asked (a postponement's ``until_ms`` is on that clock)."""

    admission: Admission
    now_ms: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Breakers:
    """The breakers of every tenant; ``default`` gives the numbers a declaration leaves out."""

    def __init__(self, redis: Redis, keys: Keys, default: BreakerPolicy) -> None:
        self.redis = redis
        self.keys = keys
        self.default = default
        self._script = redis.register_script(_LUA)

    @classmethod
    def of(cls, redis: Redis, settings: Settings) -> Breakers:
        """The deployment's: its key prefix, its default failures and cool-down."""
        policy = BreakerPolicy(
            failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s
        )
        return cls(redis, Keys(settings.redis_prefix), policy)

    def _args(self, breakers: Sequence[Breaker]) -> list[str | int]:
        out: list[str | int] = []
        for b in breakers:
            policy = b.policy(self.default)
            out += [b.name, policy.failures, policy.cooldown_ms]
        return out

    async def admit(
        self,
        tenant_id: UUID,
        breakers: Sequence[Breaker],
        token: str,
        probe_ttl_ms: int,
        now_ms: int | None = None,
    ) -> Gate:
        """May the attempt ``token`` run now? Takes the probe of a half-open breaker; a
        refusal is counted on the breaker. Raises BrokerUnavailable/BrokerRefused."""
        args = ["admit", "" if now_ms is None else now_ms, token, probe_ttl_ms]
        with translate_errors():
            reply = await self._script(
                keys=[self.keys.breakers(tenant_id)], args=[*args, *self._args(breakers)]
            )
        if _text(reply[0]) == "run":
            return Gate(Admission(probes=tuple(_text(n) for n in reply[2:])), int(reply[1]))
        _, name, state, until_ms, now = reply
        wait = Postpone(breaker=_text(name), state=BreakerState(_text(state)),
                        until_ms=int(until_ms))  # fmt: skip
        return Gate(Admission(postpone=wait), int(now))

    async def record(
        self,
        tenant_id: UUID,
        breakers: Sequence[Breaker],
        token: str,
        verdict: Verdict,
        now_ms: int | None = None,
    ) -> list[tuple[str, BreakerState]]:
        """What the attempt ``token`` came to; returns the breakers whose state changed."""
        args = ["record", "" if now_ms is None else now_ms, token, str(verdict)]
        with translate_errors():
            reply = await self._script(
                keys=[self.keys.breakers(tenant_id)], args=[*args, *self._args(breakers)]
            )
        return [
            (_text(reply[i]), BreakerState(_text(reply[i + 1]))) for i in range(0, len(reply), 2)
        ]

    async def reset(self, tenant_id: UUID, name: str) -> BreakerState | None:
        """Close a breaker by hand (its postponement count is kept); None if it never had a
        state (a breaker that never failed)."""
        with translate_errors():
            before = await self._script(
                keys=[self.keys.breakers(tenant_id)], args=["reset", "", "", "", name]
            )
        text = _text(before)
        return BreakerState(text) if text else None

    async def states(self, tenant_id: UUID) -> tuple[dict[str, Stored], int]:
        """A tenant's breakers as stored, and Redis' clock (ms) to judge them by."""
        with translate_errors():
            fields: dict[bytes, bytes] = await self.redis.hgetall(  # type: ignore[misc]
                self.keys.breakers(tenant_id)
            )
        return {_text(k): _decode(v) for k, v in sorted(fields.items())}, await self.now_ms()

    async def now_ms(self) -> int:
        """Redis' clock, the breakers' (not pipelined with a key's command: TIME names no key,
        so on Redis Cluster it may go to another node)."""
        with translate_errors():
            seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def scrape(self, tenant_id: UUID | None) -> tuple[list[tuple[str, Stored]], int]:
        """(name, state) of a tenant's breakers, or (None) of every tenant's, for /metrics;
        with Redis' clock. Every tenant's: their keys found by SCAN, read one by one."""
        if tenant_id is not None:
            mine, now_ms = await self.states(tenant_id)
            return list(mine.items()), now_ms
        out: list[tuple[str, Stored]] = []
        with translate_errors():
            async for key in self.redis.scan_iter(match=self.keys.breakers_pattern(), count=500):
                fields: dict[bytes, bytes] = await self.redis.hgetall(key)  # type: ignore[misc]
                out += [(_text(k), _decode(v)) for k, v in fields.items()]
        return out, await self.now_ms()
