"""`--processes N` (worker and api): run N processes of a verb, restart any that dies, forward
SIGTERM/SIGINT, wait for all of them. With a metrics port, the children write their metrics to
a folder of the supervisor's and its one endpoint serves their sum (observability/exporter.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

RESTART_BACKOFF_S = 1.0


def supervise(
    count: int, argv: list[str], what: str = "worker", metrics_port: int | None = None
) -> int:
    with tempfile.TemporaryDirectory(prefix="taskstream-metrics-") as folder:
        env = None
        stop_serving = None
        if what == "api":  # its counters live in files there, summed by whichever answers
            from .observability.metrics import MULTIPROC_ENV

            env = {**os.environ, MULTIPROC_ENV: folder}
        elif metrics_port:
            from .observability.exporter import DIR_ENV, read_folder, serve
            from .observability.metrics import WORKER

            env = {**os.environ, DIR_ENV: folder}
            stop_serving = serve(metrics_port, WORKER, lambda: read_folder(Path(folder)))
        try:
            return _supervise(count, argv, what, env)
        finally:
            if stop_serving is not None:
                stop_serving()


def _supervise(count: int, argv: list[str], what: str, env: dict[str, str] | None) -> int:
    stopping = False
    children: list[subprocess.Popen[bytes]] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children.extend(subprocess.Popen(argv, env=env) for _ in range(count))  # noqa: S603 - ours
    print(f"supervising {count} {what} processes", file=sys.stderr, flush=True)
    while not stopping:
        time.sleep(0.2)
        for i, child in enumerate(children):
            if child.poll() is not None and not stopping:
                print(
                    f"{what} {child.pid} exited ({child.returncode}); restarting",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(RESTART_BACKOFF_S)
                children[i] = subprocess.Popen(argv, env=env)  # noqa: S603 - our own argv
    for child in children:
        child.wait()
    return 0
