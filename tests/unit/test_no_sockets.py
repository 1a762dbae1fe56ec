"""The guard in conftest.py works, for blocking and asyncio connects alike."""

from __future__ import annotations

import asyncio
import socket

import pytest


def test_blocking_connect_is_refused() -> None:
    with pytest.raises(RuntimeError, match="must not connect"):
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)


async def test_asyncio_connect_is_refused() -> None:
    with pytest.raises(RuntimeError, match="must not connect"):
        await asyncio.open_connection("127.0.0.1", 9)
