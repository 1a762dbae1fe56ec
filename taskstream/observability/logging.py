"""Structured logs: JSON lines by default, one configuration for every process."""

from __future__ import annotations

import logging
import sys

import structlog

# Whether debug lines are written: a loop that would log each task asks this first.
DEBUG = False


def configure(fmt: str = "json", level: str = "info") -> None:
    global DEBUG
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    DEBUG = numeric <= logging.DEBUG
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
    # asyncpg logs a full traceback for every failed reconnect of its pool during an outage;
    # our own "unavailable" warnings already say it, once per turn and without the noise.
    logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
