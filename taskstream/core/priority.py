"""Which priority a worker reads first on each turn.

Strict priority would starve ``low`` under a steady stream of ``critical`` work, so turns are
weighted 8:4:2:1: in every cycle of 15 reads, critical is read first 8 times, high 4, normal 2 and
low once; the remaining priorities follow in strict order. A backlog of critical work therefore
delays low work but never stops it.
"""

from __future__ import annotations

from .models import Priority

WEIGHTS: dict[Priority, int] = {
    Priority.CRITICAL: 8,
    Priority.HIGH: 4,
    Priority.NORMAL: 2,
    Priority.LOW: 1,
}


def _cycle() -> tuple[Priority, ...]:
    # Smooth weighted round robin (as in nginx): spreads each priority's turns evenly.
    current = dict.fromkeys(WEIGHTS, 0)
    total = sum(WEIGHTS.values())
    order: list[Priority] = []
    for _ in range(total):
        for p, w in WEIGHTS.items():
            current[p] += w
        chosen = min(current, key=lambda p: (-current[p], p))
        current[chosen] -= total
        order.append(chosen)
    return tuple(order)


CYCLE = _cycle()


def read_order(turn: int) -> tuple[Priority, ...]:
    """Priorities in the order to read them on ``turn`` (any int; the cycle repeats)."""
    first = CYCLE[turn % len(CYCLE)]
    return (first, *(p for p in Priority if p is not first))
