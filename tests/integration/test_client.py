"""`taskstream.client` against a real API on a real socket: uvicorn serving the app as
`taskstream api` does, and a worker, each in a thread with its own event loop; real Redis and
PostgreSQL behind them. Nothing is mocked: retries meet the API's own 429s, and a proxy that
drops an answer after the API handled the request."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msgspec
import pytest

from taskstream.client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    QueueFull,
    RetryPolicy,
    Submission,
    TaskTemplate,
    TransportError,
    Unauthorized,
    WaitTimeout,
)
from taskstream.core.config import Settings
from taskstream.core.models import TaskStatus
from taskstream.examples.tasks import Echo, echo
from taskstream.services import api_service
from taskstream.store.database import create_pool
from taskstream.store.tenants import TenantLimits, TenantStore
from taskstream.worker.runner import Worker

from .conftest import REGISTRY

RATE_LIMIT = 120  # requests a minute: a full bucket, then 2 a second
FAST = RetryPolicy(attempts=2, base_s=0.01, cap_s=0.05)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Background:
    """``run(stop)`` in a thread with its own event loop, until ``close()``."""

    def __init__(self, run: Callable[[asyncio.Event], Awaitable[None]], name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(run,), name=name, daemon=True)
        self._thread.start()

    def _main(self, run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(run(self._stop))
        except BaseException as exc:  # handed to the test by close()
            self.error = exc
        finally:
            self._loop.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "a background service did not stop"
        if self.error is not None:
            raise self.error


class Served(msgspec.Struct):
    url: str
    keys: dict[str, str]  # admin, viewer, submitter (acme), throttled, full
    dsn: str

    def client(self, who: str = "admin", **options: Any) -> Client:
        return Client(self.url, self.keys[who], **options)

    def count(self, sql: str) -> int:
        async def q() -> int:
            pool = await create_pool(self.dsn, min_size=1, max_size=1)
            try:
                return int(await pool.fetchval(sql))
            finally:
                await pool.close()

        return asyncio.run(q())


async def _prepare(settings: Settings) -> dict[str, str]:
    """Task types registered (as a worker does at start) and the tenants with their keys."""
    worker = Worker(settings, REGISTRY)
    worker._pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        await worker.register_types()
        ts = TenantStore(worker._pool)
        acme = await ts.create_tenant("acme")
        throttled = await ts.create_tenant("throttled", TenantLimits(rate_limit=RATE_LIMIT))
        full = await ts.create_tenant("full", TenantLimits(max_pending=1))
        return {
            "admin": await ts.create_key(acme, "admin"),
            "viewer": await ts.create_key(acme, "viewer"),
            "submitter": await ts.create_key(acme, "submitter"),
            "throttled": await ts.create_key(throttled, "submitter"),
            "full": await ts.create_key(full, "submitter"),
        }
    finally:
        await worker._pool.close()


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    keys = asyncio.run(_prepare(settings))
    port = _free_port()
    api = Background(api_service(settings, "127.0.0.1", port), "client-test-api")
    worker = Background(Worker(settings, REGISTRY, concurrency=10).run, "client-test-worker")
    out = Served(url=f"http://127.0.0.1:{port}", keys=keys, dsn=settings.database_url)
    try:
        deadline = time.monotonic() + 20
        while not _answers(f"{out.url}/healthz"):
            assert api.alive and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        yield out
    finally:
        worker.close()
        api.close()


# -- tasks --------------------------------------------------------------------------------------


def test_submit_wait_get_and_attempts(served: Served) -> None:
    with served.client() as client:
        task = echo.submit(client, Echo(message="hi"), priority="high")  # @task's typed helper
        assert task.status is TaskStatus.PENDING and task.priority == "high"
        assert task.payload == {"message": "hi"}
        assert task.idempotency_key is not None  # made by the client: retries cannot duplicate
        done = client.wait(task.id, timeout_s=20)
        assert done.status is TaskStatus.COMPLETED and done.done
        assert done.result == {"echo": "hi", "attempt": 1}
        assert client.get(str(task.id)) == done
        (attempt,) = client.attempts(task.id)
        assert attempt.attempt == 1 and attempt.outcome == "completed"


def test_submit_sends_every_option_and_honours_the_idempotency_key(served: Served) -> None:
    options: dict[str, Any] = {
        "queue": "mail", "priority": "low", "delay_s": 600, "timeout_s": 7.5,
        "max_attempts": 2, "idempotency_key": "order-42",
    }  # fmt: skip
    with served.client() as client:
        task = client.submit("examples.echo", {"message": "once"}, **options)
        assert (task.queue, task.priority, task.status) == ("mail", "low", TaskStatus.SCHEDULED)
        assert (task.timeout_s, task.max_attempts) == (7.5, 2)
        assert task.idempotency_key == "order-42"
        assert client.submit("examples.echo", {"message": "once"}, **options).id == task.id
        with pytest.raises(Conflict) as caught:
            client.submit("examples.echo", {"message": "other"}, **options)
    assert caught.value.code == "idempotency_conflict" and caught.value.status == 409
    assert caught.value.extra["task_id"] == str(task.id)
    assert served.count("SELECT count(*) FROM tasks") == 1


def test_submit_many_keys_each_task(served: Served) -> None:
    tasks = [
        Submission(type="examples.echo", payload=Echo(message="a"), delay_s=600),
        {"type": "examples.echo", "payload": {"message": "b"}, "delay_s": 600},
        Submission(type="examples.noop", idempotency_key="mine", delay_s=600),
    ]
    with served.client() as client:
        items = client.submit_many(tasks)
        assert [i.status for i in items] == [201, 201, 201] and all(i.created for i in items)
        assert [i.task.payload for i in items if i.task] == [{"message": "a"}, {"message": "b"}, {}]
        again = client.submit_many([tasks[2]])  # the same key: the same task
    assert again[0].status == 200 and again[0].task and again[0].task.id == items[2].task.id  # type: ignore[union-attr]
    assert served.count("SELECT count(*) FROM tasks") == 3


def test_list_walks_every_page(served: Served) -> None:
    with served.client() as client:
        ids = [client.submit("examples.noop", queue="later", delay_s=600).id for _ in range(7)]
        client.submit("examples.noop", queue="other", delay_s=600)
        seen = [t.id for t in client.list(queue="later", status="scheduled", page_size=2)]
        assert seen == ids[::-1]  # newest first, over four pages
        assert [t.id for t in client.list(status=TaskStatus.COMPLETED)] == []


def test_cancel_then_cancel_again_is_a_conflict(served: Served) -> None:
    with served.client() as client:
        task = client.submit("examples.noop", delay_s=600)
        assert client.cancel(task.id).status is TaskStatus.CANCELLED
        with pytest.raises(Conflict) as caught:
            client.cancel(task.id)
    assert caught.value.code == "invalid_state"


def test_dead_letters_retry_and_replay(served: Served) -> None:
    with served.client() as client:
        doomed = [client.submit("examples.fail", {"reason": f"no {i}"}) for i in range(3)]
        for t in doomed:
            assert client.wait(t.id, timeout_s=20).status is TaskStatus.FAILED
        dead = list(client.dead_letters(type="examples.fail", page_size=2))
        assert {t.id for t in dead} == {t.id for t in doomed}
        assert dead[0].last_error is not None
        assert client.retry(doomed[0].id).status is TaskStatus.PENDING
        with pytest.raises(Conflict) as caught:
            client.retry(client.submit("examples.noop", delay_s=600).id)  # not failed
        assert caught.value.code == "invalid_state"
        replayed = client.replay([doomed[1].id, doomed[2].id])
        assert replayed.replayed == 2 and {t.status for t in replayed.items} == {"pending"}


def test_queues_and_workers(served: Served) -> None:
    with served.client() as client:
        client.submit("examples.noop", queue="reports", delay_s=600)
        queues = {q.queue: q for q in client.queues()}
        assert queues["reports"].scheduled == 1
        assert set(queues["reports"].pending) == {"critical", "high", "normal", "low"}
        (worker,) = client.workers()
        assert worker.concurrency == 10 and not worker.degraded


def test_schedules_lifecycle(served: Served) -> None:
    template = TaskTemplate(type="examples.echo", payload={"message": "tick"}, queue="cron")
    with served.client() as client:
        made = client.create_schedule("hourly", "0 * * * *", template, timezone="Europe/Paris")
        assert made.task.type == "examples.echo" and made.task.queue == "cron"
        assert made.timezone == "Europe/Paris" and made.next_run_at is not None
        assert [s.id for s in client.schedules()] == [made.id]
        paused = client.pause_schedule(made.id)
        assert paused.paused and paused.next_run_at is None and paused.next_runs == []
        assert not client.resume_schedule(made.id).paused
        assert client.update_schedule(made.id, cron="*/5 * * * *").cron == "*/5 * * * *"
        assert client.get_schedule(made.id).cron == "*/5 * * * *"
        with pytest.raises(Conflict):
            client.create_schedule("hourly", "0 * * * *", template)
        client.delete_schedule(made.id)
        with pytest.raises(NotFound) as caught:
            client.get_schedule(made.id)
    assert caught.value.code == "schedule_not_found"


# -- errors -------------------------------------------------------------------------------------


def test_problems_become_the_named_exceptions(served: Served) -> None:
    with served.client() as client:
        with pytest.raises(NotFound) as missing:
            client.get(uuid.uuid4())
        assert (missing.value.code, missing.value.status) == ("task_not_found", 404)
        with pytest.raises(InvalidRequest) as unknown:
            client.submit("no.such.type", {})
        assert (unknown.value.code, unknown.value.status) == ("unknown_task_type", 422)
        with pytest.raises(InvalidRequest) as invalid:
            client.submit("examples.echo", {"message": 5})
        assert invalid.value.code == "invalid_payload" and invalid.value.errors
        with pytest.raises(WaitTimeout) as slow:
            client.wait(client.submit("examples.sleep", {"seconds": 1}).id, timeout_s=0.3)
        assert slow.value.status in {"pending", "processing"}
    with served.client("viewer") as viewer, pytest.raises(Forbidden):
        viewer.submit("examples.noop", {})
    with Client(served.url, "tsk_00000000_wrong") as stranger, pytest.raises(Unauthorized):
        stranger.queues()
    with served.client("full", retry=FAST) as full:
        full.submit("examples.noop", delay_s=600)
        with pytest.raises(QueueFull) as backlog:
            full.submit("examples.noop", delay_s=600)  # retried once, then raised
    assert backlog.value.retry_after_s == 1 and backlog.value.code == "queue_full"
    nowhere = Client(f"http://127.0.0.1:{_free_port()}", "k", retry=FAST)
    with nowhere, pytest.raises(TransportError, match="after 2 tries"):
        nowhere.queues()


# -- retries ------------------------------------------------------------------------------------


def test_a_low_rate_limit_delays_but_never_duplicates(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """More submits than the tenant's bucket holds, from four threads: every call succeeds
    after the 429s it meets, and exactly N tasks exist."""
    n = RATE_LIMIT + 12
    caplog.set_level(logging.INFO, logger="taskstream.client")
    client = served.client("throttled", retry=RetryPolicy(attempts=30))
    with client, ThreadPoolExecutor(4) as pool:
        tasks = list(pool.map(lambda i: client.submit("examples.noop", {"i": i}), range(n)))
    assert len({t.id for t in tasks}) == n
    retried = [r for r in caplog.records if "HTTP 429" in r.getMessage()]
    assert retried, "the rate limit was never met: the test proves nothing"
    assert served.count("SELECT count(*) FROM tasks") == n


class DroppingProxy:
    """Forwards connections to the API, but the next ``drops`` answers it reads from the API
    are not relayed: the client's connection is reset instead. The request took effect; its
    answer was lost."""

    def __init__(self, upstream_port: int, drops: int) -> None:
        self.port = _free_port()
        self.upstream_port = upstream_port
        self.drops = drops
        self.service = Background(self._serve, "dropping-proxy")

    async def _serve(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        async with server:
            await stop.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        forward = asyncio.create_task(_pump(reader, up_writer))
        while answer := await up_reader.read(65536):
            if self.drops > 0:
                self.drops -= 1
                writer.transport.abort()
                break
            writer.write(answer)
            await writer.drain()
        forward.cancel()
        up_writer.close()
        writer.close()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(65536):
        dst.write(data)
        await dst.drain()


def test_a_lost_answer_is_retried_with_the_same_key(served: Served) -> None:
    proxy = DroppingProxy(int(served.url.rsplit(":", 1)[1]), drops=1)
    try:
        with Client(f"http://127.0.0.1:{proxy.port}", served.keys["admin"]) as client:
            task = client.submit("examples.noop", delay_s=600)  # answered on the second try
            assert served.count("SELECT count(*) FROM tasks") == 1
            proxy.drops = 1
            with pytest.raises(TransportError):
                client.cancel(task.id)  # not idempotent: never sent twice
    finally:
        proxy.service.close()
    with served.client() as client:
        assert client.get(task.id).status is TaskStatus.CANCELLED  # the one copy took effect


# -- the async twin -----------------------------------------------------------------------------


async def test_the_async_client_does_the_same(served: Served) -> None:
    async with AsyncClient(served.url, served.keys["admin"]) as client:
        task = await echo.asubmit(client, Echo(message="async"))
        done = await client.wait(task.id, timeout_s=20)
        assert done.result == {"echo": "async", "attempt": 1}
        assert (await client.get(task.id)).status is TaskStatus.COMPLETED
        assert len(await client.attempts(task.id)) == 1
        later = [(await client.submit("examples.noop", delay_s=600)).id for _ in range(3)]
        items = await client.submit_many([{"type": "examples.noop", "delay_s": 600}] * 2)
        assert all(i.created for i in items)
        listed = [t.id async for t in client.list(status="scheduled", page_size=2)]
        assert listed[2:] == later[::-1] and len(listed) == 5
        assert (await client.cancel(later[0])).status is TaskStatus.CANCELLED
        failed = await client.submit("examples.fail", {})
        await client.wait(failed.id, timeout_s=20)
        assert [t.id async for t in client.dead_letters()] == [failed.id]
        assert (await client.retry(failed.id)).status is TaskStatus.PENDING
        assert (await client.replay(type="examples.fail")).replayed in {0, 1}
        assert {q.queue for q in await client.queues()} == {"default"}
        assert len(await client.workers()) == 1
        made = await client.create_schedule("a", "0 0 * * *", TaskTemplate(type="examples.noop"))
        assert (await client.pause_schedule(made.id)).paused
        assert not (await client.resume_schedule(made.id)).paused
        assert [s.name for s in await client.schedules()] == ["a"]
        await client.delete_schedule(made.id)
        with pytest.raises(NotFound):
            await client.get_schedule(made.id)
        with pytest.raises(Conflict):
            await client.cancel(task.id)
