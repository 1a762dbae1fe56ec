"""A fresh Registry: handler signatures, payload types and name rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from taskstream.core.errors import HandlerError
from taskstream.worker.context import TaskContext
from taskstream.worker.registry import REGISTRY, Registry


class Address(msgspec.Struct):
    city: str


class Email(msgspec.Struct, kw_only=True):
    to: str
    subject: str = ""
    reply_to: Address | None = None


async def send_email(ctx: TaskContext, payload: Email) -> None:
    return None


def sync_any(ctx: TaskContext, payload: dict[str, Any]) -> None:
    return None


def test_async_handler_with_a_struct_payload() -> None:
    before = len(REGISTRY)
    reg = Registry()
    assert reg.task("email.send", queue="mail", timeout_s=5, max_attempts=2)(send_email) is (
        send_email
    )
    definition = reg.get("email.send")
    assert definition is not None
    assert (definition.fn, definition.queue, definition.is_async) == (send_email, "mail", True)
    assert (definition.timeout_s, definition.max_attempts) == (5, 2)
    assert definition.payload_type is Email
    assert definition.decoder.decode(b'{"to": "a@b"}') == Email(to="a@b")
    schema = definition.payload_schema()
    assert schema["$ref"] == "#/$defs/Email"
    assert {"Email", "Address"} <= set(schema["$defs"])
    assert schema["$defs"]["Email"]["required"] == ["to"]
    assert [d.name for d in reg] == ["email.send"]
    assert len(REGISTRY) == before  # the global registry is untouched


def _plain(ctx, payload):  # type: ignore[no-untyped-def]
    return None


def _bare_dict(ctx: TaskContext, payload: dict) -> None:  # type: ignore[type-arg]
    return None


@pytest.mark.parametrize("fn", [sync_any, _plain, _bare_dict])
def test_dict_or_unannotated_payload_is_any_object(fn: Callable[..., Any]) -> None:
    reg = Registry()
    reg.task("anything")(fn)
    definition = reg.get("anything")
    assert definition is not None
    assert definition.is_async is False
    assert definition.payload_type is None
    assert definition.queue == "default"
    assert definition.payload_schema() == {"type": "object"}
    assert definition.decoder.decode(b'{"x": [1]}') == {"x": [1]}


def _one(ctx: TaskContext) -> None:
    return None


def _three(ctx: TaskContext, payload: dict[str, Any], extra: int = 0) -> None:
    return None


def _star(*args: Any) -> None:
    return None


def _str_payload(ctx: TaskContext, payload: str) -> None:
    return None


def _list_payload(ctx: TaskContext, payload: list[int]) -> None:
    return None


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_one, "must take"),
        (_three, "must take"),
        (_star, "must take"),
        (_str_payload, "payload must be"),
        (_list_payload, "payload must be"),
    ],
)
def test_bad_signatures_raise(fn: Callable[..., Any], message: str) -> None:
    reg = Registry()
    with pytest.raises(HandlerError, match=message):
        reg.task("bad")(fn)
    assert len(reg) == 0


@pytest.mark.parametrize("name", ["a", "a" * 128, "email.send", "ns:task-1", "A_b.c"])
def test_valid_names(name: str) -> None:
    reg = Registry()
    reg.task(name)(sync_any)
    assert reg.get(name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1abc",
        "_x",
        "a b",
        "a/b",
        "a" * 129,
        "émail",
        "a{b}",
        "email\n",
    ],
)
def test_invalid_names_raise(name: str) -> None:
    with pytest.raises(HandlerError, match="invalid task type name"):
        Registry().task(name)


@pytest.mark.parametrize("queue", ["0", "q" * 64, "mail.eu-1", "a:b"])
def test_valid_queues(queue: str) -> None:
    reg = Registry()
    reg.task("t", queue=queue)(sync_any)
    definition = reg.get("t")
    assert definition is not None
    assert definition.queue == queue


@pytest.mark.parametrize(
    "queue",
    ["", "-q", ".q", "a b", "q" * 65, "q/1", "*", "default\n"],
)
def test_invalid_queues_raise(queue: str) -> None:
    with pytest.raises(HandlerError, match="invalid queue name"):
        Registry().task("t", queue=queue)


def test_same_name_for_another_function_raises() -> None:
    reg = Registry()
    reg.task("dup")(sync_any)
    with pytest.raises(HandlerError, match="registered twice"):
        reg.task("dup")(send_email)
    definition = reg.get("dup")
    assert definition is not None
    assert definition.fn is sync_any


def test_registering_the_same_function_again_is_harmless() -> None:
    reg = Registry()
    reg.task("again")(sync_any)
    reg.task("again")(sync_any)
    assert len(reg) == 1


def test_per_type_retry_policy_is_kept() -> None:
    from taskstream import RetryPolicy

    reg = Registry()
    policy = RetryPolicy(base_s=5, cap_s=60)

    @reg.task("slow.retry", retry=policy, visibility_timeout_s=120)
    async def handler(ctx: TaskContext, payload: dict) -> None: ...

    d = reg.get("slow.retry")
    assert d is not None and d.retry is policy and d.visibility_timeout_s == 120
