"""``@task``'s typed helper: the decorated function stays itself (the worker runs it as
before) and gains ``submit``/``asubmit``, which hand its type name to a client."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from taskstream.worker.registry import Registry


class SendEmail(msgspec.Struct):
    to: str


class Recorder:
    """Stands where a Client goes: records what ``submit`` was asked to send."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    def submit(self, type: str, payload: Any, **options: Any) -> str:  # noqa: A002
        self.calls.append((type, payload, options))
        return "a task"


def test_the_handler_is_still_the_function_and_can_be_submitted() -> None:
    registry = Registry()

    @registry.task("email.send", queue="mail")
    async def send_email(ctx: Any, payload: SendEmail) -> None:
        """Sends it."""

    definition = registry.get("email.send")
    assert definition is not None and definition.fn is send_email
    assert inspect.iscoroutinefunction(send_email) and send_email.__doc__ == "Sends it."
    client = Recorder()
    assert send_email.submit(client, SendEmail(to="a@example.com"), priority="high") == "a task"  # type: ignore[arg-type]
    assert client.calls == [("email.send", SendEmail(to="a@example.com"), {"priority": "high"})]


def test_a_bound_method_registers_without_the_helper() -> None:
    class Mailer:
        def send(self, ctx: Any, payload: dict[str, Any]) -> None: ...

    registry = Registry()
    method = Mailer().send
    assert registry.task("mail.send")(method) == method
    assert not hasattr(method, "submit")
