"""Tenants, their limits, and API keys. Keys are ``tsk_<prefix>_<secret>``: the prefix finds the
row, the secret is kept only as a SHA-256 and compared in constant time."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from types import EllipsisType
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from ..core.audit import Actor
from ..core.errors import Conflict, NotFound, Unprocessable
from ..core.ids import uuid7
from . import queries
from .audit import record
from .database import acquire

Q = queries.load("tenants")
ROLES = ("admin", "operator", "submitter", "viewer")
MAX_EXPIRES_IN_S = 10 * 366 * 86_400  # ten years: anything longer is a key that never expires
# What create_key issues: 12 hex digits, then 32 URL-safe characters without '_'. Anything else
# is refused before a database look-up.
_KEY = re.compile(r"tsk_([0-9a-f]{12})_([A-Za-z0-9-]{16,64})")
_PREFIX = re.compile(r"[0-9a-f]{12}")
# The largest value of each limit: its column's type (0011), and 1,000 turns for the weight.
LIMIT_MAX = {
    "rate_limit": 2**31 - 1,
    "max_pending": 2**63 - 1,
    "max_concurrency": 2**31 - 1,
    "weight": 1000,
    "retention_days": 36_500,
}


class TenantLimits(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's own limits (migration 0011). None: the deployment's default
    (``Settings.tenant_rate_limit``, ``Settings.tenant_max_pending``) or, for
    ``max_concurrency``, no cap."""

    rate_limit: int | None = None  # requests per minute, over every route
    max_pending: int | None = None  # tasks waiting (pending + scheduled)
    max_concurrency: int | None = None  # tasks processing at once across all workers
    weight: int = 1  # share of worker turns against other tenants with work waiting (1-1000)
    retention_days: int | None = None  # days finished tasks are kept (migration 0012)


class TenantInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    created_at: datetime
    limits: TenantLimits
    region: str | None = None  # home region: where its tasks run unless they name one


class Principal(msgspec.Struct, frozen=True):
    """Who a verified key speaks for."""

    tenant_id: UUID
    role: str
    key_prefix: str  # public part of the key: names the actor in audit records


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A key as its tenant's admins see it: never the secret."""

    prefix: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class IssuedKey(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # shown once: only its hash is stored
    info: KeyInfo


class Check(enum.Enum):
    VALID = "valid"
    WRONG = "wrong"  # no such key, or the secret does not match
    REVOKED = "revoked"
    EXPIRED = "expired"


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What verification needs of a key's row; safe to cache (it holds only the hash)."""

    prefix: str
    tenant_id: UUID
    role: str
    secret_hash: bytes
    expires_at: float | None  # Unix time
    revoked: bool
    last_used_at: float | None  # Unix time

    def check(self, secret: str, now: float) -> Check:
        """The secret is compared first, so a caller without it learns nothing of the key."""
        if not hmac.compare_digest(self.secret_hash, hash_secret(secret)):
            return Check.WRONG
        if self.revoked:
            return Check.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return Check.EXPIRED
        return Check.VALID

    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.role, self.prefix)


