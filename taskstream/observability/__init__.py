"""Logs (structlog, correlation ids), metrics (Prometheus), traces (OpenTelemetry, optional)."""
