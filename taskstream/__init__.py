"""taskstream: a durable, multi-tenant task queue service (PostgreSQL + Redis Streams).

The public surface for handler authors::

    from taskstream import task, TaskContext, Retry, Fail, Breaker, BreakerOpen

and for applications that submit tasks (``taskstream.client``, loaded on first use: workers
never import httpx)::

    from taskstream import Client, AsyncClient
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core.breakers import Breaker
from .core.errors import BreakerOpen, TaskstreamError
from .core.models import Priority, TaskStatus
from .core.outcomes import Fail, Retry
from .core.retry import RetryPolicy
from .worker.context import TaskContext
from .worker.registry import task

if TYPE_CHECKING:
    from .client import AsyncClient, Client

__version__ = "0.1.0"
_CLIENT_NAMES = frozenset({"AsyncClient", "Client"})

__all__ = [
    "AsyncClient",
    "Breaker",
    "BreakerOpen",
    "Client",
    "Fail",
    "Priority",
    "Retry",
    "RetryPolicy",
    "TaskContext",
    "TaskStatus",
    "TaskstreamError",
    "__version__",
    "task",
]


def __getattr__(name: str) -> Any:
    """``Client`` and ``AsyncClient``, imported when first asked for."""
    if name in _CLIENT_NAMES:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'taskstream' has no attribute {name!r}")
