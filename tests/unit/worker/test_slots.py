"""How a worker's slots are shared between tenants (worker.slots): the reserve big tenants leave
to small ones (headroom, and what small tenants held lately), the burst a big tenant takes per
read, and no limits in a worker serving one tenant."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from taskstream.worker.slots import RECENT_S, Slots


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def shared(capacity: int, clock: Clock | None = None) -> Slots:
    slots = Slots(capacity, clock or Clock())
    slots.shared = True
    return slots


def holding(slots: Slots, count: int, tenant: UUID | None = None) -> UUID:
    tenant = tenant or uuid4()
    for _ in range(count):
        slots.take(tenant)
    return tenant


def test_a_worker_serving_one_tenant_keeps_no_reserve() -> None:
    slots = Slots(500)
    heavy = holding(slots, 400)
    assert slots.room(heavy) == 100 == slots.free


def test_a_big_tenant_leaves_the_headroom_free() -> None:
    slots = shared(500)
    heavy = holding(slots, 400)
    assert slots.headroom == 50 and slots.reserve == 50
    assert slots.room(heavy) == 50  # 100 free, 50 of them kept
    holding(slots, 50, heavy)
    newcomer = uuid4()
    assert slots.room(heavy) == 0 and slots.room(newcomer) == 50


def test_a_small_tenant_may_take_free_slots_up_to_the_headroom() -> None:
    slots = shared(500)
    holding(slots, 450)  # the big tenant: 50 free
    light = holding(slots, 12)  # 38 free now
    assert slots.small == 12
    assert slots.room(light) == 38  # up to the headroom (50) of its own
    newcomer = uuid4()
    assert slots.room(newcomer) == 38
    holding(slots, 38, light)
    assert slots.room(newcomer) == 0  # nothing free is nothing free
    assert slots.small == 0  # the light tenant holds 50 now: big


def test_a_big_tenant_takes_at_most_a_burst_per_read() -> None:
    slots = shared(500)
    heavy = holding(slots, 60)
    assert slots.room(heavy) == 125  # 390 beyond the reserve, a quarter of the slots per read
    assert slots.room(uuid4()) == 125  # a newcomer too (beyond its own headroom)


def test_what_small_tenants_held_lately_stays_reserved_for_a_while() -> None:
    clock = Clock()
    slots = shared(500, clock)
    lights = [holding(slots, 12) for _ in range(9)]  # 108 slots, small tenants each
    for t in lights:  # their tasks end: the peak is noted
        for _ in range(12):
            slots.give_back(t)
    assert slots.small == 0 and slots.used == 0
    heavy = uuid4()
    holding(slots, 300, heavy)
    # 108 recently held by small tenants + 50 headroom stay out of the big tenant's reach.
    assert slots.reserve == 158
    assert slots.room(heavy) == 500 - 300 - 158
    clock.now += 5 * RECENT_S  # long quiet: back to the headroom alone
    assert slots.reserve == 50
    assert slots.room(heavy) == 125  # 150 beyond the reserve, one burst


def test_a_big_tenant_raises_the_reserve_by_the_headroom_at_most() -> None:
    slots = shared(500)
    heavy = holding(slots, 450)  # passes through small on its way up: not noted
    for _ in range(450):
        slots.give_back(heavy)  # its tasks end while it is big, but the last 49
    assert slots.reserve == 50 + 49
    assert slots.small == 0


def test_claims_in_progress_count_as_taken() -> None:
    slots = Slots(10)
    slots.reserved = 4
    assert slots.free == 6
    tenant = holding(slots, 6)
    assert slots.free == 0 and slots.room(tenant) == 0


@pytest.mark.parametrize("capacity", [2, 4, 10])
def test_small_workers_keep_one_slot_of_headroom(capacity: int) -> None:
    slots = shared(capacity)
    assert slots.headroom == 1
    heavy = holding(slots, capacity - 1)
    assert slots.room(uuid4()) == 1
    assert slots.room(heavy) == 0


def test_giving_back_forgets_a_tenant_with_nothing_held() -> None:
    slots = Slots(10)
    tenant = holding(slots, 2)
    slots.give_back(tenant)
    slots.give_back(tenant)
    assert tenant not in slots.held and slots.used == 0
