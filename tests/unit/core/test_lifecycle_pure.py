"""The pure parts of issue 13: sealing (core/crypto.py) and the audit chain (core/audit.py)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from taskstream.core.audit import GENESIS, Actor, Row, chain, verify
from taskstream.core.crypto import PAYLOAD, RESULT, Keyring, keyring
from taskstream.core.errors import SealBroken, SealKeyMissing

KEY = base64.b64encode(bytes(range(32))).decode()


def test_sealed_values_open_only_for_their_task_and_field() -> None:
    keys = keyring(f"k1:{KEY}")
    task, other = uuid4(), uuid4()
    text, kid = keys.seal(b'{"a": 1}', task, PAYLOAD)
    # The clear text is nowhere in the sealed value (one byte of it could be, by chance: 9 %).
    assert kid == "k1" and b'{"a": 1}' not in base64.b64decode(text.strip('"'))
    assert keys.open(text, kid, task, PAYLOAD) == '{"a": 1}'
    again, _ = keys.seal(b'{"a": 1}', task, PAYLOAD)
    assert again != text  # a fresh nonce each time
    for wrong_task, field in ((other, PAYLOAD), (task, RESULT)):
        with pytest.raises(SealBroken, match="'k1'"):
            keys.open(text, kid, wrong_task, field)
    with pytest.raises(SealKeyMissing, match="'k9'"):
        keys.open(text, "k9", task, PAYLOAD)
    assert Keyring().seal(b"{}", task, PAYLOAD) == ("{}", None)  # no key: stored clear
    assert Keyring().open("{}", None, task, PAYLOAD) == "{}"


def test_a_thousand_seals_use_a_thousand_nonces() -> None:
    keys = keyring(f"k1:{KEY}")
    nonces = {base64.b64decode(keys.seal(b"{}", uuid4(), PAYLOAD)[0].strip('"'))[:12]
              for _ in range(1000)}  # fmt: skip
    assert len(nonces) == 1000


def _rows(tenant: UUID, blocks: list[int]) -> tuple[list[Row], tuple[int, bytes]]:
    """Rows as the store writes them: ``blocks`` gives each block's size."""
    rows, current, seq = [], GENESIS, 0
    at = datetime(2026, 12, 3, tzinfo=UTC)
    for size in blocks:
        by = Actor(name="key:abc", request_id="r", at=at + timedelta(seconds=seq))
        entries = [by.entry(tenant, "task.submit", f"t{seq + i}") for i in range(size)]
        current = chain(current, [e.digest for e in entries])
        for i, e in enumerate(entries):
            seq += 1
            last = i == size - 1
            rows.append(Row(entry=e, seq=seq, digest=e.digest, chain=current if last else None))
    return rows, (seq, current)


def test_the_chain_names_the_first_broken_row() -> None:
    tenant = uuid4()
    rows, head = _rows(tenant, [3, 1, 4])
    assert verify(tenant, rows, head) is None
    edited = list(rows)
    e = rows[4].entry
    forged = Actor(name="key:evil", request_id=e.request_id, at=e.at).entry(
        tenant, e.action, e.target
    )
    edited[4] = Row(entry=forged, seq=5, digest=rows[4].digest, chain=None)
    assert verify(tenant, edited, head).seq == 5  # type: ignore[union-attr]
    edited[4] = Row(entry=forged, seq=5, digest=forged.digest, chain=None)  # digest redone
    broken = verify(tenant, edited, head)
    assert broken is not None and broken.seq == 8 and "chain" in broken.reason
    assert verify(tenant, rows[:1] + rows[2:], head).seq == 2  # type: ignore[union-attr]
    assert verify(tenant, rows[:4], head).seq == 5  # type: ignore[union-attr]  # tail cut
    assert verify(tenant, rows[:7], head).seq == 7  # type: ignore[union-attr]  # mid-block
