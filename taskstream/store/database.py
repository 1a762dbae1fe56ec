"""Connection pool and the boundary where asyncpg's errors become ours."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg

from ..core.errors import StoreUnavailable

CUSTOM_PLANS = "force_custom_plan"

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


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise connection-level failures as :class:`StoreUnavailable`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}") from exc


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    # JSON stays text end to end: msgspec encodes and decodes it, asyncpg only carries it.
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=str, decoder=str, format="text"
        )


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Released connections keep their session: taskstream's own statements leave no session
    state (a transaction is rolled back by asyncpg before this runs), so the default reset query
    (advisory unlocks, ``CLOSE ALL``, ``UNLISTEN *``, ``RESET ALL``) would be a round trip per
    release for nothing: ~0.8 µs of CPU per task (client and server) and ~0.1-0.2 ms of latency
    per claim or outcome batch.
    Connections lent to handler code are reset in full before they come back (see
    ``AttemptTransaction.settle``)."""


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, custom_plans: bool = True
) -> asyncpg.Pool[Any]:
    """A pool whose connections exchange JSON as text.

    ``custom_plans``: plan every statement for its own arguments and the table as it is now. A
    generic plan cached while the tasks table was small kept scanning it sequentially once it held
    tens of thousands of rows (a claim of 100 tasks took 200-500 ms). Planning costs well under a
    millisecond and the worker's statements carry batches; only the API's insert path, whose
    statements cannot scan the table, keeps cached plans (``custom_plans=False``)."""
    with translate_errors():
        pool: asyncpg.Pool[Any] = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            command_timeout=30,
            timeout=10,
            server_settings={"plan_cache_mode": CUSTOM_PLANS if custom_plans else "auto"},
        )
    return pool


@contextlib.asynccontextmanager
async def acquire(pool: asyncpg.Pool[Any]) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A pooled connection, with connection failures translated."""
    with translate_errors():
        async with pool.acquire() as conn:
            yield conn


async def listen(
    pool: asyncpg.Pool[Any], channel: str, on_notify: Callable[[], None]
) -> Callable[[], Awaitable[None]]:
    """Call ``on_notify`` on every NOTIFY on ``channel``; holds one pooled connection.
    Returns a coroutine function that stops listening."""
    with translate_errors():
        conn: asyncpg.Connection[Any] = await pool.acquire()

    def _callback(*_: object) -> None:
        on_notify()

    await conn.add_listener(channel, _callback)

    async def close() -> None:
        try:
            await conn.remove_listener(channel, _callback)
        except (asyncpg.InterfaceError, OSError):
            pass  # the connection is already gone
        finally:
            await pool.release(conn)

    return close
