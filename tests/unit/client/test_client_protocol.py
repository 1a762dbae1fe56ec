"""The client's operations driven by hand: the requests they send, how they retry, what they
return and raise. No transport at all: answers are scripted ``Reply``/``Failure`` values."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import pytest

from taskstream.client import (
    Conflict,
    InvalidRequest,
    NotFound,
    QueueFull,
    RateLimited,
    RetryPolicy,
    ServerError,
    Submission,
    TransportError,
    Unavailable,
    UnexpectedResponse,
    WaitTimeout,
)
from taskstream.client.errors import RequestTimeout
from taskstream.client.operations import Operations
from taskstream.client.protocol import Failure, Op, Pacing, Plan, Reply, Sleep

T = TypeVar("T")
Answer = Callable[[Plan], Reply | Failure]


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0


def ops(clock: Clock | None = None, attempts: int = 4) -> Operations:
    clock = clock or Clock()
    return Operations(
        Pacing(
            policy=RetryPolicy(attempts=attempts, base_s=0.1, cap_s=1.0),
            now=lambda: datetime(2026, 12, 4, tzinfo=UTC),
            rand=lambda: 0.5,
            monotonic=lambda: clock.now_s,
        )
    )


def drive(
    op: Op[T], answer: Answer, clock: Clock | None = None
) -> tuple[T, list[Plan], list[float]]:
    """Run ``op`` to its end: plans answered by ``answer``, sleeps recorded (and clocked)."""
    sent: list[Plan] = []
    slept: list[float] = []
    outcome: Reply | Failure | None = None
    while True:
        try:
            step = op.send(outcome)
        except StopIteration as done:
            return done.value, sent, slept
        if isinstance(step, Sleep):
            slept.append(step.seconds)
            if clock is not None:
                clock.now_s += step.seconds
            outcome = None
        else:
            sent.append(step)
            outcome = answer(step)


def task_json(status: str = "pending", **changes: Any) -> dict[str, Any]:
    return {
        "id": "01a23f92-94cc-78fb-acbb-8683348e58dd", "type": "examples.echo",
        "queue": "default", "priority": "normal", "status": status,
        "payload": {"message": "hi"}, "result": None, "last_error": None, "attempts": 0,
        "max_attempts": 3, "timeout_s": 10.0, "idempotency_key": "k", "correlation_id": None,
        "run_at": "2026-12-04T12:00:00Z", "created_at": "2026-12-04T12:00:00Z",
        "started_at": None, "finished_at": None, "region": None, **changes,
    }  # fmt: skip


def ok(body: Any, status: int = 200) -> Reply:
    return Reply(status, msgspec.json.encode(body))


def problem(status: int, code: str, retry_after: str | None = None, **extra: Any) -> Reply:
    body = {"type": "t", "title": "t", "status": status, "detail": f"{code}!", "code": code}
    return Reply(status, msgspec.json.encode({**body, "extra": extra or None}), retry_after)


def script(*answers: Reply | Failure) -> Answer:
    it: Iterator[Reply | Failure] = iter(answers)
    return lambda _: next(it)


def test_a_submit_keeps_one_idempotency_key_through_its_retries() -> None:
    answers = script(
        problem(429, "rate_limited", "2"),
        Failure(OSError("reset"), sent=True),
        problem(503, "unavailable", "1"),
        ok(task_json(), 201),
    )
    task, sent, slept = drive(ops().submit(Submission(type="examples.echo")), answers)
    assert task.status == "pending" and len(sent) == 4
    assert len({p.body for p in sent}) == 1  # the same bytes, the same key, every time
    body = msgspec.json.decode(sent[0].body or b"")
    assert body["idempotency_key"].startswith("tsc-")
    assert body == {"type": "examples.echo", "idempotency_key": body["idempotency_key"]}
    assert slept == [pytest.approx(2.05), pytest.approx(0.1), pytest.approx(1.2)]


def test_two_submits_get_two_keys_and_a_given_key_is_kept() -> None:
    made = [
        msgspec.json.decode(
            drive(ops().submit(Submission(type="t")), script(ok(task_json())))[1][0].body or b""
        )
        for _ in range(2)
    ]
    assert made[0]["idempotency_key"] != made[1]["idempotency_key"]
    _, sent, _ = drive(
        ops().submit(Submission(type="t", idempotency_key="mine")), script(ok(task_json()))
    )
    assert msgspec.json.decode(sent[0].body or b"")["idempotency_key"] == "mine"


def test_retries_stop_after_the_policy_attempts() -> None:
    with pytest.raises(RateLimited) as caught:
        drive(ops(attempts=3).get("x"), lambda _: problem(429, "rate_limited", "1"))
    assert caught.value.retry_after_s == 1.0 and caught.value.status == 429


def test_a_broken_connection_is_not_resent_for_a_cancel() -> None:
    reset = Failure(OSError("reset"), sent=True)
    with pytest.raises(TransportError, match="POST /v1/tasks/x/cancel: reset"):
        drive(ops().cancel("x"), script(reset))
    refused = Failure(OSError("refused"), sent=False)  # never left: safe to send again
    task, sent, _ = drive(ops().cancel("x"), script(refused, ok(task_json("cancelled"))))
    assert task.status == "cancelled" and len(sent) == 2


def test_timeouts_and_hopeless_failures() -> None:
    timed_out = Failure(TimeoutError("read"), sent=True, timed_out=True)
    with pytest.raises(RequestTimeout, match="after 4 tries"):
        drive(ops().get("x"), lambda _: timed_out)
    bad_url = Failure(ValueError("no scheme"), sent=False, retryable=False)
    sent: list[Plan] = []

    def answer(plan: Plan) -> Failure:
        sent.append(plan)
        return bad_url

    with pytest.raises(TransportError, match="no scheme"):
        drive(ops().get("x"), answer)
    assert len(sent) == 1  # sending it again cannot help


@pytest.mark.parametrize(
    ("reply", "kind", "code"),
    [
        (problem(404, "task_not_found"), NotFound, "task_not_found"),
        (problem(409, "idempotency_conflict", task_id="t1"), Conflict, "idempotency_conflict"),
        (problem(422, "unknown_task_type"), InvalidRequest, "unknown_task_type"),
        (problem(400, "invalid_cursor"), InvalidRequest, "invalid_cursor"),
        (problem(503, "queue_full", "1"), QueueFull, "queue_full"),
        (problem(500, "internal_error"), ServerError, "internal_error"),
        (problem(418, "teapot"), InvalidRequest, "teapot"),
        (Reply(502, b"<html>Bad Gateway</html>"), ServerError, "http_error"),
        (Reply(503, b"", "1"), Unavailable, "http_error"),
    ],
)
def test_problems_raise_their_named_exception(reply: Reply, kind: type, code: str) -> None:
    with pytest.raises(kind) as caught:
        drive(ops(attempts=1).get("x"), script(reply))
    assert caught.value.code == code and caught.value.status == reply.status
    if code == "idempotency_conflict":
        assert caught.value.extra == {"task_id": "t1"}


def test_an_answer_that_is_not_the_apis_shape() -> None:
    with pytest.raises(UnexpectedResponse):
        drive(ops().get("x"), script(Reply(200, b"<html>hello</html>")))


def test_submit_many_sends_a_thousand_tasks_a_request() -> None:
    def answer(plan: Plan) -> Reply:
        n = len(msgspec.json.decode(plan.body or b"")["tasks"])
        return ok({"items": [{"status": 201, "task": task_json()}] * n}, 201)

    tasks = [Submission(type="t", payload={"i": i}) for i in range(2345)]
    items, sent, _ = drive(ops().submit_many(tasks), answer)
    assert [len(msgspec.json.decode(p.body or b"")["tasks"]) for p in sent] == [1000, 1000, 345]
    assert len(items) == 2345 and all(i.created for i in items)
    keys = {t["idempotency_key"] for p in sent for t in msgspec.json.decode(p.body or b"")["tasks"]}
    assert len(keys) == 2345


def test_wait_polls_with_backoff_until_done() -> None:
    clock = Clock()
    states = itertools.chain(["pending"] * 5, ["processing"] * 3, ["completed"])
    task, sent, slept = drive(
        ops(clock).wait("x", 30), lambda _: ok(task_json(next(states))), clock
    )
    assert task.status == "completed" and task.done and len(sent) == 9
    assert slept == sorted(slept) and slept[0] == 0.05 and max(slept) <= 2.0


def test_wait_times_out_with_the_last_state() -> None:
    clock = Clock()
    with pytest.raises(WaitTimeout, match="still processing after 3 s") as caught:
        drive(ops(clock).wait("x", 3), lambda _: ok(task_json("processing")), clock)
    assert caught.value.status == "processing" and clock.now_s == pytest.approx(3.0)
    assert isinstance(caught.value, TimeoutError)


def test_list_and_replay_requests() -> None:
    page = {"items": [task_json()], "next_cursor": "c1"}
    _, sent, _ = drive(ops().tasks_page(status="failed", queue="q", cursor="c0"), script(ok(page)))
    assert sent[0].params == {"status": "failed", "queue": "q", "limit": "100", "cursor": "c0"}
    _, sent, _ = drive(ops().replay(["a"], type="t"), script(ok({"replayed": 0, "items": []})))
    assert msgspec.json.decode(sent[0].body or b"") == {"limit": 100, "ids": ["a"], "type": "t"}
    assert not sent[0].idempotent
