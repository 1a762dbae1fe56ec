"""OpenTelemetry traces, with the ``otel`` extra: one trace from the HTTP request through the
submit to every attempt's execution.

Spans (names and attributes after OpenTelemetry's HTTP and messaging conventions):

* ``POST /v1/tasks`` (server): every API request, continuing a caller's ``traceparent``;
* ``send <queue>`` (producer): a submit (one per batch, one per cron fire). Its W3C trace
  context is stored with each task it creates (``tasks.trace_context``);
* ``process <queue>`` (consumer): each attempt, a child of the stored context and linked to
  it, so the retries of a task are siblings in its trace, each linked to the submit; the
  handler's own spans nest inside.

Configured by the standard variables: ``OTEL_TRACES_EXPORTER`` (``console`` or ``otlp``; unset
or ``none``: no tracing), ``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_*``. Without the extra or
without an exporter nothing of OpenTelemetry is imported and :data:`TRACER` stays ``None``:
each call site costs one comparison (or a shared no-op context manager).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import structlog

log = structlog.get_logger("taskstream.tracing")
# The process's tracer once configure() found an exporter; None: tracing is off.
TRACER: Any = None
_NOTHING = contextlib.nullcontext()
SYSTEM = "taskstream"


def exporter_name(env: Mapping[str, str]) -> str | None:
    """The exporter ``OTEL_TRACES_EXPORTER`` asks for, or None for no tracing."""
    name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not name or name == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if name not in ("console", "otlp"):
        raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: taskstream knows console and otlp")
    return name


def configure(service: str, *, exporter: Any = None, env: Mapping[str, str] = os.environ) -> bool:
    """Start tracing for this process (``service``: the default ``service.name``). ``exporter``
    (tests: the SDK's in-memory exporter) overrides ``OTEL_TRACES_EXPORTER``. True when on."""
    global TRACER
    name = None if exporter is not None else exporter_name(env)
    if exporter is None and name is None:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace import export as sdk_export
    except ImportError:
        log.warning("OTEL_TRACES_EXPORTER is set but the otel extra is not installed: no traces")
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service})
    )
    if exporter is not None:
        provider.add_span_processor(sdk_export.SimpleSpanProcessor(exporter))
    elif name == "console":
        provider.add_span_processor(
            sdk_export.SimpleSpanProcessor(sdk_export.ConsoleSpanExporter())
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(sdk_export.BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    TRACER = provider.get_tracer("taskstream")
    return True


def shutdown() -> None:
    """Flush and stop (a process's exit); tests turn tracing off with it."""
    global TRACER
    if TRACER is not None:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()
        TRACER = None


def _parent(headers: Any) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(headers)


def request_span(scope: Any) -> Any:
    """A server span for an ASGI request (the caller's ``traceparent`` continued); the caller
    names it by route with :func:`end_request` once the route is known."""
    from opentelemetry.trace import SpanKind

    carrier = {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in scope["headers"]
        if k in (b"traceparent", b"tracestate")
    }
    return TRACER.start_as_current_span(
        scope["method"],
        context=_parent(carrier) if carrier else None,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
    )


def end_request(span: Any, route: str, status: int) -> None:
    from opentelemetry.trace import StatusCode

    span.update_name(f"{span.name} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(StatusCode.ERROR)


@contextlib.contextmanager
def _send(queue: str, count: int, tasks_type: str | None) -> Iterator[str]:
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.destination.name": queue,
        "messaging.batch.message_count": count,
    }
    if tasks_type is not None:
        attributes["taskstream.task.type"] = tasks_type
    with TRACER.start_as_current_span(
        f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield traceparent(span.get_span_context())


def send(queue: str, count: int = 1, type_: str | None = None) -> Any:
    """A producer span around a submit; yields the W3C ``traceparent`` to store with the tasks
    (None when tracing is off)."""
    if TRACER is None:
        return _NOTHING
    return _send(queue, count, type_)


def traceparent(ctx: Any) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


@contextlib.contextmanager
def _process(task: Any) -> Iterator[Any]:
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind

    parent = _parent({"traceparent": task.trace_context}) if task.trace_context else None
    sent = trace.get_current_span(parent).get_span_context() if parent is not None else None
    links = [Link(sent)] if sent is not None and sent.is_valid else None
    with TRACER.start_as_current_span(
        f"process {task.queue}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": task.queue,
            "messaging.message.id": str(task.id),
            "taskstream.task.type": task.type,
            "taskstream.attempt": task.attempt,
        },
    ) as span:
        yield span


def process(task: Any) -> Any:
    """A consumer span around one attempt of ``task`` (a ClaimedTask); yields the span (None
    when tracing is off) for :func:`ended`."""
    if TRACER is None:
        return _NOTHING
    return _process(task)


def ended(span: Any, outcome: str, error: str | None) -> None:
    """Record how an attempt ended on its span."""
    if span is None:
        return
    from opentelemetry.trace import StatusCode

    span.set_attribute("taskstream.outcome", outcome)
    if error is not None:
        span.set_status(StatusCode.ERROR, error[:200])
