"""Which exporter the standard OTEL_* variables ask for (observability/tracing.py)."""

from __future__ import annotations

import pytest

from taskstream.observability.tracing import exporter_name


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_TRACES_EXPORTER": " "}, None),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "OTLP"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, None),
    ],
)
def test_exporter_from_the_environment(env: dict[str, str], expected: str | None) -> None:
    assert exporter_name(env) == expected


def test_an_unknown_exporter_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="zipkin"):
        exporter_name({"OTEL_TRACES_EXPORTER": "zipkin"})
