"""Every Redis key taskstream writes is built here.

Streams are named so a person can read them with redis-cli: tenant, queue and priority in
words. A queue's four priority streams share one hash tag, so in Redis Cluster they live in
one slot:

    {prefix}:{<tenant>/<queue>}:critical|high|normal|low   work streams, entries {t: <task id>}
    {prefix}:{<tenant>/<queue>@<region>}:...   the same for the tasks of a region (issue 13)
    {prefix}:ready:critical|high|normal|low    streams that may hold entries no worker read yet
    {prefix}:workers                           consumer group name on every stream
    {prefix}:sentinel                          present while Redis still holds what we wrote
    {prefix}:rate:{tenant id}                  a tenant's request budget (rate.lua)
    {prefix}:breakers:{tenant id}              a tenant's dependency breakers (breaker.lua):
                                               a hash, one JSON field per breaker

Tenant and queue names are restricted at the door to letters, digits, ``_``, ``.``, ``:`` and
``-`` (``NAME``), so they reach a key verbatim. A queue named before that rule (any text) is still
safe: its stream uses ``~`` and a hash of the name in place of the name.

Before issue 12 streams were ``{prefix}:{q<16 hex of blake2b(tenant id, queue)>}:p0..p3`` with
the task id as 16 raw bytes: ``legacy_streams`` names them, so workers drain what is left there.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple
from uuid import UUID

from ..core.models import Priority

# What a queue (or tenant) name may be, checked at the door (api/intake.py): it reaches a key
# verbatim. ':' is safe inside the hash tag's braces.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
WORDS: dict[Priority, str] = {
    Priority.CRITICAL: "critical",
    Priority.HIGH: "high",
    Priority.NORMAL: "normal",
    Priority.LOW: "low",
}


class ServedQueue(NamedTuple):
    """A queue a worker reads: its tenant (id and name), its name, the tenant's weight, and the
    region of its streams ('' for tasks without one)."""

    tenant_id: UUID
    tenant: str
    queue: str
    weight: int
    region: str = ""


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.group = f"{prefix}:workers"
        self.sentinel = f"{prefix}:sentinel"

    @staticmethod
    def queue_tag(tenant: str, queue: str, region: str | None = None) -> str:
        """``tenant/queue`` (``@region``); a name outside ``NAME`` is replaced by ``~`` and its
        hash. Region names are checked where they are configured (``[a-z0-9-]``)."""
        t = tenant if NAME.fullmatch(tenant) else f"~{_digest(tenant)}"
        q = queue if NAME.fullmatch(queue) else f"~{_digest(queue)}"
        return f"{t}/{q}@{region}" if region else f"{t}/{q}"

    def stream(self, tenant: str, queue: str, priority: Priority, region: str | None = None) -> str:
        return f"{self.prefix}:{{{self.queue_tag(tenant, queue, region)}}}:{WORDS[priority]}"

    def streams(self, tenant: str, queue: str, region: str | None = None) -> dict[Priority, str]:
        return {p: self.stream(tenant, queue, p, region) for p in Priority}

    def ready(self, priority: Priority) -> str:
        return f"{self.prefix}:ready:{WORDS[priority]}"

    def legacy_streams(self, tenant_id: UUID, queue: str) -> dict[Priority, str]:
        """The streams of a (tenant, queue) before issue 12 (hashed names)."""
        digest = _digest(f"{tenant_id}\0{queue}")
        return {p: f"{self.prefix}:{{q{digest}}}:p{int(p)}" for p in Priority}

    def rate(self, tenant_id: UUID) -> str:
        return f"{self.prefix}:rate:{tenant_id}"

    def breakers(self, tenant_id: UUID) -> str:
        """One key per tenant (one slot in Redis Cluster): every change is a one-key script."""
        return f"{self.prefix}:breakers:{tenant_id}"

    def breakers_pattern(self) -> str:
        """A SCAN pattern matching every tenant's breakers (the metrics token's /metrics)."""
        return f"{self.prefix}:breakers:*"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this deployment (tests, cleanup)."""
        return f"{self.prefix}:*"
