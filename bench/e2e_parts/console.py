"""What the benchmark tells the person running it: progress on stderr, and why it stopped."""

from __future__ import annotations

import sys
import time


class BenchError(Exception):
    """The benchmark cannot go on; the message says why (and where the logs are)."""


def say(line: str) -> None:
    print(f"[bench] {line}", file=sys.stderr, flush=True)


class Progress:
    """At most one status line a second: long steps show life without flooding the terminal."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        return True

    def maybe(self, line: str) -> None:
        if self.due():
            say(line)
