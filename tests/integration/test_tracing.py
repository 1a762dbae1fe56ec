"""Traces (issue 14): one trace from the HTTP request through the submit to each attempt, with
the SDK's in-memory exporter. Real API, worker, promoter, PostgreSQL and Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from taskstream.observability import tracing

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """One provider for the module (OpenTelemetry sets the global provider once a process)."""
    spans = InMemorySpanExporter()
    assert tracing.configure("taskstream-test", exporter=spans)
    tracer = tracing.TRACER
    tracing.TRACER = None  # on only inside the tests below
    spans.tracer = tracer  # type: ignore[attr-defined]
    return spans


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    exporter.clear()
    tracing.TRACER = exporter.tracer  # type: ignore[attr-defined]
    try:
        yield exporter
    finally:
        tracing.TRACER = None


def by_kind(spans: Any, kind: SpanKind) -> list[Any]:
    return [s for s in spans if s.kind == kind]


async def finished(api: Any, tenant: Any, task_id: str, until: Any) -> dict[str, Any]:
    async def done() -> bool:
        r = await api.get(f"/v1/tasks/{task_id}", headers=tenant.auth())
        return bool(r.json()["status"] == "completed")

    await until(done)
    return dict((await api.get(f"/v1/tasks/{task_id}", headers=tenant.auth())).json())


async def test_one_trace_from_request_to_handler(
    spans: InMemorySpanExporter, api: Any, tenants: Any, start_worker: Any, until: Any, pool: Any
) -> None:
    acme = tenants["acme"]
    await start_worker()
    r = await api.post("/v1/tasks", json={"type": "test.traced"},
                       headers={**acme.auth(), "traceparent": CALLER})  # fmt: skip
    assert r.status_code == 201
    task_id = r.json()["id"]
    await finished(api, acme, task_id, until)

    async def all_ended() -> bool:
        return any(s.name == "render" for s in spans.get_finished_spans())

    await until(all_ended)
    got = spans.get_finished_spans()
    (server,) = [s for s in by_kind(got, SpanKind.SERVER) if s.name == "POST /v1/tasks"]
    (producer,) = by_kind(got, SpanKind.PRODUCER)
    (consumer,) = by_kind(got, SpanKind.CONSUMER)
    (handler,) = [s for s in got if s.name == "render"]
    # The caller's trace continued through every span.
    for span in (server, producer, consumer, handler):
        assert f"{span.context.trace_id:032x}" == CALLER_TRACE, span.name
    assert server.attributes["http.route"] == "/v1/tasks"
    assert server.attributes["http.response.status_code"] == 201
    assert producer.parent.span_id == server.context.span_id
    assert producer.name == "send default"
    assert consumer.name == "process default"
    assert consumer.parent.span_id == producer.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.attributes["messaging.message.id"] == task_id
    assert consumer.attributes["taskstream.outcome"] == "completed"
    assert handler.parent.span_id == consumer.context.span_id
    # What the worker read: the producer's context, stored with the task.
    stored = await pool.fetchval("SELECT trace_context FROM tasks WHERE id = $1::uuid", task_id)
    assert stored == tracing.traceparent(producer.context)


async def test_each_attempt_is_a_span_linked_to_the_submit(
    spans: InMemorySpanExporter,
    api: Any,
    tenants: Any,
    start_worker: Any,
    promoter: Any,
    until: Any,
) -> None:
    acme = tenants["acme"]
    await start_worker()
    r = await api.post("/v1/tasks", json={"type": "examples.flaky", "payload": {"fail_times": 2}},
                       headers=acme.auth())  # fmt: skip
    task = await finished(api, acme, r.json()["id"], until)
    assert task["attempts"] == 3
    got = spans.get_finished_spans()
    (producer,) = by_kind(got, SpanKind.PRODUCER)
    attempts = sorted(
        by_kind(got, SpanKind.CONSUMER), key=lambda s: s.attributes["taskstream.attempt"]
    )
    assert [s.attributes["taskstream.attempt"] for s in attempts] == [1, 2, 3]
    for span in attempts:  # siblings under the submit, each linked to it
        assert span.parent.span_id == producer.context.span_id
        assert span.links[0].context.span_id == producer.context.span_id
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET
    ]  # fmt: skip
    assert attempts[0].attributes["taskstream.outcome"] == "retry"


async def test_tracing_off_stores_no_context(api: Any, tenants: Any, pool: Any) -> None:
    assert tracing.TRACER is None
    r = await api.post("/v1/tasks", json={"type": "examples.noop"}, headers=tenants["acme"].auth())
    stored = await pool.fetchval(
        "SELECT trace_context FROM tasks WHERE id = $1::uuid", r.json()["id"]
    )
    assert stored is None


def test_nothing_of_opentelemetry_is_imported_without_an_exporter() -> None:
    """Zero cost without the extra's configuration: the API, worker, scheduler and CLI modules
    load, and configure() declines, without importing OpenTelemetry."""
    code = (
        "import sys\n"
        "import taskstream.cli, taskstream.api.app, taskstream.worker.runner, taskstream.services\n"
        "from taskstream.observability import tracing\n"
        "assert tracing.configure('x', env={}) is False and tracing.TRACER is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
