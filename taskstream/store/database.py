"""Connection pool and the boundary where asyncpg's errors become ours."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Iterator
from typing import Any
from uuid import UUID

import asyncpg

from ..core.errors import StoreRefused, StoreUnavailable

CUSTOM_PLANS = "force_custom_plan"
# The role API connections take (migration 0010): held by Row-Level Security to the tenants its
# session is scoped to. Workers, schedulers and the CLI keep the owning role.
API_ROLE = "taskstream_api"
_SCOPE = "SELECT set_config('taskstream.tenants', $1, false)"
Scope = UUID | Collection[UUID] | None

# Errors that mean "PostgreSQL is not there right now" rather than "the query is wrong".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


# Errors that mean "these values can never be stored": SQLSTATE class 22 (data exception: a NUL
# in text, an out-of-range time) and 23 (a constraint), and asyncpg's own refusal to encode an
# argument (an InterfaceError, so it must be matched before _UNAVAILABLE).
_REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions._base.DataError,
)


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise connection-level failures as :class:`StoreUnavailable`, refused values as
    :class:`StoreRefused` (the request's fault: a 4xx, never retried as it is)."""
    try:
        yield
    except _REFUSED as exc:
        raise StoreRefused(f"PostgreSQL refused a value: {str(exc)[:200]}") from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}") from exc


class TenantConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that remembers which tenants its session is scoped to.

    On a tenant-scoped pool (the API's) every :func:`acquire` states the tenants it works for;
    the session setting is written only when it changes, so a connection that keeps serving the
    same tenant pays nothing, and one that switches pays one round trip. The setting is written
    outside any transaction (acquire runs before the caller opens one), so no rollback can undo
    it behind the cache's back."""

    __slots__ = ("_scope", "_scoped")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scoped = False
        self._scope = "{}"

    async def scope_to(self, tenants: Scope) -> None:
        if not self._scoped:
            return
        value = _scope_literal(tenants)
        if value != self._scope:
            await self.execute(_SCOPE, value)
            self._scope = value


def _scope_literal(tenants: Scope) -> str:
    if tenants is None:
        return "{}"
    if isinstance(tenants, UUID):
        return f"{{{tenants}}}"
    return "{" + ",".join(sorted(str(t) for t in tenants)) + "}"


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    # JSON stays text end to end: msgspec encodes and decodes it, asyncpg only carries it.
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=str, decoder=str, format="text"
        )


async def _init_scoped(conn: asyncpg.Connection[Any]) -> None:
    await _init_connection(conn)
    await conn.execute(
        f"SET ROLE {API_ROLE}; SELECT set_config('taskstream.tenants', '{{}}', false)"
    )
    conn._scoped = True


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Released connections keep their session: taskstream's own statements leave no session
    state (a transaction is rolled back by asyncpg before this runs), so the default reset query
    (advisory unlocks, ``CLOSE ALL``, ``UNLISTEN *``, ``RESET ALL``) would be a round trip per
    release for nothing: ~0.8 µs of CPU per task (client and server) and ~0.1-0.2 ms of latency
    per claim or outcome batch.
    Connections lent to handler code are reset in full before they come back (see
    ``AttemptTransaction.settle``)."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    custom_plans: bool = True,
    tenant_scoped: bool = False,
) -> asyncpg.Pool[Any]:
    """A pool whose connections exchange JSON as text.

    ``custom_plans``: plan every statement for its own arguments and the table as it is now. A
    generic plan cached while the tasks table was small kept scanning it sequentially once it held
    tens of thousands of rows (a claim of 100 tasks took 200-500 ms). Planning costs well under a
    millisecond and the worker's statements carry batches; only the API's insert path, whose
    statements cannot scan the table, keeps cached plans (``custom_plans=False``).

    ``tenant_scoped``: connections take the API's role (:data:`API_ROLE`), so Row-Level Security
    holds every statement to the tenants :func:`acquire` names (migration 0010)."""
    with translate_errors(), _connect_refused():
        pool: asyncpg.Pool[Any] = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_scoped if tenant_scoped else _init_connection,
            connection_class=TenantConnection,
            reset=_keep_session,
            command_timeout=30,
            timeout=10,
            server_settings={"plan_cache_mode": CUSTOM_PLANS if custom_plans else "auto"},
        )
    return pool


@contextlib.contextmanager
def _connect_refused() -> Iterator[None]:
    """A server that answers but will not have us (no such database, role or password) is
    unavailable to us too: a clear line for the CLI (``taskstream: ...``), not a traceback."""
    try:
        yield
    except (
        asyncpg.InvalidCatalogNameError,
        asyncpg.InvalidAuthorizationSpecificationError,
        asyncpg.InvalidPasswordError,
    ) as exc:
        raise StoreUnavailable(
            f"PostgreSQL refused the connection: {exc} (check TASKSTREAM_DATABASE_URL; "
            "`taskstream migrate` creates the database)"
        ) from exc


@contextlib.asynccontextmanager
async def acquire(
    pool: asyncpg.Pool[Any], tenants: Scope = None
) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A pooled connection, with connection failures translated. On a tenant-scoped pool the
    session sees only ``tenants`` (none when not given), whatever the statements say."""
    with translate_errors():
        async with pool.acquire() as conn:
            await conn.scope_to(tenants)
            yield conn
