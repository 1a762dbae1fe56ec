"""A worker's slots between tenants: what each tenant holds, and how many more it may take.

Small and big tenants. A tenant holding fewer than HEADROOM of a worker's slots (at least one)
is small there; one holding more is big. Only in a worker serving several tenants does this
matter; a worker serving one tenant gives it every slot.

The reserve. Big tenants together leave a reserve of slots to small ones: what small tenants
held lately (their peak, fading over RECENT_S, so a steady light load that pauses between
bursts finds its slots when it comes back) plus the headroom on top, at most half the worker.
A tenant with a backlog fills the rest, never those: when another tenant's task arrives there is
a slot for it at once, rather than after one of the backlog's tasks ends (with 600 ms tasks
started together, 600 ms). A small tenant may take any free slot up to the headroom of its own.

Bursts. A big tenant takes at most BURST of the slots per read: a backlog of equal tasks started
together ends together, and refilling every freed slot at once would keep its waves in step
(hundreds of claims and outcomes in one burst, other tenants' submissions and claims waiting
behind them on PostgreSQL); smaller refills spread them.

Deficit round robin (in the consumer) shares what each read takes by weight; the reserve is
what lets a read happen at all while the worker is saturated.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Collection
from uuid import UUID

HEADROOM = 0.1
BURST = 0.25
RECENT_S = 30.0


class Slots:
    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.headroom = max(1, int(capacity * HEADROOM))
        self.burst = max(1, int(capacity * BURST))
        self.clock = clock
        self.held: Counter[UUID] = Counter()
        self.used = 0
        self.small = 0  # slots held by small tenants (each holding fewer than the headroom)
        self.reserved = 0  # slots of entries being claimed
        self.shared = False  # set by the worker: it serves more than one tenant
        self._peak = 0.0  # the most small tenants held lately, and when
        self._peak_at = 0.0

    @property
    def free(self) -> int:
        return self.capacity - self.used - self.reserved

    @property
    def reserve(self) -> int:
        """Slots big tenants leave to small ones (see the module's docstring)."""
        recent = int(self._recent())
        return min(self.capacity // 2, max(self.small, recent) + self.headroom)

    def _recent(self) -> float:
        return self._peak * math.exp((self._peak_at - self.clock()) / RECENT_S)

    def take(self, tenant: UUID) -> None:
        held = self.held[tenant] + 1
        self.held[tenant] = held
        self.used += 1
        if held < self.headroom:
            self.small += 1
        elif held == self.headroom:
            self.small -= held - 1  # small no more

    def give_back(self, tenant: UUID) -> None:
        held = self.held[tenant]
        self.used -= 1
        if held > 1:
            self.held[tenant] = held - 1
        else:
            del self.held[tenant]
        if held < self.headroom:
            # Noted as a small tenant's task ends (a tenant growing big passes through small
            # on its way, but its tasks end once it is big): the peak is small tenants' use.
            if self.small >= self._recent():
                self._peak, self._peak_at = self.small, self.clock()
            self.small -= 1
        elif held == self.headroom:
            self.small += held - 1  # small again

    def room(self, tenant: UUID) -> int:
        """How many more slots ``tenant`` may take now."""
        return self.rooms((tenant,))[tenant]

    def rooms(self, tenants: Collection[UUID]) -> dict[UUID, int]:
        """How many more slots each of ``tenants`` may take now."""
        free = max(0, self.free)
        if not self.shared:
            return dict.fromkeys(tenants, free)
        big = self.used - self.small
        beyond = self.capacity - self.reserved - big - self.reserve
        room = max(0, min(free, beyond, self.burst))
        held, small = self.held, self.headroom
        return {
            t: max(room, min(free, small - h)) if (h := held.get(t, 0)) < small else room
            for t in tenants
        }
