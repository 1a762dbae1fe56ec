"""`--processes N` (worker and api): run N processes of a verb, restart any that dies, forward
SIGTERM/SIGINT, wait for all of them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType

RESTART_BACKOFF_S = 1.0


def supervise(count: int, argv: list[str], what: str = "worker") -> int:
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
    children.extend(subprocess.Popen(argv) for _ in range(count))  # noqa: S603 - our own argv
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
                children[i] = subprocess.Popen(argv)  # noqa: S603 - our own argv
    for child in children:
        child.wait()
    return 0
