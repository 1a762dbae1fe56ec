"""Per-tenant limits (migration 0011) through TenantStore, against real PostgreSQL: the owner's
pool writes and lists them; the API's tenant-scoped pool reads only its own tenant's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from taskstream.core.config import Settings
from taskstream.core.errors import Conflict, NotFound, Unprocessable
from taskstream.store.database import acquire, create_pool
from taskstream.store.tenants import TenantInfo, TenantLimits, TenantStore


@pytest.fixture
def tenants_store(pool: Any) -> TenantStore:
    return TenantStore(pool)


@pytest.fixture
async def scoped(settings: Settings, pool: Any) -> AsyncIterator[Any]:
    """The API's kind of pool: role taskstream_api, Row-Level Security on."""
    p = await create_pool(settings.database_url, min_size=1, max_size=1, tenant_scoped=True)
    yield p
    await p.close()


async def _row(pool: Any, name: str) -> dict[str, Any]:
    async with acquire(pool) as conn:
        row = await conn.fetchrow(
            "SELECT rate_limit, max_pending, max_concurrency, weight FROM tenants WHERE name = $1",
            name,
        )
    return dict(row) if row else {}


async def test_create_without_limits_keeps_the_defaults(tenants_store: TenantStore) -> None:
    tid = await tenants_store.create_tenant("acme")
    assert isinstance(tid, UUID)
    assert await tenants_store.limits(tid) == TenantLimits()
    with pytest.raises(Conflict) as exists:
        await tenants_store.create_tenant("acme", TenantLimits(rate_limit=5))
    assert exists.value.code == "tenant_exists"
    with pytest.raises(Conflict) as bad_name:
        await tenants_store.create_tenant("no spaces", TenantLimits(rate_limit=5))
    assert bad_name.value.code == "invalid_name"


async def test_create_update_reset_and_list(tenants_store: TenantStore, pool: Any) -> None:
    limits = TenantLimits(rate_limit=500, max_pending=10_000_000_000, max_concurrency=8, weight=3)
    acme = await tenants_store.create_tenant("acme", limits)
    globex = await tenants_store.create_tenant("globex")
    assert await tenants_store.limits(acme) == limits

    info = await tenants_store.update_tenant("acme", {"max_concurrency": 2, "weight": 7})
    assert isinstance(info, TenantInfo) and info.id == acme and info.name == "acme"
    assert info.limits == TenantLimits(
        rate_limit=500, max_pending=10_000_000_000, max_concurrency=2, weight=7
    )
    # None puts a limit back to the deployment default (or lifts the cap); others are kept.
    info = await tenants_store.update_tenant("acme", {"rate_limit": None, "max_concurrency": None})
    assert info.limits == TenantLimits(max_pending=10_000_000_000, weight=7)
    assert await _row(pool, "acme") == {
        "rate_limit": None, "max_pending": 10_000_000_000, "max_concurrency": None, "weight": 7
    }  # fmt: skip
    # Nothing named: nothing changes, and the row comes back as it is.
    assert (await tenants_store.update_tenant("acme", {})).limits == info.limits

    listed = await tenants_store.list_tenants()
    assert [(t.name, t.id) for t in listed] == [("acme", acme), ("globex", globex)]
    assert listed[0].limits == info.limits and listed[1].limits == TenantLimits()
    assert listed[0].created_at <= listed[1].created_at

    with pytest.raises(NotFound) as missing:
        await tenants_store.update_tenant("nobody", {"weight": 2})
    assert missing.value.code == "tenant_not_found"


async def test_limits_on_the_api_pool_see_only_their_own_tenant(
    tenants_store: TenantStore, scoped: Any
) -> None:
    acme = await tenants_store.create_tenant("acme", TenantLimits(rate_limit=42, weight=2))
    globex = await tenants_store.create_tenant("globex", TenantLimits(max_pending=9))
    api = TenantStore(scoped)
    assert await api.limits(acme) == TenantLimits(rate_limit=42, weight=2)
    assert await api.limits(globex) == TenantLimits(max_pending=9)
    # A session scoped to acme does not see globex's row, whatever the statement names.
    async with acquire(scoped, acme) as conn:
        assert await conn.fetchval("SELECT count(*) FROM tenants WHERE id = $1", globex) == 0
    with pytest.raises(NotFound) as unknown:
        await api.limits(UUID(int=1))
    assert unknown.value.code == "tenant_not_found"


async def test_the_api_role_cannot_change_its_own_limits(
    tenants_store: TenantStore, scoped: Any, pool: Any
) -> None:
    acme = await tenants_store.create_tenant("acme", TenantLimits(rate_limit=10))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with acquire(scoped, acme) as conn:
            await conn.execute("UPDATE tenants SET rate_limit = 1000000 WHERE id = $1", acme)
    assert (await _row(pool, "acme"))["rate_limit"] == 10


BAD = [
    {"rate_limit": 0},
    {"rate_limit": -1},
    {"max_pending": 0},
    {"max_concurrency": -5},
    {"weight": 0},
    {"weight": 1001},
    {"weight": None},
    {"rate_limit": 2**31},
    {"max_pending": 2**63},
    {"rate_limit": True},
    {"max_pending": 1.5},
    {"burst": 3},
]


@pytest.mark.parametrize("bad", BAD)
async def test_bad_values_are_refused_and_nothing_is_written(
    tenants_store: TenantStore, pool: Any, bad: dict[str, Any]
) -> None:
    await tenants_store.create_tenant("acme", TenantLimits(rate_limit=7, weight=2))
    before = await _row(pool, "acme")
    with pytest.raises(Unprocessable) as refused:
        await tenants_store.update_tenant("acme", {"max_concurrency": 3, **bad})
    assert refused.value.code == "invalid_limit"
    assert next(iter(bad)) in refused.value.detail
    assert await _row(pool, "acme") == before
    if "burst" not in bad:
        with pytest.raises(Unprocessable) as at_create:
            await tenants_store.create_tenant("globex", TenantLimits(**bad))
        assert at_create.value.code == "invalid_limit"
    assert [t.name for t in await tenants_store.list_tenants()] == ["acme"]
