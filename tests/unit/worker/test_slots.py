"""How a worker's slots are shared between tenants (worker.slots): the headroom kept for small
tenants, the burst a big tenant takes per read, and no limits for a worker serving one tenant."""

from __future__ import annotations

from uuid import uuid4

import pytest

from taskstream.worker.slots import Slots


def holding(slots: Slots, count: int):
    tenant = uuid4()
    for _ in range(count):
        slots.take(tenant)
    return tenant


def test_a_worker_serving_one_tenant_keeps_no_headroom() -> None:
    slots = Slots(500)
    heavy = holding(slots, 400)
    assert slots.room(heavy) == 100 == slots.free


def test_a_big_tenant_leaves_the_headroom_free() -> None:
    slots = Slots(500)
    slots.shared = True
    heavy = holding(slots, 400)
    assert slots.headroom == 50
    assert slots.room(heavy) == 50  # 100 free, 50 of them kept
    heavy_more = holding(slots, 0)
    for _ in range(50):
        slots.take(heavy)
    assert slots.room(heavy) == 0 and slots.room(heavy_more) == 50


def test_a_small_tenant_may_take_the_headroom() -> None:
    slots = Slots(500)
    slots.shared = True
    holding(slots, 450)  # the big tenant: 50 free, all of them headroom
    light = holding(slots, 12)  # 38 free now
    assert slots.room(light) == 38  # may fill up to the headroom (50) of its own
    newcomer = holding(slots, 0)
    assert slots.room(newcomer) == 38
    for _ in range(38):
        slots.take(light)
    assert slots.room(newcomer) == 0  # nothing free is nothing free


def test_a_big_tenant_takes_at_most_a_burst_per_read() -> None:
    slots = Slots(500)
    slots.shared = True
    heavy = holding(slots, 60)
    assert slots.room(heavy) == 125  # 440 free beyond the headroom, a quarter per read
    fresh = holding(slots, 0)
    assert slots.room(fresh) == 440 - 50  # not big yet: beyond the headroom, no burst bound


def test_claims_in_progress_count_as_taken() -> None:
    slots = Slots(10)
    slots.reserved = 4
    assert slots.free == 6
    tenant = holding(slots, 6)
    assert slots.free == 0 and slots.room(tenant) == 0


@pytest.mark.parametrize("capacity", [2, 4, 10])
def test_small_workers_keep_one_slot_of_headroom(capacity: int) -> None:
    slots = Slots(capacity)
    slots.shared = True
    assert slots.headroom == 1
    heavy = holding(slots, capacity - 1)
    light = holding(slots, 0)
    assert slots.room(light) == 1
    assert slots.room(heavy) == 0


def test_giving_back_forgets_a_tenant_with_nothing_held() -> None:
    slots = Slots(10)
    tenant = holding(slots, 2)
    slots.give_back(tenant)
    slots.give_back(tenant)
    assert tenant not in slots.held and slots.used == 0
