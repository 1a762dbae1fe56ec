"""The authenticator against a fake key store and a fake clock: what each key costs in look-ups,
expiry, revocation within the TTL, the per-address throttle, and last-used bookkeeping."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from taskstream.api.auth import Authenticator, FailureThrottle, TooManyAuthFailures
from taskstream.cli import duration_s, key_table
from taskstream.core.errors import Unauthenticated
from taskstream.store.tenants import KeyInfo, KeyRecord, hash_secret, split_key

TENANT = uuid4()
SECRET = "s" * 32
PREFIX = "0123456789ab"
KEY = f"tsk_{PREFIX}_{SECRET}"
T0 = 1_700_000_000.0


class FakeKeys:
    def __init__(self) -> None:
        self.rows: dict[str, KeyRecord] = {}
        self.lookups = 0
        self.directory_loads = 0
        self.touched: list[dict[str, float]] = []

    def add(self, prefix: str = PREFIX, **changes: object) -> None:
        fields: dict[str, object] = {
            "prefix": prefix, "tenant_id": TENANT, "role": "admin",
            "secret_hash": hash_secret(SECRET), "expires_at": None, "revoked": False,
            "last_used_at": None,
        }  # fmt: skip
        fields.update(changes)
        self.rows[prefix] = KeyRecord(**fields)  # type: ignore[arg-type]

    async def verify(self, key: str) -> KeyRecord | None:
        self.lookups += 1
        parts = split_key(key)
        return self.rows.get(parts[0]) if parts else None

    async def live_prefixes(self, now: float | None = None) -> frozenset[str]:
        self.directory_loads += 1
        return frozenset(p for p, r in self.rows.items() if not r.revoked)

    async def touch(self, used: dict[str, float]) -> None:
        self.touched.append(dict(used))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys() -> FakeKeys:
    k = FakeKeys()
    k.add()
    return k


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(keys: FakeKeys, clock: Clock) -> Authenticator:
    return Authenticator(keys, ttl_s=10, failures_per_minute=30, clock=clock)


async def test_a_valid_key_is_looked_up_once_per_ttl(auth, keys, clock) -> None:
    for _ in range(100):
        assert (await auth.verify(KEY, "a")).tenant_id == TENANT
    assert keys.lookups == 1
    clock.now += 10
    await auth.verify(KEY, "a")
    assert keys.lookups == 2


async def test_a_recognised_key_does_not_vouch_for_another_secret(auth, keys) -> None:
    await auth.verify(KEY, "a")  # verified: its secret is remembered for the TTL
    with pytest.raises(Unauthenticated) as err:
        await auth.verify(f"tsk_{PREFIX}_{'t' * 32}", "a")
    assert err.value.code == "invalid_api_key"
    assert (await auth.verify(KEY, "a")).tenant_id == TENANT
    assert keys.lookups == 1


async def test_revocation_is_seen_within_the_ttl(auth, keys, clock) -> None:
    await auth.verify(KEY, "a")
    keys.add(revoked=True)
    clock.now += 9.9
    await auth.verify(KEY, "a")  # still trusted: the documented revocation delay
    clock.now += 0.1
    with pytest.raises(Unauthenticated) as err:
        await auth.verify(KEY, "a")
    assert err.value.code == "invalid_api_key"


async def test_forget_refuses_a_revoked_key_at_once(auth, keys) -> None:
    await auth.verify(KEY, "a")
    keys.add(revoked=True)
    auth.forget(PREFIX)
    with pytest.raises(Unauthenticated):
        await auth.verify(KEY, "a")


async def test_the_cache_does_not_outlive_a_keys_expiry(auth, keys, clock) -> None:
    keys.add(expires_at=T0 + 3)
    await auth.verify(KEY, "a")
    clock.now += 3
    with pytest.raises(Unauthenticated) as err:
        await auth.verify(KEY, "a")
    assert err.value.code == "expired_api_key" and keys.lookups == 1


@pytest.mark.parametrize(
    "wrong",
    [
        "garbage",
        "tsk__",
        f"tsk_{PREFIX}_",
        f"tsk_{PREFIX.upper()}_{SECRET}",
        f"tsk_{PREFIX}_{SECRET}\x00",
        f"tsk_{PREFIX}_{'s' * 5000}",
        "tsk_ffffffffffff_" + SECRET,  # well formed, unknown prefix
        f"tsk_{PREFIX}_{'t' * 32}",  # known prefix, wrong secret
    ],
)
async def test_a_wrong_key_costs_at_most_one_lookup(auth, keys, wrong) -> None:
    for _ in range(25):
        with pytest.raises(Unauthenticated) as err:
            await auth.verify(wrong, "a")
        assert err.value.code == "invalid_api_key"
    assert keys.lookups <= 1


async def test_a_wrong_secret_for_a_stale_known_prefix_needs_no_lookup(auth, keys, clock) -> None:
    await auth.verify(KEY, "a")
    clock.now += 60
    with pytest.raises(Unauthenticated):
        await auth.verify(f"tsk_{PREFIX}_{'t' * 32}", "a")
    assert keys.lookups == 1  # the hash of a key never changes


async def test_concurrent_requests_share_one_lookup(auth, keys) -> None:
    await asyncio.gather(*(auth.verify(KEY, "a") for _ in range(50)))
    assert keys.lookups == 1


async def test_the_31st_failure_is_429_but_valid_keys_pass(auth, keys, clock) -> None:
    for i in range(30):
        with pytest.raises(Unauthenticated):
            await auth.verify(f"tsk_{i:012x}_{SECRET}", "10.0.0.1")
    with pytest.raises(TooManyAuthFailures) as err:
        await auth.verify("tsk_ffffffffffff_" + SECRET, "10.0.0.1")
    assert err.value.status == 429 and 1 <= err.value.retry_after_s <= 60
    for i in range(20):  # spend the look-up budget of throttled addresses
        with pytest.raises(TooManyAuthFailures):
            await auth.verify(f"tsk_{i + 100:012x}_{SECRET}", "10.0.0.1")
    clock.now += 1  # the live prefixes are reloaded at most once a second
    keys.add("aaaaaaaaaaaa")  # never seen by this process
    who = await auth.verify(f"tsk_aaaaaaaaaaaa_{SECRET}", "10.0.0.1")
    assert who.key_prefix == "aaaaaaaaaaaa"
    with pytest.raises(Unauthenticated):  # another address is not throttled
        await auth.verify("tsk_ffffffffffff_" + SECRET, "10.0.0.2")
    clock.now += 60
    with pytest.raises(Unauthenticated):  # a new minute
        await auth.verify("tsk_eeeeeeeeeeee_" + SECRET, "10.0.0.1")


async def test_random_wrong_keys_past_the_limit_cost_no_lookup_each(auth, keys, clock) -> None:
    for i in range(1_000):
        clock.now += 0.01  # 1,000 keys in 10 s
        with pytest.raises((Unauthenticated, TooManyAuthFailures)):
            await auth.verify(f"tsk_{i:012x}_{SECRET}", "a")
    # 30 failures a minute looked up, then 5 + 1 a second from the probe budget, and the live
    # prefixes loaded at most once a second.
    assert keys.lookups <= 30 + 5 + 10
    assert keys.directory_loads <= 10


async def test_last_used_is_written_at_most_once_a_minute(auth, keys, clock) -> None:
    for _ in range(100):
        await auth.verify(KEY, "a")
        clock.now += 1  # 100 s of use, with lookups every 10 s
        await asyncio.sleep(0)
    await auth.aclose()
    times = [t[PREFIX] for t in keys.touched]
    assert times[0] == T0 and len(times) == 2 and times[1] - times[0] >= 60


async def test_an_outage_while_recording_use_is_not_the_requests_problem(auth, keys) -> None:
    from taskstream.core.errors import StoreUnavailable

    async def down(used: dict[str, float]) -> None:
        raise StoreUnavailable("down")

    keys.touch = down  # type: ignore[method-assign]
    assert (await auth.verify(KEY, "a")).role == "admin"
    await auth.aclose()


@pytest.mark.parametrize(
    ("events", "limit", "refused"),
    [
        ([0.0] * 3, 3, []),
        ([0.0] * 4, 3, [3]),
        ([0.0, 0.0, 0.0, 59.9, 60.0], 3, [3]),  # a new window at 60 s
        ([0.0] * 2, 0, [0, 1]),
    ],
)
def test_throttle_windows(events: list[float], limit: int, refused: list[int]) -> None:
    throttle = FailureThrottle(limit)
    got = [i for i, t in enumerate(events) if throttle.fail("a", T0 + t) is not None]
    assert got == refused


def test_throttle_memory_is_bounded() -> None:
    throttle = FailureThrottle(1, max_addresses=100)
    for i in range(10_000):
        throttle.fail(f"10.0.{i // 256}.{i % 256}", T0)
    assert len(throttle._windows) == 100


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 7_776_000), ("12h", 43_200), ("30m", 1_800), ("3600s", 3_600), ("45", 45)],
)
def test_durations(text: str, seconds: int) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0d", "-5", "1.5h", "10w", "d", "1 d 2h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration_s(text)


def test_key_table_shows_no_secret() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    info = KeyInfo(
        prefix=PREFIX, role="viewer", created_at=at, last_used_at=None, expires_at=at,
        revoked_at=None,
    )  # fmt: skip
    lines = key_table([info]).splitlines()
    assert lines[0].split() == ["PREFIX", "ROLE", "CREATED", "LAST", "USED", "EXPIRES", "REVOKED"]
    assert lines[1].split() == [PREFIX, "viewer", "2026-01-02", "03:04:05Z", "-", "2026-01-02",
                                "03:04:05Z", "-"]  # fmt: skip
