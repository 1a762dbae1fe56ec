"""Redis keys: one hash tag per (tenant, queue); user-chosen names never reach a key."""

from __future__ import annotations

import re
from uuid import UUID

import pytest

from taskstream.broker.keys import Keys
from taskstream.core.models import Priority

TENANT = UUID("00000000-0000-0000-0000-000000000001")
OTHER_TENANT = UUID("00000000-0000-0000-0000-000000000002")
STREAM = re.compile(r"^ts:\{(q[0-9a-f]{16})\}:p([0-3])$")
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
]
keys = Keys("ts")


def _hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first '{' and the next '}'."""
    start = key.index("{") + 1
    return key[start : key.index("}", start)]


@pytest.mark.parametrize("priority", list(Priority))
def test_stream_format(priority: Priority) -> None:
    key = keys.stream(TENANT, "default", priority)
    match = STREAM.match(key)
    assert match is not None, key
    assert match.group(1) == Keys.queue_tag(TENANT, "default")
    assert int(match.group(2)) == int(priority)


def test_tag_is_stable_across_releases() -> None:
    # Changing the hash orphans every stream of a running deployment.
    assert Keys.queue_tag(TENANT, "default") == "q3afb3c18d2fbba94"


def test_all_priorities_of_a_queue_share_one_slot() -> None:
    streams = keys.streams(TENANT, "default")
    assert list(streams) == list(Priority)
    assert len(set(streams.values())) == 4
    assert {_hash_tag(k) for k in streams.values()} == {Keys.queue_tag(TENANT, "default")}


@pytest.mark.parametrize(
    ("tenant", "queue"), [(OTHER_TENANT, "default"), (TENANT, "Default"), (TENANT, "default2")]
)
def test_other_queue_or_tenant_gets_another_tag(tenant: UUID, queue: str) -> None:
    assert Keys.queue_tag(tenant, queue) != Keys.queue_tag(TENANT, "default")


@pytest.mark.parametrize("queue", HOSTILE)
@pytest.mark.parametrize("priority", list(Priority))
def test_hostile_queue_names_never_reach_the_key(queue: str, priority: Priority) -> None:
    key = keys.stream(TENANT, queue, priority)
    assert STREAM.match(key), key
    assert queue not in key
    assert re.fullmatch(r"q[0-9a-f]{16}", _hash_tag(key))


def test_group_and_pattern_use_the_prefix() -> None:
    other = Keys("tst42")
    assert other.group == "tst42:workers"
    assert other.pattern() == "tst42:*"
    assert other.stream(TENANT, "default", Priority.LOW).startswith("tst42:{q")
