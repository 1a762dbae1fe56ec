"""LISTEN that outlives its connection.

A listener holds one pooled connection. When PostgreSQL restarts (or the backend is terminated)
that connection dies, and a plain ``add_listener`` stays deaf for good. Here the connection's
termination callback (and, as a backstop, a periodic ``is_closed`` check) wakes a loop that
listens again with backoff, then calls ``on_notify`` once: a change may have been missed while
nobody listened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog

from .database import translate_errors

log = structlog.get_logger("taskstream.store")
CHECK_S = 1.0  # backstop: look at the connection this often even without a callback
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0


class Listener:
    """``on_notify`` on every NOTIFY on ``channel``, across lost connections.

    ``open()`` listens once (a failure is left to ``run()``), ``run()`` keeps listening until
    cancelled, ``close()`` stops listening and gives the connection back."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        channel: str,
        on_notify: Callable[[], None],
        *,
        check_s: float = CHECK_S,
    ) -> None:
        self.pool = pool
        self.channel = channel
        self.on_notify = on_notify
        self.check_s = check_s
        self.reconnects = 0  # times listening resumed after a lost connection (tests, metrics)
        self._conn: Any = None
        self._lost = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._conn is not None and _alive(self._conn)

    async def open(self) -> None:
        """Listen now if PostgreSQL is there; otherwise ``run()`` keeps trying."""
        try:
            await self._listen()
        except Exception as exc:  # noqa: BLE001 - any failure here is retried by run()
            log.warning("cannot listen yet", channel=self.channel, error=repr(exc))

    async def run(self) -> None:
        """Keep listening until cancelled."""
        delay = RETRY_FIRST_S
        while True:
            while self.listening:
                self._lost.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), self.check_s)
            await self._release()
            try:
                await self._listen()
            except Exception as exc:  # noqa: BLE001 - outage or not, try again later
                log.warning("cannot listen yet", channel=self.channel, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            self.reconnects += 1
            log.info("listening again", channel=self.channel)
            self.on_notify()  # something may have changed while nobody listened

    async def close(self) -> None:
        conn = self._conn
        if conn is not None and _alive(conn):
            with contextlib.suppress(Exception):  # the connection may be going away
                await conn.remove_listener(self.channel, self._notified)
        await self._release()

    async def _listen(self) -> None:
        with translate_errors():
            conn: Any = await self.pool.acquire()
        try:
            with translate_errors():
                await conn.add_listener(self.channel, self._notified)
            conn.add_termination_listener(self._terminated)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.pool.release(conn)
            raise
        self._conn = conn

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.remove_termination_listener(self._terminated)
        with contextlib.suppress(Exception):  # a dead connection is replaced by the pool
            await self.pool.release(conn)

    def _notified(self, *_: object) -> None:
        self.on_notify()

    def _terminated(self, *_: object) -> None:
        self._lost.set()


def _alive(conn: Any) -> bool:
    """A pooled connection that died is handed back to the pool by asyncpg itself; its proxy
    then refuses every call."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


async def listen(
    pool: asyncpg.Pool[Any], channel: str, on_notify: Callable[[], None]
) -> Callable[[], Awaitable[None]]:
    """Call ``on_notify`` on every NOTIFY on ``channel``; listening resumes after a lost
    connection. Returns a coroutine function that stops listening (for callers without a task
    group of their own)."""
    listener = Listener(pool, channel, on_notify)
    await listener.open()
    keeper = asyncio.create_task(listener.run(), name=f"listen:{channel}")

    async def close() -> None:
        keeper.cancel()
        await asyncio.wait([keeper])
        await listener.close()

    return close
