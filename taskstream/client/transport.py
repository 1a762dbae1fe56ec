"""The httpx boundary shared by both clients: the connection pool's options, and httpx's
answers and errors turned into the protocol's ``Reply`` and ``Failure`` (the one place httpx
errors are classified)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from .protocol import Failure, Pacing, Plan, Reply
from .retries import RetryPolicy

USER_AGENT = "taskstream-client"
JSON_BODY = {"Content-Type": "application/json"}
# Never sent: the request did not leave (or found no connection). Safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Trying again cannot help: the URL or the proxy is wrong.
_HOPELESS = (httpx.UnsupportedProtocol, httpx.ProxyError, httpx.LocalProtocolError)


def pool_options(url: str, key: str, timeout_s: float, max_connections: int) -> dict[str, Any]:
    """httpx client options: one keep-alive pool (HTTP/1.1), the key on every request, and
    ``timeout_s`` for each of connect, write, read and waiting for a pooled connection."""
    if not key:
        raise ValueError("an API key is needed (TASKSTREAM_API_KEY)")
    return {
        "base_url": url.rstrip("/"),
        "headers": {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
        "timeout": httpx.Timeout(timeout_s),
        "limits": httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        "follow_redirects": False,
    }


def pacing(policy: RetryPolicy) -> Pacing:
    return Pacing(
        policy=policy,
        now=lambda: datetime.now(UTC),
        rand=random.random,
        monotonic=time.monotonic,
    )


def request_args(plan: Plan) -> dict[str, Any]:
    """``plan`` as keyword arguments of ``httpx.Client.request``."""
    return {
        "method": plan.method,
        "url": plan.path,
        "params": plan.params,
        "content": plan.body,
        "headers": JSON_BODY if plan.body is not None else None,
    }


def reply(response: httpx.Response) -> Reply:
    return Reply(response.status_code, response.content, response.headers.get("retry-after"))


def failure(exc: httpx.TransportError) -> Failure:
    return Failure(
        exc,
        sent=not isinstance(exc, _NOT_SENT),
        timed_out=isinstance(exc, httpx.TimeoutException),
        retryable=not isinstance(exc, _HOPELESS),
    )
