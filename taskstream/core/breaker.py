"""A circuit breaker: after a failure, calls are refused at once for a cool-down that doubles
with each further failure (up to a cap), so a dead dependency costs callers nothing."""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    def __init__(
        self,
        cooldown_s: float = 0.5,
        max_cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.clock = clock
        self.failures = 0
        self.open_until = 0.0

    @property
    def is_open(self) -> bool:
        """True while calls should be refused."""
        return self.clock() < self.open_until

    def failure(self) -> None:
        self.failures += 1
        wait = min(self.cooldown_s * 2 ** (self.failures - 1), self.max_cooldown_s)
        self.open_until = self.clock() + wait

    def success(self) -> None:
        self.failures = 0
        self.open_until = 0.0
