"""What a pooled worker tells its supervisor: one small JSON file per child (``<pid>.json``) in
a folder the supervisor owns and names in ``TASKSTREAM_POOL_DIR``, replaced from the child's
event loop every second (worker/member.py). A file that stops changing means the loop stopped
turning; pool/arbiter.py then kills the child.

Times are ``time.monotonic()``: one clock for every process of the host (CLOCK_MONOTONIC on
Linux), and a wall-clock jump cannot make a healthy child look silent."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import msgspec

from .policy import Limits

DIR_ENV = "TASKSTREAM_POOL_DIR"
MAX_TASKS_ENV = "TASKSTREAM_POOL_MAX_TASKS"
MAX_MEMORY_ENV = "TASKSTREAM_POOL_MAX_MEMORY_MB"


class ChildStatus(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    beat_s: float
    """``time.monotonic()`` when written."""
    slots: int
    busy: int
    done: int
    """Attempts finished since the child started."""
    rss_bytes: int | None
    waiting: int | None
    """Entries not yet delivered in the streams the child serves (None: unknown)."""
    retiring: str | None = None
    """Why the child is draining to be replaced (``max_tasks``, ``max_memory``), if it is."""


_decode = msgspec.json.Decoder(ChildStatus).decode


def write(folder: Path, status: ChildStatus) -> None:
    """Replace the child's file at once (write, then rename): a reader never sees half."""
    part = folder / f".{status.pid}.part"
    part.write_bytes(msgspec.json.encode(status))
    part.replace(folder / f"{status.pid}.json")


def read(folder: Path, pid: int) -> ChildStatus | None:
    """The child's last status, or None before its first (or if unreadable)."""
    try:
        return _decode((folder / f"{pid}.json").read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


def remove(folder: Path, pid: int) -> None:
    """Forget a reaped child (a later process may get its pid)."""
    for name in (f"{pid}.json", f".{pid}.part"):
        with contextlib.suppress(OSError):
            (folder / name).unlink()


def limits_env(limits: Limits) -> dict[str, str]:
    """The limits as the child reads them (its command line is the plain worker's)."""
    env = {}
    if limits.max_tasks is not None:
        env[MAX_TASKS_ENV] = str(limits.max_tasks)
    if limits.max_memory_mb is not None:
        env[MAX_MEMORY_ENV] = str(limits.max_memory_mb)
    return env


def limits_from_env() -> Limits:
    tasks, memory = os.environ.get(MAX_TASKS_ENV), os.environ.get(MAX_MEMORY_ENV)
    return Limits(
        max_tasks=int(tasks) if tasks else None, max_memory_mb=int(memory) if memory else None
    )


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux); None where /proc is not there."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None
