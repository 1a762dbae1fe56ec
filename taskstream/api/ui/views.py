"""What the dashboard's templates show, shaped from store rows, and the filters they format
values with. Pure: no I/O, ``now`` is an argument where time matters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from ...core.models import Priority, TaskStatus
from ...store.dashboard import QueueData

PRIORITIES = [p.label for p in Priority]
STATUSES = [s.value for s in TaskStatus]
MAX_SHOWN_BYTES = 64 * 1024  # a payload or result longer than this is cut on the task page


class QueueRow(msgspec.Struct, kw_only=True):
    """One line of the queues page."""

    name: str
    pending: dict[str, int]  # by priority name
    scheduled: int = 0  # delayed, or waiting for a retry
    processing: int = 0
    dead: int = 0
    oldest_pending_s: float | None = None
    completed_1h: int = 0
    failed_1h: int = 0

    @property
    def waiting(self) -> int:
        return sum(self.pending.values())

    @property
    def failure_rate(self) -> float | None:
        """Failed / finished over the last hour; None when nothing finished."""
        finished = self.completed_1h + self.failed_1h
        return self.failed_1h / finished if finished else None


def queue_rows(data: QueueData) -> list[QueueRow]:
    rows: dict[str, QueueRow] = {}

    def row(name: str) -> QueueRow:
        return rows.setdefault(name, QueueRow(name=name, pending=dict.fromkeys(PRIORITIES, 0)))

    for name in data.names:
        row(name)
    for d in data.depths:
        q = row(d.queue)
        if d.status == "pending":
            q.pending[Priority(d.priority).label] += d.n
            q.oldest_pending_s = max(q.oldest_pending_s or 0.0, d.oldest_s)
        elif d.status == "failed":
            q.dead += d.n
        elif d.status == "scheduled":
            q.scheduled += d.n
        else:
            q.processing += d.n
    for f in data.last_hour:
        q = row(f.queue)
        q.completed_1h, q.failed_1h = f.completed, f.failed
    return sorted(rows.values(), key=lambda q: q.name)


def schedule_task(template: str) -> dict[str, Any]:
    """The stored task template of a schedule (JSON text), for its type and queue."""
    try:
        value = msgspec.json.decode(template)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# -- template filters -----------------------------------------------------------------------


def age(seconds: float | None) -> str:
    """``42 s``, ``5 min``, ``3 h 20 min``, ``2 d``; an em dash for nothing."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86_400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{s // 86_400} d"


def since(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``moment`` was (or how far ahead, with "in")."""
    if moment is None:
        return "—"
    delta = ((now or datetime.now(UTC)) - moment).total_seconds()
    return f"{age(delta)} ago" if delta >= 0 else f"in {age(-delta)}"


def when(moment: datetime | None) -> str:
    """A time in UTC, to the second."""
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 60 else age(seconds)


def percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction * 100:.1f} %"


def pretty(raw: msgspec.Raw | bytes | str | None) -> str:
    """JSON text indented for reading; cut past :data:`MAX_SHOWN_BYTES`."""
    if raw is None:
        return "null"
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    try:
        text = msgspec.json.format(data, indent=2).decode()
    except msgspec.DecodeError:
        text = data.decode("utf-8", "replace")
    if len(text) > MAX_SHOWN_BYTES:
        return text[:MAX_SHOWN_BYTES] + f"\n… cut: {len(text):,} characters in all"
    return text


FILTERS = {
    "age": age,
    "since": since,
    "when": when,
    "duration": duration,
    "percent": percent,
    "pretty": pretty,
}
