"""What PostgreSQL can store: the NUL check on results and the cleaning of error texts."""

from __future__ import annotations

import msgspec
import pytest

from taskstream.worker.storable import (
    MAX_ERROR_CHARS,
    NUL_NOT_STORABLE,
    result_problem,
    storable_text,
)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"text": "a\x00b"}, NUL_NOT_STORABLE),
        ({"\x00key": 1}, NUL_NOT_STORABLE),
        ("\\\x00", NUL_NOT_STORABLE),  # a backslash, then NUL
        ("\\u0000", None),  # the six characters, not a NUL
        ("\\\\u0000", None),
        ({"ok": [1, "two"]}, None),
    ],
)
def test_result_problem(value: object, problem: str | None) -> None:
    assert result_problem(msgspec.json.encode(value)) == problem


def test_error_text_loses_nul_and_surrogates_and_is_bounded() -> None:
    assert storable_text("a\x00b \udc80") == "a\\0b \\udc80"
    assert storable_text(None) is None
    assert len(storable_text("\x00" * (MAX_ERROR_CHARS * 2)) or "") == MAX_ERROR_CHARS
    assert storable_text("plain") == "plain"
