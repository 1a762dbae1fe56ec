"""taskstream: a durable, multi-tenant task queue service (PostgreSQL + Redis Streams).

The public surface for handler authors::

    from taskstream import task, TaskContext, Retry, Fail
"""

from __future__ import annotations

from .core.errors import TaskstreamError
from .core.models import Priority, TaskStatus
from .core.outcomes import Fail, Retry
from .core.retry import RetryPolicy
from .worker.context import TaskContext
from .worker.registry import task

__version__ = "0.1.0"

__all__ = [
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
