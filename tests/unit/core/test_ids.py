"""UUIDv7: version and variant bits, the timestamp on top, deterministic when injected."""

from __future__ import annotations

import time
import uuid

import pytest

from taskstream.core.ids import uuid7

LOW_RAND, HIGH_RAND = bytes(10), b"\xff" * 10


@pytest.mark.parametrize(
    ("ms", "rand"),
    [
        (None, None),
        (0, LOW_RAND),
        (0, HIGH_RAND),
        ((1 << 48) - 1, HIGH_RAND),
        (1_700_000_000_000, None),
    ],
)
def test_version_7_and_rfc_variant(ms: int | None, rand: bytes | None) -> None:
    u = uuid7(ms, rand)
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    if ms is not None:
        assert u.int >> 80 == ms


def test_injected_inputs_give_a_known_value() -> None:
    u = uuid7(0x0123456789AB, bytes(range(10)))
    assert u == uuid.UUID("01234567-89ab-7001-8203-040506070809")
    assert u == uuid7(0x0123456789AB, bytes(range(10)))


def test_default_timestamp_is_now() -> None:
    now_ms = time.time_ns() // 1_000_000
    assert abs((uuid7().int >> 80) - now_ms) < 5_000


@pytest.mark.parametrize(
    ("early_ms", "late_ms"), [(0, 1), (1_700_000_000_000, 1_700_000_000_001), (5, 10**12)]
)
def test_order_follows_the_timestamp_not_the_random_bits(early_ms: int, late_ms: int) -> None:
    early, late = uuid7(early_ms, HIGH_RAND), uuid7(late_ms, LOW_RAND)
    assert early < late
    assert str(early) < str(late)


def test_sorting_ids_sorts_by_creation_time() -> None:
    stamps = [1_700_000_000_000 + d for d in (7, 3, 9, 0, 5, 1)]
    ids = {uuid7(ms): ms for ms in stamps}
    assert [ids[u] for u in sorted(ids)] == sorted(stamps)


def test_random_ids_are_unique() -> None:
    assert len({uuid7(1_700_000_000_000) for _ in range(1_000)}) == 1_000
