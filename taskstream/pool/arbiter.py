"""The supervisor's loop (gunicorn's arbiter, in small): start the children, reap them, read
their status files, and every tick bring the pool to the size it should have.

- A child that exits on its own is restarted after a backoff (pool/policy.restart_delay_s).
- A child whose status stops changing for ``child_timeout_s`` (its event loop is blocked) is
  killed (SIGKILL: it cannot run a SIGTERM handler) and replaced at once; its tasks come back
  when their leases run out, through the reclaim pass of the other workers.
- A child that retires (past its task or memory limit) is replaced as soon as it says so, while
  it drains.
- SIGTTIN / SIGTTOU grow / shrink the pool by one; with ``--autoscale`` the pool also follows
  the backlog (pool/policy.decide). Shrinking sends SIGTERM to one child: it stops reading,
  finishes what runs within its grace and exits.
- SIGTERM / SIGINT stop every child the same way and wait for them.

Every change is logged as one structured line (``pool grew``, ``pool shrank``, ``child
replaced``, ``child killed``, ``child exited``)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import msgspec
import structlog

from . import status as status_files
from .policy import (
    CHILD_TIMEOUT_S,
    Autoscale,
    Bounds,
    Limits,
    Report,
    Trend,
    decide,
    load_of,
    pick_to_stop,
    resize,
    restart_delay_s,
    silent_too_long,
)
from .status import ChildStatus

log = structlog.get_logger("taskstream.pool")
TICK_S = 0.2


class PoolOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a worker pool behaves beyond a fixed size (the API's pool uses the defaults)."""

    slots_per_child: int = 1
    """``--concurrency`` of each child."""
    autoscale: Autoscale | None = None
    """``--autoscale MIN,MAX`` and its windows; None: the size changes only by signal."""
    child_timeout_s: float | None = CHILD_TIMEOUT_S
    """A child silent this long is killed; None: children do not report (the API's)."""
    limits: Limits = Limits()
    """``--max-tasks-per-child``, ``--max-memory-mb``."""


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    spawned_s: float
    leaving: str | None = None  # why it goes: shrink, stop, hung, max_tasks, max_memory
    status: ChildStatus | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Arbiter:
    argv: list[str]
    env: dict[str, str]
    size: int
    options: PoolOptions
    what: str = "worker"
    folder: Path | None = None  # the children's status files (None: they write none)
    clock: Callable[[], float] = time.monotonic
    on_gone: Callable[[int], None] | None = None  # told each reaped child's pid
    children: list[Child] = field(default_factory=list)
    stopping: bool = False
    _delta: int = 0  # SIGTTIN/SIGTTOU not yet applied
    _trend: Trend = field(default_factory=Trend)
    _restart_at: float = 0.0
    _restart_delay_s: float = 0.0

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT, then stop the children and wait for them."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGTTIN, self._on_resize)
        signal.signal(signal.SIGTTOU, self._on_resize)
        bounds = self.options.autoscale.bounds if self.options.autoscale else None
        self.size = resize(self.size, 0, bounds)
        log.info("supervising", what=self.what, size=self.size, bounds=_text(bounds))
        while not self.stopping:
            self.tick(self.clock())
            time.sleep(TICK_S)
        for child in self._active():
            self._leave(child, "stop", signal.SIGTERM)
        while self.children:
            self._reap(self.clock())
            self._watch(self.clock())
            time.sleep(TICK_S)
        return 0

    def _on_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def _on_resize(self, signum: int, _frame: FrameType | None) -> None:
        self._delta += 1 if signum == signal.SIGTTIN else -1

    def tick(self, now: float) -> None:
        """One pass: apply signals, reap, watch the reports, autoscale, start or stop."""
        if self._delta:
            self._resize_by_signal()
        self._reap(now)
        self._watch(now)
        if self.options.autoscale is not None:
            self._autoscale(now, self.options.autoscale)
        self._reconcile(now)

    # -- the steps ---------------------------------------------------------------------------

    def _resize_by_signal(self) -> None:
        delta, self._delta = self._delta, 0
        bounds = self.options.autoscale.bounds if self.options.autoscale else None
        self._set_size(resize(self.size, delta, bounds), "signal")
        self._trend = Trend()  # an operator's resize holds for a whole window at least

    def _reap(self, now: float) -> None:
        for child in [c for c in self.children if c.proc.poll() is not None]:
            self.children.remove(child)
            last = self._last_status(child)
            if self.folder is not None:
                status_files.remove(self.folder, child.pid)
            if self.on_gone is not None:
                self.on_gone(child.pid)
            code = child.proc.returncode
            if child.leaving is None and last is not None and last.retiring:
                child.status, child.leaving = last, last.retiring  # gone before we read it
                self._replacing(child, last.retiring)
            if child.leaving is not None:
                log.info("child gone", pid=child.pid, reason=child.leaving, returncode=code)
                continue
            lived_s = now - child.spawned_s
            self._restart_delay_s = restart_delay_s(lived_s, self._restart_delay_s)
            self._restart_at = now + self._restart_delay_s
            log.warning(
                "child exited", what=self.what, pid=child.pid, returncode=code,
                lived_s=round(lived_s, 1), restart_in_s=self._restart_delay_s,
            )  # fmt: skip

    def _last_status(self, child: Child) -> ChildStatus | None:
        if self.folder is None:
            return None
        return status_files.read(self.folder, child.pid) or child.status

    def _watch(self, now: float) -> None:
        """Read every child's status: kill the silent ones, replace the retiring ones."""
        timeout_s = self.options.child_timeout_s
        if self.folder is None or timeout_s is None:
            return
        for child in self.children:
            child.status = status_files.read(self.folder, child.pid) or child.status
            beat_s = child.status.beat_s if child.status else None
            if child.leaving != "hung" and silent_too_long(now, beat_s, child.spawned_s, timeout_s):
                silent_s = now - (beat_s if beat_s is not None else child.spawned_s)
                log.warning(
                    "child killed", reason="hung", pid=child.pid, silent_s=round(silent_s, 1),
                    timeout_s=timeout_s,
                )  # fmt: skip
                if child.leaving is None:
                    self._replacing(child, "hung")
                child.leaving = "hung"
                child.proc.kill()
            elif child.leaving is None and child.status and child.status.retiring:
                child.leaving = child.status.retiring
                self._replacing(child, child.status.retiring)

    def _replacing(self, child: Child, reason: str) -> None:
        status = child.status
        log.info(
            "child replaced", reason=reason, pid=child.pid,
            tasks_done=status.done if status else None,
            rss_bytes=status.rss_bytes if status else None,
        )  # fmt: skip

    def _autoscale(self, now: float, policy: Autoscale) -> None:
        active = self._active()
        reports = [
            Report(c.status.slots, c.status.busy, c.status.waiting) for c in active if c.status
        ]
        starting = sum(1 for c in active if c.status is None)
        load = load_of(reports, starting, self.options.slots_per_child)
        size, self._trend = decide(now, load, self.size, policy, self._trend)
        if size != self.size:
            reason = "backlog" if size > self.size else "idle"
            figures = (
                {"waiting": load.waiting, "busy": load.busy, "free": load.free} if load else {}
            )
            self._set_size(size, reason, **figures)

    def _set_size(self, size: int, reason: str, **figures: int | None) -> None:
        if size == self.size:
            log.info("pool size unchanged", size=size, reason=reason, **figures)
            return
        event = "pool grew" if size > self.size else "pool shrank"
        log.info(event, size=size, was=self.size, reason=reason, **figures)
        self.size = size

    def _reconcile(self, now: float) -> None:
        """Start children while fewer than the size run (after a crash, once the backoff has
        passed); ask the least busy to leave while more do."""
        active = self._active()
        while len(active) > self.size:
            pid = pick_to_stop(
                [(c.pid, c.status.busy if c.status else None, c.spawned_s) for c in active]
            )
            child = next(c for c in active if c.pid == pid)
            self._leave(child, "shrink", signal.SIGTERM)
            active.remove(child)
        if len(active) < self.size and now >= self._restart_at:
            for _ in range(self.size - len(active)):
                self._spawn(now)

    def _spawn(self, now: float) -> None:
        proc = subprocess.Popen(self.argv, env=self.env)  # noqa: S603 - our own argv
        self.children.append(Child(proc, now))
        log.info("child started", what=self.what, pid=proc.pid, size=self.size)

    def _leave(self, child: Child, reason: str, sig: signal.Signals) -> None:
        child.leaving = reason
        if child.proc.poll() is None:
            child.proc.send_signal(sig)
        if reason == "shrink":
            log.info("child stopping", reason=reason, pid=child.pid)

    def _active(self) -> list[Child]:
        return [c for c in self.children if c.leaving is None]


def _text(bounds: Bounds | None) -> str | None:
    return None if bounds is None else f"{bounds.low},{bounds.high}"
