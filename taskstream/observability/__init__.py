"""Logging (structlog), and later metrics and tracing."""
