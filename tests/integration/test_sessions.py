"""Pooled sessions: taskstream's own statements skip the reset round trip on release, while a
connection lent to handler code through ctx.transaction() comes back reset in full."""

from __future__ import annotations

from typing import Any

from taskstream.core.config import Settings
from taskstream.store.database import create_pool
from taskstream.store.transactions import AttemptTransaction

LOCK_KEY = 4242


async def _session_state(conn: Any) -> tuple[str, int]:
    name = await conn.fetchval("SELECT current_setting('application_name')")
    locks = await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    )
    return name, locks


async def test_pool_release_keeps_the_session(settings: Settings) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET application_name = 'kept'")
        async with pool.acquire() as conn:
            # The same session, not reset: no RESET ALL ran on release.
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid
            assert await conn.fetchval("SELECT current_setting('application_name')") == "kept"
    finally:
        await pool.close()


async def test_a_handler_connection_comes_back_reset(settings: Settings) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            clean = await _session_state(conn)
        tx = AttemptTransaction(pool)
        lent = await tx.connection()
        await lent.execute("SET application_name = 'handler'")
        await lent.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        assert await _session_state(lent) == ("handler", 1)
        await tx.settle(commit=True)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid  # the same session
            assert await _session_state(conn) == clean  # setting reset, lock released
    finally:
        await pool.close()
