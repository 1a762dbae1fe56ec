"""A worker's slots between tenants: what each tenant holds, and how many more it may take.

Headroom. A worker that serves several tenants keeps its last ``headroom`` free slots
(HEADROOM of its concurrency, at least one) for tenants that hold fewer than ``headroom`` of
its slots. A tenant with a backlog fills the rest, never those: when another tenant's task
arrives there is a slot for it at once, rather than after one of the backlog's tasks ends (with
600 ms tasks started together, 600 ms). A small tenant may take up to ``headroom`` slots more
than it holds. A worker serving one tenant keeps no headroom: nobody else could use it.

Bursts. In such a worker a tenant beyond the headroom takes at most BURST of the slots per
read: a backlog of equal tasks started together ends together, and refilling every freed slot
at once would keep its waves in step (hundreds of claims and outcomes in one burst, other
tenants' submissions and claims waiting behind them on PostgreSQL); smaller refills spread them.

Deficit round robin (in the consumer) shares what each read takes by weight; the headroom is
what lets a read happen at all while the worker is saturated.
"""

from __future__ import annotations

from collections import Counter
from uuid import UUID

HEADROOM = 0.1
BURST = 0.25


class Slots:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.headroom = max(1, int(capacity * HEADROOM))
        self.burst = max(1, int(capacity * BURST))
        self.held: Counter[UUID] = Counter()
        self.used = 0
        self.reserved = 0  # slots of entries being claimed
        self.shared = False  # set by the worker: it serves more than one tenant

    @property
    def free(self) -> int:
        return self.capacity - self.used - self.reserved

    def take(self, tenant: UUID) -> None:
        self.held[tenant] += 1
        self.used += 1

    def give_back(self, tenant: UUID) -> None:
        self.used -= 1
        left = self.held[tenant] - 1
        if left > 0:
            self.held[tenant] = left
        else:
            del self.held[tenant]

    def room(self, tenant: UUID) -> int:
        """How many more slots ``tenant`` may take now."""
        free = self.free
        if not self.shared:
            return max(0, free)
        held = self.held.get(tenant, 0)
        beyond = free - self.headroom  # what anyone may take
        if held < self.headroom:
            return max(0, min(free, max(beyond, self.headroom - held)))
        return max(0, min(beyond, self.burst))