def split_key(key: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    match = _KEY.fullmatch(key)
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _check_prefix(prefix: str) -> None:
    # Checked at the door: nothing a client sends reaches PostgreSQL unchecked (NUL, length).
    if not _PREFIX.fullmatch(prefix):
        raise NotFound(f"no key with prefix {prefix[:40]!r}", code="key_not_found")


def check_limit(field: str, value: object) -> int | None:
    """``value`` if it may be stored as ``field`` (None: back to the default or no cap), else
    :class:`Unprocessable` ``invalid_limit``: checked here, not left to the CHECKs of 0011."""
    top = LIMIT_MAX.get(field)
    if top is None:
        raise Unprocessable(
            f"unknown limit {field!r}: one of {', '.join(LIMIT_MAX)}", code="invalid_limit"
        )
    if value is None and field != "weight":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise Unprocessable(
            f"{field} must be a whole number from 1 to {top}, not {value!r}", code="invalid_limit"
        )
    return value


def _limit_args(limits: TenantLimits) -> list[int | None]:
    return [check_limit(f, getattr(limits, f)) for f in LIMIT_MAX]


def _update_args(changes: dict[str, int | None]) -> list[bool | int | None]:
    """The flags and values of ``update_tenant`` for ``changes`` (fields left out are kept)."""
    checked = {field: check_limit(field, value) for field, value in changes.items()}
    args: list[bool | int | None] = []
    for field in ("rate_limit", "max_pending", "max_concurrency"):
        args += [field in checked, checked.get(field)]
    retention = ["retention_days" in checked, checked.get("retention_days")]
    return [*args, checked.get("weight"), *retention]


def _limits(row: Any) -> TenantLimits:
    return TenantLimits(
        rate_limit=row["rate_limit"],
        max_pending=row["max_pending"],
        max_concurrency=row["max_concurrency"],
        weight=row["weight"],
        retention_days=row["retention_days"],
    )


def _info(row: Any) -> TenantInfo:
    return TenantInfo(
        id=UUID(str(row["id"])), name=row["name"], created_at=row["created_at"],
        limits=_limits(row), region=row["region"],
    )  # fmt: skip


def _unix(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class TenantStore:
    """Tenants and keys. On the API's tenant-scoped pool (Row-Level Security) a key's own
    tenant is named for every statement about it; what runs before the tenant is known (verify,
    live prefixes, last-used times) goes through the SECURITY DEFINER functions of 0009. The
    CLI's verbs (tenants, ``revoke_any``) run on the owner's pool."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def create_tenant(
        self,
        name: str,
        limits: TenantLimits | None = None,
        *,
        by: Actor | None = None,
        region: str | None = None,
    ) -> UUID:
        """A new tenant; ``limits`` left out: the deployment's defaults, no concurrency cap and
        weight 1. ``by``, here and below: recorded in the audit log in the same transaction."""
        args = _limit_args(limits or TenantLimits())
        async with acquire(self.pool) as conn, conn.transaction():
            try:
                tenant_id = await conn.fetchval(Q["create_tenant"], uuid7(), name, *args, region)
            except asyncpg.CheckViolationError as exc:
                if exc.constraint_name != "tenants_name_check":
                    raise  # a limit check_limit let through: StoreRefused, from acquire
                raise Conflict(
                    "tenant names are 1-63 letters, digits, '.', '_' or '-'", code="invalid_name"
                ) from None
            if tenant_id is None:
                raise Conflict(f"tenant {name!r} already exists", code="tenant_exists")
            tenant_id = UUID(str(tenant_id))
            await record(conn, by, tenant_id, "tenant.create", name)
        return tenant_id

    async def update_tenant(
        self,
        name: str,
        changes: dict[str, int | None],
        *,
        by: Actor | None = None,
        region: str | EllipsisType | None = ...,
    ) -> TenantInfo:
        """Change the limits named in ``changes`` (fields of :class:`TenantLimits`) and keep the
        others; None puts ``rate_limit`` / ``max_pending`` back to the deployment default and
        lifts the ``max_concurrency`` cap and ``retention_days`` back to the deployment's
        (``weight`` takes 1-1000 only). ``region``: the new home region (None: none), ``...``
        to keep it."""
        args = [*_update_args(changes), region is not ..., None if region is ... else region]
        async with acquire(self.pool) as conn, conn.transaction():
            row = await conn.fetchrow(Q["update_tenant"], name, *args)
            if row is None:
                raise NotFound(f"no tenant named {name!r}", code="tenant_not_found")
            await record(conn, by, row["id"], "tenant.update", name)
        return _info(row)

    async def list_tenants(self) -> list[TenantInfo]:
        """Every tenant, by name (the operator's CLI, on the owner's pool)."""
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(Q["list_tenants"])
        return [_info(r) for r in rows]

    async def names(self, ids: Collection[UUID]) -> dict[UUID, str]:
        """Tenant names by id (streams are named by them). On the API's pool the session is
        scoped to exactly these tenants."""
        async with acquire(self.pool, set(ids)) as conn:
            rows = await conn.fetch(Q["tenant_names"], list(ids))
        return {r["id"]: r["name"] for r in rows}

    async def served_queues(
        self, names: Sequence[str] | None, region: str | None = None, *, every_region: bool = False
    ) -> list[tuple[UUID, str, str, int, str]]:
        """(tenant id, tenant name, queue, tenant weight, region) of every queue of ``region``
        (None: of tasks without one; ``every_region``: all), or of those named: what a worker
        reads (owner's pool)."""
        async with acquire(self.pool) as conn:
            rows = await conn.fetch(
                Q["served_queues"],
                None if names is None else list(names),
                None if every_region else region or "",
            )
        return [(r["tenant_id"], r["tenant"], r["queue"], r["weight"], r["region"]) for r in rows]

    async def limits(self, tenant_id: UUID) -> TenantLimits:
        """The tenant's own limits (None: default / no cap); on the API's pool, only for the
        tenant the session is scoped to, like every tenant-scoped statement."""
        async with acquire(self.pool, tenant_id) as conn:
            row = await conn.fetchrow(Q["tenant_limits"], tenant_id)
        if row is None:
            raise NotFound(f"no tenant with id {tenant_id}", code="tenant_not_found")
        return _limits(row)

    async def tenant_id(self, name: str) -> UUID:
        async with acquire(self.pool) as conn:
            row = await conn.fetchrow(Q["tenant_by_name"], name)
        if row is None:
            raise NotFound(f"no tenant named {name!r}", code="tenant_not_found")
        return UUID(str(row["id"]))

    async def issue_key(
        self,
        tenant_id: UUID,
        role: str,
        *,
        expires_in_s: float | None = None,
        by: Actor | None = None,
    ) -> IssuedKey:
        """A new key, returned once; only its hash is stored."""
        if role not in ROLES:
            raise Conflict(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
        if expires_in_s is not None and not 0 < expires_in_s <= MAX_EXPIRES_IN_S:
            raise Unprocessable(
                f"expires_in_s must be between 1 and {MAX_EXPIRES_IN_S} seconds",
                code="invalid_expiry",
            )
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(24).replace("_", "x")
        async with acquire(self.pool, tenant_id) as conn, conn.transaction():
            row = await conn.fetchrow(
                Q["create_key"], uuid7(), tenant_id, prefix, hash_secret(secret), role, expires_in_s
            )
            await record(conn, by, tenant_id, "key.create", f"{prefix} ({role})")
        return IssuedKey(key=f"tsk_{prefix}_{secret}", info=KeyInfo(**dict(row)))

    async def create_key(
        self,
        tenant_id: UUID,
        role: str,
        *,
        expires_in_s: float | None = None,
        by: Actor | None = None,
    ) -> str:
        """The key alone (what the CLI prints and tests use)."""
        return (await self.issue_key(tenant_id, role, expires_in_s=expires_in_s, by=by)).key

    async def verify(self, key: str) -> KeyRecord | None:
        """The row behind a well-formed ``key``'s prefix (revoked and expired ones too; judge it
        with :meth:`KeyRecord.check`), or None: malformed key, or no key has that prefix.
        One database look-up, through ``taskstream_key_by_prefix`` (the tenant is not known
        yet, so Row-Level Security would hide the row)."""
        parts = split_key(key)
        if parts is None:
            return None
        prefix = parts[0]
        async with acquire(self.pool) as conn:
            row = await conn.fetchrow(Q["key_by_prefix"], prefix)
        if row is None:
            return None
        return KeyRecord(
            prefix=prefix,
            tenant_id=row["tenant_id"],
            role=row["role"],
            secret_hash=bytes(row["secret_hash"]),
            expires_at=_unix(row["expires_at"]),
            revoked=row["revoked_at"] is not None,
            last_used_at=_unix(row["last_used_at"]),
        )

    async def live_prefixes(self, now: float | None = None) -> frozenset[str]:
        """Prefixes of every key neither revoked nor expired (one statement)."""
        at = datetime.fromtimestamp(now, UTC) if now is not None else None
        async with acquire(self.pool) as conn:
            found = await conn.fetchval(Q["live_key_prefixes"], at)
        return frozenset(found or ())

    async def touch(self, used: dict[str, float]) -> None:
        """Record when keys were last used: ``used`` maps prefixes to a Unix time."""
        if not used:
            return
        at = [datetime.fromtimestamp(t, UTC) for t in used.values()]
        async with acquire(self.pool) as conn:
            await conn.execute(Q["touch_keys"], list(used), at)

    async def list_keys(self, tenant_id: UUID) -> list[KeyInfo]:
        async with acquire(self.pool, tenant_id) as conn:
            rows = await conn.fetch(Q["list_keys"], tenant_id)
        return [KeyInfo(**dict(r)) for r in rows]

    async def revoke_key(self, tenant_id: UUID, prefix: str, *, by: Actor | None = None) -> KeyInfo:
        """Revoke one of the tenant's keys; another tenant's prefix is as missing as an unknown
        one. Revoking twice is not an error (the first time is kept)."""
        _check_prefix(prefix)
        async with acquire(self.pool, tenant_id) as conn, conn.transaction():
            row = await conn.fetchrow(Q["revoke_key"], prefix, tenant_id)
            if row is None:
                raise NotFound(f"no key with prefix {prefix!r}", code="key_not_found")
            await record(conn, by, tenant_id, "key.revoke", prefix)
        return KeyInfo(**dict(row))

    async def revoke_any(self, prefix: str, *, by: Actor | None = None) -> tuple[str, KeyInfo]:
        """Revoke a key of any tenant (the operator's CLI): (tenant name, key)."""
        _check_prefix(prefix)
        async with acquire(self.pool) as conn, conn.transaction():
            row = await conn.fetchrow(Q["revoke_key_any_tenant"], prefix)
            if row is None:
                raise NotFound(f"no key with prefix {prefix!r}", code="key_not_found")
            fields = dict(row)
            tenant_id = fields.pop("tenant_id")
            await record(conn, by, tenant_id, "key.revoke", prefix)
        return fields.pop("tenant"), KeyInfo(**fields)
