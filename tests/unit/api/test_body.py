"""The door for request bodies: media type, encoding, depth, duplicate keys, NUL; no I/O."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from taskstream.api.body import MAX_DEPTH, parse
from taskstream.core.errors import ProblemError


class Body(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


JSON = "application/json"


def _code(raw: bytes, content_type: str | None = JSON) -> tuple[int, str]:
    with pytest.raises(ProblemError) as caught:
        parse(raw, content_type, Body)
    return caught.value.status, caught.value.code


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/vnd.taskstream+json",
        "application/problem+json ; charset=utf-8",
    ],
)
def test_json_media_types_are_accepted(content_type: str) -> None:
    assert parse(b'{"type": "t"}', content_type, Body) == Body(type="t")


@pytest.mark.parametrize(
    "content_type",
    [None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
     "application/jsonx", "text/json", "application/+json", "json"],
)  # fmt: skip
def test_other_media_types_are_415(content_type: str | None) -> None:
    assert _code(b'{"type": "t"}', content_type) == (415, "unsupported_media_type")


def test_invalid_utf8_is_400() -> None:
    assert _code(b'{"type": "t", "payload": {"a": "\xff\xfe"}}') == (400, "malformed_json")
    assert _code(b'{"type": "t\xc3"}') == (400, "malformed_json")


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"type": "t", "payload": {"a": '
        + b"[" * (MAX_DEPTH + 1)
        + b"]" * (MAX_DEPTH + 1)
        + b"}}",
    ],
)
def test_deep_nesting_is_refused_before_decoding(raw: bytes) -> None:
    assert _code(raw) == (400, "nesting_too_deep")


def test_nesting_within_the_bound_and_brackets_in_strings_pass() -> None:
    depth = MAX_DEPTH - 3
    deep = b'{"type": "t", "payload": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    assert parse(deep, JSON, Body).type == "t"
    text = b'{"type": "t", "payload": {"s": "' + b"[{" * 5_000 + b'\\"\\\\"}}'
    assert parse(text, JSON, Body).payload == {"s": "[{" * 5_000 + '"\\'}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "t", "type": "u"}',
        b'{"type": "t", "payload": {"a": 1, "b": 2, "a": 3}}',
        b'{"type": "t", "payload": {"x": [{"k": 1, "k": 1}]}}',
        b'{"type": "t", "payload": {"\\u0061": 1, "a": 2}}',
    ],
)
def test_duplicate_keys_are_422(raw: bytes) -> None:
    assert _code(raw) == (422, "duplicate_key")


def test_same_key_in_different_objects_is_fine() -> None:
    raw = b'{"type": "t", "payload": {"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}], "c": "a:b"}}'
    assert parse(raw, JSON, Body).payload["b"] == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "t", "payload": {"a": "x\\u0000y"}}',
        b'{"type": "t", "payload": {"a\\u0000": 1}}',
        b'{"type": "t\\u0000"}',
        b'{"type": "t", "payload": {"a": ["\\\\\\u0000"]}}',
    ],
)
def test_nul_characters_are_422(raw: bytes) -> None:
    assert _code(raw) == (422, "invalid_character")


def test_raw_nul_byte_is_refused() -> None:
    assert _code(b'{"type": "t\x00"}')[0] in (400, 422)


def test_an_escaped_backslash_before_u0000_text_is_not_a_nul() -> None:
    raw = b'{"type": "t", "payload": {"a": "\\\\u0000"}}'  # the text \u0000, no NUL
    assert parse(raw, JSON, Body).payload == {"a": "\\u0000"}


def test_shape_errors_keep_their_codes() -> None:
    assert _code(b'{"type": ') == (400, "malformed_json")
    assert _code(b"[]") == (422, "invalid_body")


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 10_000,
        b'{"type": "t", "payload": {"a": ' + b'["]", ' * 5_000 + b"1" + b"]" * 5_000 + b"}}",
    ],
)
def test_depth_hidden_or_unbalanced_is_still_a_400(raw: bytes) -> None:
    status, code = _code(raw)
    assert status == 400 and code in ("nesting_too_deep", "malformed_json")


def test_duplicate_hidden_behind_an_escaped_colon_is_found() -> None:
    raw = b'{"type": "t", "payload": {"a": 1, "a": "\\u003a"}}'
    assert _code(raw) == (422, "duplicate_key")


async def test_decode_body_answers_problems_through_litestar() -> None:
    from litestar import Litestar, Request, post
    from litestar.testing import AsyncTestClient

    from taskstream.api.body import decode_body
    from taskstream.api.problems import EXCEPTION_HANDLERS

    @post("/echo", status_code=200)
    async def echo(request: Request[Any, Any, Any]) -> dict[str, str]:
        return {"type": (await decode_body(request, Body)).type}

    app = Litestar([echo], exception_handlers=EXCEPTION_HANDLERS)
    async with AsyncTestClient(app=app) as client:
        ok = await client.post("/echo", content=b'{"type": "t"}', headers={"content-type": JSON})
        assert ok.status_code == 200 and ok.json() == {"type": "t"}
        for content_type, status, code in [
            ("text/plain", 415, "unsupported_media_type"),
            ("application/json", 422, "duplicate_key"),
        ]:
            r = await client.post(
                "/echo",
                content=b'{"type": "t", "type": "u"}',
                headers={"content-type": content_type},
            )
            assert r.status_code == status and r.json()["code"] == code
            assert r.headers["content-type"] == "application/problem+json"
