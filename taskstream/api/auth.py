"""API-key authentication: a per-prefix cache, cheap wrong keys, a per-address throttle on
failures, last-used bookkeeping off the request path, and role checks.

What a request costs, by the key it carries:
- a key verified in the last ``ttl_s``: no database round trip, no hash (its secret is compared
  with the one that last verified, in constant time);
- a malformed key, a prefix looked up in the last ``ttl_s`` and found missing, or a known prefix
  with the wrong secret: no database round trip either;
- a prefix not seen for ``ttl_s``: one look-up (concurrent requests for it share it).
An address past ``failures_per_minute`` failures gets 429 for further failures; a key that
verifies is served. An unseen prefix from such an address is looked up while a small budget
shared by all throttled addresses lasts (``PROBE_BURST``, refilled ``PROBES_PER_S``); past it,
it is checked against the set of live prefixes, loaded at most once a second, and looked up only
if there. So throttled traffic costs PostgreSQL at most about two statements a second, and a
valid key is refused only if it was created after that set was loaded (under a second ago)
while throttled traffic had spent the budget: it gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import structlog
from litestar import Request

from ..core.audit import Actor
from ..core.errors import Forbidden, ProblemError, TaskstreamError, Unauthenticated
from ..core.rbac import Action, allows
from ..store.tenants import Check, KeyRecord, Principal, split_key
from .caches import SharedCalls, remember
from .limits import Limits
from .observe import correlation_id

log = structlog.get_logger("taskstream.api")
MAX_CACHED = 10_000  # known prefixes (a row each, ~300 bytes)
MAX_MISSING = 4_096  # prefixes found missing, kept for ttl_s
MAX_ADDRESSES = 10_000  # client addresses with failures in the current minute
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key
DIRECTORY_EVERY_S = 1.0  # live prefixes are reloaded at most this often
WINDOW_S = 60.0
PROBE_BURST = 5  # look-ups of unseen prefixes for throttled addresses, all together
PROBES_PER_S = 1.0


class KeySource(Protocol):
    """What the authenticator needs of the store (``TenantStore``)."""

    async def verify(self, key: str) -> KeyRecord | None: ...
    async def live_prefixes(self, now: float | None = None) -> frozenset[str]: ...
    async def touch(self, used: dict[str, float]) -> None: ...


class TooManyAuthFailures(ProblemError):
    status = 429
    code = "too_many_auth_failures"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many wrong API keys from this address; retry in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )


class FailureThrottle:
    """Failed authentications per client address in fixed one-minute windows; bounded memory
    (the address idle longest is forgotten first). Pure: ``now`` is an argument."""

    def __init__(self, per_minute: int, max_addresses: int = MAX_ADDRESSES) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self._windows: collections.OrderedDict[str, tuple[float, int]] = collections.OrderedDict()

    def _window(self, address: str, now: float) -> tuple[float, int]:
        start, count = self._windows.get(address, (now, 0))
        return (now, 0) if now - start >= WINDOW_S else (start, count)

    def _retry_after_s(self, start: float, now: float) -> int:
        return max(1, math.ceil(start + WINDOW_S - now))

    def blocked(self, address: str, now: float) -> int | None:
        """Seconds to wait if the next failure from ``address`` would be refused, else None."""
        start, count = self._window(address, now)
        return self._retry_after_s(start, now) if count >= self.per_minute else None

    def fail(self, address: str, now: float) -> int | None:
        """Count a failure; seconds to wait if it is past the limit, else None."""
        start, count = self._window(address, now)
        self._windows[address] = (start, count + 1)
        self._windows.move_to_end(address)
        while len(self._windows) > self.max_addresses:
            self._windows.popitem(last=False)
        return self._retry_after_s(start, now) if count + 1 > self.per_minute else None


class _Entry:
    __slots__ = ("fetched_at", "principal", "record", "touched_at", "verified")

    def __init__(self, record: KeyRecord, fetched_at: float) -> None:
        self.record = record
        self.fetched_at = fetched_at
        self.touched_at = record.last_used_at  # as far as this process knows
        self.principal = record.principal()
        self.verified: str | None = None  # the secret that last matched the hash

    def recognises(self, secret: str, now: float) -> bool:
        """Whether ``secret`` is the one that already verified, the row is fresh and the key
        not expired (a revoked row is never cached as verified)."""
        return (
            self.verified is not None
            and hmac.compare_digest(self.verified, secret)
            and (self.record.expires_at is None or now < self.record.expires_at)
        )


class Authenticator:
    """Verifies ``Authorization: Bearer`` keys. A key's row is trusted for ``ttl_s`` (its expiry
    is checked on every request), so a revoked key is refused within ``ttl_s`` — at once by the
    process that revoked it."""

    def __init__(
        self,
        tenants: KeySource,
        ttl_s: float,
        failures_per_minute: int = 30,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenants = tenants
        self.limits = limits  # a verified tenant's request is then counted against its rate
        self.ttl_s = ttl_s
        self.clock = clock
        self.throttle = FailureThrottle(failures_per_minute)
        self._known: dict[str, _Entry] = {}
        self._missing: dict[str, float] = {}  # prefix -> when it was found missing
        self._lookups: SharedCalls[str, KeyRecord | None] = SharedCalls()
        self._directory: tuple[float, frozenset[str]] = (-math.inf, frozenset())
        self._directory_lock = asyncio.Lock()
        self._used: dict[str, float] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._probes = (float(PROBE_BURST), clock())  # (tokens, when counted)

    async def principal(self, request: Request[Any, Any, Any], action: Action) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthenticated(
                "send an API key as 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        key = key.strip()
        who = self._recognised(key) or await self._verify(key, _address(request))
        if self.limits is not None:
            await self.limits.admit_request(who.tenant_id)  # 429 past the tenant's rate
        if not allows(who.role, action):
            raise Forbidden(f"role {who.role!r} may not {action.value}", code="forbidden")
        return who

    def _recognised(self, key: str) -> Principal | None:
        """The hot path: a key that verified in the last ``ttl_s``, without hashing it again."""
        parts = split_key(key)
        entry = self._known.get(parts[0]) if parts else None
        if entry is None or parts is None:
            return None
        now = self.clock()
        if now - entry.fetched_at >= self.ttl_s or not entry.recognises(parts[1], now):
            return None
        self._note_use(entry, now)
        return entry.principal

    async def verify(self, key: str, address: str) -> Principal:
        """The key's principal, or Unauthenticated / TooManyAuthFailures."""
        return self._recognised(key) or await self._verify(key, address)

    async def _verify(self, key: str, address: str) -> Principal:
        """A key not recognised from the cache: its row (cached or looked up) and its hash."""
        now = self.clock()
        parts = split_key(key)
        record = await self._record(parts, key, address, now) if parts else None
        check = record.check(parts[1], now) if record and parts else Check.WRONG
        if check is Check.VALID and record is not None and parts is not None:
            entry = self._known.get(record.prefix)
            if entry is None or entry.record is not record:
                return record.principal()  # dropped from the cache meanwhile (revoked here)
            entry.verified = parts[1]
            self._note_use(entry, now)
            return entry.principal
        retry_after_s = self.throttle.fail(address, now)
        if retry_after_s is not None:
            raise TooManyAuthFailures(retry_after_s)
        if check is Check.EXPIRED:
            raise Unauthenticated("this API key has expired", code="expired_api_key")
        raise Unauthenticated("unknown or revoked API key", code="invalid_api_key")

    def forget(self, prefix: str) -> None:
        """Drop what this process knows of a key (it was just revoked here)."""
        self._known.pop(prefix, None)

    async def _record(
        self, parts: tuple[str, str], key: str, address: str, now: float
    ) -> KeyRecord | None:
        prefix, secret = parts
        entry = self._known.get(prefix)
        if entry is not None and now - entry.fetched_at < self.ttl_s:
            return entry.record
        if entry is not None and entry.record.check(secret, now) is Check.WRONG:
            return entry.record  # a key's hash never changes: this secret will never match
        missing_at = self._missing.get(prefix)
        if missing_at is not None and now - missing_at < self.ttl_s:
            return None
        # An address already past its limit asks the database only about prefixes that exist.
        if (
            entry is None
            and self.throttle.blocked(address, now) is not None
            and not self._take_probe(now)
            and prefix not in await self._live_prefixes(now)
        ):
            return None
        # One look-up per prefix at a time, shared by every request waiting for it.
        record = await self._lookups(prefix, lambda: self.tenants.verify(key))
        if record is None:
            remember(self._missing, prefix, now, MAX_MISSING)
            self._known.pop(prefix, None)
            return None
        self._missing.pop(prefix, None)
        fresh = _Entry(record, now)
        if entry is not None and (entry.touched_at or 0) > (fresh.touched_at or 0):
            fresh.touched_at = entry.touched_at
        remember(self._known, prefix, fresh, MAX_CACHED)
        return record

    def _take_probe(self, now: float) -> bool:
        tokens, at = self._probes
        tokens = min(float(PROBE_BURST), tokens + max(0.0, now - at) * PROBES_PER_S)
        self._probes = (tokens - 1, now) if tokens >= 1 else (tokens, now)
        return tokens >= 1

    async def _live_prefixes(self, now: float) -> frozenset[str]:
        async with self._directory_lock:
            loaded_at, prefixes = self._directory
            if now - loaded_at >= DIRECTORY_EVERY_S:
                prefixes = await self.tenants.live_prefixes(now)
                self._directory = (now, prefixes)
        return prefixes

    def _note_use(self, entry: _Entry, now: float) -> None:
        if entry.touched_at is not None and now - entry.touched_at < TOUCH_EVERY_S:
            return
        entry.touched_at = now
        self._used[entry.record.prefix] = now
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        """Write last-used times in the background; a failure loses them (they are advisory)."""
        while self._used:
            used, self._used = self._used, {}
            try:
                await self.tenants.touch(used)
            except TaskstreamError as exc:  # an outage: the times are advisory, let them go
                log.warning("could not record key use", error=str(exc), keys=len(used))
                return
            except Exception:  # a bug: logged once, and it must not end the process
                log.exception("could not record key use", keys=len(used))
                return

    async def aclose(self) -> None:
        """Write the last-used times still pending (at shutdown)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()


def _address(request: Request[Any, Any, Any]) -> str:
    """The client address failures are counted against (only looked at off the hot path)."""
    return request.client.host if request.client else "unknown"


def actor(who: Principal, request: Request[Any, Any, Any], at: datetime) -> Actor:
    """Who acts in the audit log, in which request (its correlation id, api/observe.py), when:
    the entries of one call share it."""
    return Actor(name=f"key:{who.key_prefix}", request_id=correlation_id(request.scope), at=at)
