"""Tenants and API keys. Keys are ``tsk_<prefix>_<secret>``: the prefix finds the row, the secret
is kept only as a SHA-256 and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from ..core.errors import Conflict, NotFound
from ..core.ids import uuid7
from . import queries
from .database import acquire

Q = queries.load("tenants")
ROLES = ("admin", "operator", "submitter", "viewer")


class Principal(msgspec.Struct, frozen=True):
    """Who a verified key speaks for."""

    tenant_id: UUID
    role: str
    key_prefix: str  # public part of the key: names the actor in audit records


def split_key(key: str) -> tuple[str, str] | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != "tsk" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class TenantStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def create_tenant(self, name: str) -> UUID:
        async with acquire(self.pool) as conn:
            try:
                tenant_id = await conn.fetchval(Q["create_tenant"], uuid7(), name)
            except asyncpg.CheckViolationError:
                raise Conflict(
                    "tenant names are 1-63 letters, digits, '.', '_' or '-'", code="invalid_name"
                ) from None
        if tenant_id is None:
            raise Conflict(f"tenant {name!r} already exists", code="tenant_exists")
        return UUID(str(tenant_id))

    async def tenant_id(self, name: str) -> UUID:
        async with acquire(self.pool) as conn:
            row = await conn.fetchrow(Q["tenant_by_name"], name)
        if row is None:
            raise NotFound(f"no tenant named {name!r}", code="tenant_not_found")
        return UUID(str(row["id"]))

    async def create_key(self, tenant_id: UUID, role: str) -> str:
        """A new key, returned once; only its hash is stored."""
        if role not in ROLES:
            raise Conflict(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(24).replace("_", "x")
        async with acquire(self.pool) as conn:
            await conn.execute(
                Q["create_key"], uuid7(), tenant_id, prefix, hash_secret(secret), role
            )
        return f"tsk_{prefix}_{secret}"

    async def verify(self, key: str) -> Principal | None:
        """The principal behind ``key``, or None for a malformed, unknown or revoked key."""
        parts = split_key(key)
        if parts is None:
            return None
        prefix, secret = parts
        async with acquire(self.pool) as conn:
            row = await conn.fetchrow(Q["key_by_prefix"], prefix)
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), hash_secret(secret)):
            return None
        return Principal(row["tenant_id"], row["role"], prefix)
