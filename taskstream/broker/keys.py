"""Every Redis key taskstream writes is built here, from server-issued ids only.

A queue's four priority streams share one hash tag, so in Redis Cluster they live in one slot:

    {prefix}:{q<16 hex>}:p0 .. p3     work streams (critical .. low), entries {t: <task id>}
    {prefix}:workers                   consumer group name on every stream
    {prefix}:sentinel                  present while Redis still holds what we wrote
    {prefix}:rate:{tenant id}          a tenant's request budget (rate.lua), gone when full

The hash is of (tenant id, queue name): user-chosen queue names never reach a key verbatim.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from ..core.models import Priority


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.group = f"{prefix}:workers"
        self.sentinel = f"{prefix}:sentinel"

    @staticmethod
    def queue_tag(tenant_id: UUID, queue: str) -> str:
        digest = hashlib.blake2b(f"{tenant_id}\0{queue}".encode(), digest_size=8).hexdigest()
        return f"q{digest}"

    def stream(self, tenant_id: UUID, queue: str, priority: Priority) -> str:
        return f"{self.prefix}:{{{self.queue_tag(tenant_id, queue)}}}:p{int(priority)}"

    def streams(self, tenant_id: UUID, queue: str) -> dict[Priority, str]:
        return {p: self.stream(tenant_id, queue, p) for p in Priority}

    def rate(self, tenant_id: UUID) -> str:
        return f"{self.prefix}:rate:{tenant_id}"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this deployment (tests, cleanup)."""
        return f"{self.prefix}:*"
