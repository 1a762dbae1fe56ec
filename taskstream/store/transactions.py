"""The handler's own transaction, committed together with the task's completion."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from .database import translate_errors


class AttemptTransaction:
    """Lazily opened: a handler that never asks for it costs nothing."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool
        self._conn: asyncpg.Connection[Any] | None = None
        self._tx: Any = None

    @property
    def active(self) -> bool:
        return self._conn is not None

    @property
    def conn(self) -> asyncpg.Connection[Any] | None:
        return self._conn

    async def connection(self) -> asyncpg.Connection[Any]:
        if self._conn is None:
            with translate_errors():
                conn: asyncpg.Connection[Any] = await self._pool.acquire()
                self._tx = conn.transaction()
                await self._tx.start()
            self._conn = conn
        return self._conn

    async def settle(self, commit: bool) -> None:
        """Commit or roll back, and give the connection back to the pool."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            with translate_errors():
                if commit:
                    await self._tx.commit()
                else:
                    await self._tx.rollback()
        except Exception:
            if commit:
                raise
            # A rollback on a dead connection changes nothing: the server already discarded it.
        finally:
            # Shielded: a cancellation arriving now (a shutdown) must not skip the release, or
            # the connection leaks and the pool's close() waits for it for ever.
            await asyncio.shield(self._give_back(conn))

    async def _give_back(self, conn: asyncpg.Connection[Any]) -> None:
        with contextlib.suppress(Exception):
            # Handler code may have left session state (SET, LISTEN, advisory locks, cursors);
            # the pool keeps sessions as they are (see database._keep_session).
            await conn.reset()
        with contextlib.suppress(Exception):
            await self._pool.release(conn)
