"""API-key authentication with a short in-memory cache, and role checks."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request

from ..core.errors import Forbidden, Unauthenticated
from ..core.rbac import Action, allows
from ..store.tenants import Principal, TenantStore

MAX_CACHED = 10_000


class Authenticator:
    """Verifies ``Authorization: Bearer`` keys. A verified key is trusted for ``ttl_s`` so the
    hot path needs no database round trip; revocation therefore takes effect within ``ttl_s``."""

    def __init__(self, tenants: TenantStore, ttl_s: float) -> None:
        self.tenants = tenants
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def principal(self, request: Request[Any, Any, Any], action: Action) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthenticated(
                "send an API key as 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        who = await self._verify(key.strip())
        if not allows(who.role, action):
            raise Forbidden(f"role {who.role!r} may not {action.value}", code="forbidden")
        return who

    async def _verify(self, key: str) -> Principal:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        who = await self.tenants.verify(key)
        if who is None:
            raise Unauthenticated("unknown or revoked API key", code="invalid_api_key")
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (who, now + self.ttl_s)
        return who
