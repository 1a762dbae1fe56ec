"""Redis keys: readable names (tenant, queue and priority in words), one hash tag per queue,
and names outside the door's alphabet that still never reach a key."""

from __future__ import annotations

import re
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskstream.broker.keys import NAME, Keys
from taskstream.core.models import Priority

TENANT = UUID("00000000-0000-0000-0000-000000000001")
SAFE_KEY = re.compile(
    r"^ts:\{[A-Za-z0-9~][A-Za-z0-9_.:~-]*/[A-Za-z0-9~][A-Za-z0-9_.:~-]*\}:(critical|high|normal|low)$"
)
HOSTILE = [
    "a b",
    "{x}",
    "}{",
    "a}b{c",
    "line\nbreak",
    "*",
    "ts:*",
    "\0",
    "ключ",
    "队列🚀",
    "q" * 500,
    "a/b",
]
keys = Keys("ts")


def _hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first '{' and the next '}'."""
    start = key.index("{") + 1
    return key[start : key.index("}", start)]


def test_a_stream_names_tenant_queue_and_priority_in_words() -> None:
    assert keys.stream("acme", "emails", Priority.HIGH) == "ts:{acme/emails}:high"
    assert keys.streams("acme", "emails") == {
        Priority.CRITICAL: "ts:{acme/emails}:critical",
        Priority.HIGH: "ts:{acme/emails}:high",
        Priority.NORMAL: "ts:{acme/emails}:normal",
        Priority.LOW: "ts:{acme/emails}:low",
    }
    assert keys.ready(Priority.LOW) == "ts:ready:low"


def test_all_priorities_of_a_queue_share_one_slot() -> None:
    assert {_hash_tag(k) for k in keys.streams("acme", "emails").values()} == {"acme/emails"}


@pytest.mark.parametrize("queue", HOSTILE)
def test_names_outside_the_alphabet_never_reach_the_key(queue: str) -> None:
    key = keys.stream("acme", queue, Priority.NORMAL)
    assert SAFE_KEY.match(key), key
    assert queue not in key
    assert key != keys.stream("acme", queue + "x", Priority.NORMAL)


@given(st.from_regex(NAME, fullmatch=True), st.from_regex(NAME, fullmatch=True))
def test_names_in_the_alphabet_are_kept_verbatim(tenant: str, queue: str) -> None:
    key = keys.stream(tenant, queue, Priority.NORMAL)
    assert key == f"ts:{{{tenant}/{queue}}}:normal"
    assert _hash_tag(key) == f"{tenant}/{queue}"


def test_the_old_layout_is_still_named() -> None:
    # Streams of deployments before issue 12: workers drain what is left in them.
    legacy = keys.legacy_streams(TENANT, "default")
    assert legacy[Priority.CRITICAL] == "ts:{q3afb3c18d2fbba94}:p0"
    assert legacy[Priority.LOW] == "ts:{q3afb3c18d2fbba94}:p3"


def test_group_and_pattern_use_the_prefix() -> None:
    other = Keys("tst42")
    assert other.group == "tst42:workers"
    assert other.pattern() == "tst42:*"
    assert other.stream("acme", "default", Priority.LOW) == "tst42:{acme/default}:low"
    assert other.rate(TENANT) == f"tst42:rate:{TENANT}"
