"""Unit tests touch no network: any attempt to connect a socket fails the test loudly."""

from __future__ import annotations

import socket
from typing import Any, NoReturn

import pytest


class SocketBlockedError(RuntimeError):
    """A unit test tried to open a network connection."""


def _blocked(self: socket.socket, *args: Any, **kwargs: Any) -> NoReturn:
    self.close()  # callers that only clean up after OSError would otherwise leak it
    raise SocketBlockedError(f"unit tests must not connect sockets (tried {args!r})")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", _blocked)
