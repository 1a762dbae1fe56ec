"""`/metrics` of the worker and the scheduler (``--metrics-port``), and of a supervisor with
``--processes N``: its children write their snapshots to a folder it gives them
(``TASKSTREAM_METRICS_DIR``) every second and when they stop, and its endpoint adds them up.
The HTTP server is prometheus-client's, in a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric

from .stats import Family, merge, metrics

DIR_ENV = "TASKSTREAM_METRICS_DIR"
WRITE_EVERY_S = 1.0


class _Collector:
    def __init__(self, families: Mapping[str, Family], read: Callable[[], Mapping[str, Any]]):
        self.families = families
        self.read = read

    def collect(self) -> Iterator[Metric]:
        yield from metrics(self.families, self.read())


def serve(port: int, families: Mapping[str, Family], read: Callable[[], Mapping[str, Any]],
          host: str = "0.0.0.0") -> Callable[[], None]:  # noqa: S104 - Prometheus scrapes from afar  # fmt: skip
    """Serve ``read()``'s snapshot on ``port``; returns the function that stops the server."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(families, read))
    server, _ = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


def read_folder(folder: Path) -> Mapping[str, Any]:
    """The sum of every snapshot in ``folder`` (a stopped child's last one included, so the
    supervisor's counters never go back)."""
    snapshots = []
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):  # being replaced right now: next scrape
            snapshots.append(json.loads(path.read_text()))
    return merge(snapshots)


def write_snapshot(folder: Path, snapshot: Mapping[str, Any]) -> None:
    """Replace this process's file at once (write, then rename), so a reader never sees half."""
    final = folder / f"{os.getpid()}.json"
    part = folder / f".{os.getpid()}.part"
    part.write_text(json.dumps(snapshot))
    part.replace(final)


async def export(
    port: int | None,
    families: Mapping[str, Family],
    snapshot: Callable[[], Mapping[str, Any]],
    stop: asyncio.Event,
) -> None:
    """Run beside a service until ``stop``: serve on ``port``, and/or write to the folder a
    supervisor named (both optional)."""
    folder = os.environ.get(DIR_ENV)
    close = serve(port, families, snapshot) if port else None
    try:
        while folder and not stop.is_set():
            write_snapshot(Path(folder), snapshot())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WRITE_EVERY_S)
        await stop.wait()
    finally:
        if folder:
            with contextlib.suppress(OSError):
                write_snapshot(Path(folder), snapshot())
        if close is not None:
            close()
