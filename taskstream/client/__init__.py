"""The Python client of the taskstream API, blocking and asyncio::

    from taskstream.client import Client

    with Client("http://127.0.0.1:8000", key) as client:
        task = client.submit("email.send", SendEmail(to="a@example.com", subject="hi"))
        done = client.wait(task.id, timeout_s=30)

``AsyncClient`` has the same calls, awaited. Results are typed Structs (``models.py``); errors
are one tree named after the API's problem codes (``errors.py``). Requests refused with 429 or
503, and connections that fail, are sent again (honouring ``Retry-After``, with jittered
backoff, ``RetryPolicy``); a submit carries one idempotency key for all its copies, so a retry
never enqueues a task twice.
"""

from __future__ import annotations

from .aio import AsyncClient
from .errors import (
    APIError,
    ClientError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    RequestTimeout,
    ServerError,
    TransportError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    UnsupportedMediaType,
    WaitTimeout,
)
from .models import (
    Attempt,
    DeadLetter,
    Page,
    Queue,
    Replayed,
    Schedule,
    Submitted,
    Task,
    TaskTemplate,
    Worker,
)
from .operations import Submission
from .retries import RetryPolicy
from .sync import Client

__all__ = [
    "APIError",
    "AsyncClient",
    "Attempt",
    "Client",
    "ClientError",
    "Conflict",
    "DeadLetter",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Queue",
    "QueueFull",
    "RateLimited",
    "Replayed",
    "RequestTimeout",
    "RetryPolicy",
    "Schedule",
    "ServerError",
    "Submission",
    "Submitted",
    "Task",
    "TaskTemplate",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "UnsupportedMediaType",
    "WaitTimeout",
    "Worker",
]
