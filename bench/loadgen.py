"""HTTP load generator for single-task submits, run as its own process by the benchmark.

    LOADGEN_KEY=tsk_... python bench/loadgen.py --url http://127.0.0.1:8000 --mode closed \
        --connections 32 --duration 10
    LOADGEN_KEY=tsk_... python bench/loadgen.py --url http://127.0.0.1:8000 --mode open \
        --rate 1000 --duration 10

It sends the same request (default ``POST /v1/tasks`` with an ``examples.noop`` task) over
keep-alive HTTP/1.1 connections and prints one JSON object on stdout; progress goes to stderr.

* ``closed``: K connections, each sends its next request as soon as the last response is in.
  The request rate it reaches is the server's capacity at that concurrency.
* ``open``: request i is due at ``t0 + i / rate`` whatever happened before, and its latency is
  measured from that due time, not from when it went out. A stalled server therefore shows up
  as latency (no coordinated omission), and a request that had to wait for a free connection
  is charged for the wait. How late sends went out is reported separately: if that grows, the
  generator itself is the limit.

Why a process of its own, and why it is written this way: the benchmark's own event loop also
polls PostgreSQL and prints progress, and on a 2-core machine the load generator must not share
a core with it or cost more than the server it measures. So this file imports nothing from
taskstream or the benchmark (stdlib, plus uvloop when installed), prebuilds the request bytes
once, and drives each connection from ``asyncio.Protocol`` callbacks: no task, future or stream
buffer per request, which keeps the cost in the tens of microseconds per request. Every
response status other than the expected one (201) is an error, counted by status; ``0`` is a
connection that failed or closed with a request outstanding.

The API key comes from the environment (``LOADGEN_KEY``), not the command line, where any
user of the machine could read it in ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import sys
import time
from array import array
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

DEFAULT_BODY = '{"type": "examples.noop", "payload": {}}'
MAX_IDLE_S = 2.0  # below uvicorn's 5 s keep-alive timeout: never reuse a socket it is closing
DRAIN_S = 30.0  # after the last send, how long to wait for outstanding responses
CONNECT_ERROR = 0  # the "status" of a request that got no response


def build_request(method: str, url: str, path: str, key: str, body: bytes) -> bytes:
    """The whole request, once: every send writes these same bytes."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port or 80}"
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request outstanding.

    Responses are parsed in place from a byte buffer: the status from the status line, the
    body's length from Content-Length (taskstream always sends it). The body is kept only when
    the status is unexpected, as an example for the report."""

    def __init__(self, gen: LoadGen) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.due = 0.0  # when the outstanding request was due (open) or sent (closed)
        self.busy = False
        self.idle_since = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.gen.live += 1
        self.gen.max_live = max(self.gen.max_live, self.gen.live)

    def send(self, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.busy = True
        self.transport.write(self.gen.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.gen.fail(self, "response without content-length")
            return
        stop = head.find(b"\r\n", at + 2)
        try:
            length = int(head[at + 17 : stop if stop > 0 else len(head)])
            status = int(head[9:12])
        except ValueError:
            self.gen.fail(self, f"unparsable response head: {head[:100]!r}")
            return
        total = end + 4 + length
        if len(buf) < total:
            return
        body = bytes(buf[end + 4 : total]) if status != self.gen.expect else b""
        del buf[:total]
        self.busy = False
        keep = b"\r\nconnection: close" not in head
        if not keep:
            self.close()
        self.gen.on_response(self, status, body, keep)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gen.live -= 1
        if self.busy:
            self.busy = False
            self.gen.on_lost(self)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LoadGen:
    """Connections, the schedule and the records of one measurement."""

    def __init__(self, args: argparse.Namespace, key: str) -> None:
        parts = urlsplit(args.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.request = build_request(args.method, args.url, args.path, key, args.body.encode())
        self.expect = args.expect
        self.mode: str = args.mode
        self.loop = asyncio.get_running_loop()
        self.latencies = array("d")  # seconds, measured requests that got the expected status
        # Open loop: how late the schedule handed each request out (the generator's own
        # health), and how late it was written (that plus any wait for a free connection).
        self.late = array("d")
        self.send_delay = array("d")
        self.errors: collections.Counter[int] = collections.Counter()
        self.error_samples: dict[int, str] = {}
        self.measure_from = math.inf  # requests due in [measure_from, measure_to) are recorded
        self.measure_to = math.inf
        self.running = True
        self.answered = 0
        self.opened = 0
        self.connecting = 0
        self.live = 0  # connected and not closed yet
        self.max_live = 0
        self.max_connections: int = args.max_connections
        self.idle: list[Conn] = []  # open loop: free connections, most recently used last
        self.waiting: collections.deque[float] = collections.deque()  # due times with no conn
        self.max_waiting = 0
        self.outstanding = 0  # requests sent or due and not answered yet
        self.cpu_from = time.process_time()  # CPU clock when the measured window opened

    def mark_window(self, start: float, seconds: float) -> None:
        """Requests due in [start, start + seconds) are recorded; CPU is counted from start."""
        self.measure_from, self.measure_to = start, start + seconds

        def mark_cpu() -> None:
            self.cpu_from = time.process_time()

        self.loop.call_later(max(0.0, start - time.perf_counter()), mark_cpu)

    def in_window(self, due: float) -> bool:
        return self.measure_from <= due < self.measure_to

    # -- connections ------------------------------------------------------------------------

    async def connect(self) -> Conn:
        self.opened += 1
        self.connecting += 1
        try:
            _, conn = await self.loop.create_connection(lambda: Conn(self), self.host, self.port)
        finally:
            self.connecting -= 1
        return conn

    def _open_for_waiting(self) -> None:
        """Open loop: a due request found no free connection; open one in the background."""
        task = self.loop.create_task(self.connect())
        task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task[Conn]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self.next_request(task.result())
            return
        # The request it was opened for gets no response: counted, never silently dropped.
        due = time.perf_counter()
        if self.waiting:
            due = self.waiting.popleft()
            self.outstanding -= 1
        if self.in_window(due):
            self._record_error(CONNECT_ERROR, f"connect failed: {exc!r}")

    # -- requests -------------------------------------------------------------------------------

    def dispatch(self, due: float) -> None:
        """Open loop: request due now (or earlier) goes out on a free connection, or waits."""
        self.outstanding += 1
        now = time.perf_counter()
        if self.in_window(due):
            self.late.append(now - due)
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < MAX_IDLE_S:
                self._send(conn, due, now)
                return
            conn.close()
        self.waiting.append(due)
        self.max_waiting = max(self.max_waiting, len(self.waiting))
        if self.live + self.connecting < self.max_connections:
            self._open_for_waiting()

    def _send(self, conn: Conn, due: float, now: float) -> None:
        if self.mode == "open" and self.in_window(due):
            self.send_delay.append(now - due)
        conn.send(due)

    def prune_idle(self) -> None:
        """Close connections idle too long (the least recently used sit at the bottom), so a
        burst does not find sockets the server is about to close."""
        now = time.perf_counter()
        while self.idle and now - self.idle[0].idle_since > MAX_IDLE_S:
            self.idle.pop(0).close()

    def next_request(self, conn: Conn) -> None:
        """A connection became free: the next request for it, or it rests."""
        if conn.closed:
            return
        now = time.perf_counter()
        if self.mode == "closed":
            if self.running:
                self.outstanding += 1
                self._send(conn, now, now)
            return
        if self.waiting:
            self._send(conn, self.waiting.popleft(), now)
            return
        conn.idle_since = now
        self.idle.append(conn)

    def on_response(self, conn: Conn, status: int, body: bytes, keep: bool) -> None:
        now = time.perf_counter()
        self.outstanding -= 1
        self.answered += 1
        due = conn.due
        if status == self.expect:
            if self.in_window(due):
                self.latencies.append(now - due)
        elif self.in_window(due):
            self._record_error(status, body.decode("utf-8", "replace")[:300])
        if keep:
            self.next_request(conn)
        else:
            self._replace(conn)

    def on_lost(self, conn: Conn) -> None:
        self.outstanding -= 1
        if self.in_window(conn.due):
            self._record_error(CONNECT_ERROR, "connection closed with a request outstanding")
        self._replace(conn)

    def fail(self, conn: Conn, why: str) -> None:
        """A response this client cannot parse: counted as an error, the connection dropped."""
        conn.busy = False
        self.outstanding -= 1
        if self.in_window(conn.due):
            self._record_error(CONNECT_ERROR, why)
        conn.close()
        self._replace(conn)

    def _replace(self, conn: Conn) -> None:
        """A connection closed: closed loop keeps K connections; open loop opens on demand."""
        if self.mode == "closed" and self.running:
            task = self.loop.create_task(self.connect())
            task.add_done_callback(self._opened)
        elif self.mode == "open" and self.waiting:
            self._open_for_waiting()

    def _record_error(self, status: int, sample: str) -> None:
        self.errors[status] += 1
        self.error_samples.setdefault(status, sample)


def quantile(ordered: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's ``percentile_cont``)."""
    if not ordered:
        return None
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_ms(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    return {
        "p50": ms(quantile(ordered, 0.5)),
        "p95": ms(quantile(ordered, 0.95)),
        "p99": ms(quantile(ordered, 0.99)),
        "p999": ms(quantile(ordered, 0.999)),
        "max": ms(ordered[-1] if ordered else None),
        "mean": ms(sum(ordered) / len(ordered) if ordered else None),
    }


class Ticker:
    """A progress line on stderr every few seconds, for the parent to pass on."""

    def __init__(self, gen: LoadGen, interval_s: float = 2.0) -> None:
        self.gen = gen
        self.interval_s = interval_s
        self.last_t = time.perf_counter()
        self.last_answered = 0

    def maybe(self, phase: str) -> None:
        now = time.perf_counter()
        if now - self.last_t < self.interval_s:
            return
        rate = (self.gen.answered - self.last_answered) / (now - self.last_t)
        errors = sum(self.gen.errors.values())
        print(
            f"loadgen {self.gen.mode} {phase}: {rate:,.0f} responses/s, "
            f"{self.gen.outstanding} outstanding, {self.gen.opened} connections opened"
            + (f", {errors} errors" if errors else ""),
            file=sys.stderr,
            flush=True,
        )
        self.last_t, self.last_answered = now, self.gen.answered


async def wait_outstanding(gen: LoadGen) -> None:
    deadline = time.perf_counter() + DRAIN_S
    while gen.outstanding > 0 and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)


async def run_closed(gen: LoadGen, connections: int, warmup: float, duration: float) -> float:
    """K connections, each sending back to back. Returns the measured window's length."""
    conns = await asyncio.gather(*(gen.connect() for _ in range(connections)))
    ticker = Ticker(gen)
    gen.mark_window(time.perf_counter() + warmup, duration)
    for conn in conns:
        gen.next_request(conn)
    while time.perf_counter() < gen.measure_to:
        await asyncio.sleep(0.1)
        ticker.maybe("warm-up" if time.perf_counter() < gen.measure_from else "measuring")
    gen.running = False  # connections stop sending as their last response comes in
    await wait_outstanding(gen)
    return duration


async def run_open(gen: LoadGen, rate: float, warmup: float, duration: float) -> float:
    """Request i due at t0 + i/rate, sent by the schedule, not by the responses."""
    for _ in range(min(8, gen.max_connections)):  # a few ready sockets: no connect on send 1
        conn = await gen.connect()
        conn.idle_since = time.perf_counter()
        gen.idle.append(conn)
    ticker = Ticker(gen)
    t0 = time.perf_counter() + 0.05
    warm = round(warmup * rate)
    total = warm + round(duration * rate)
    gen.mark_window(t0 + warm / rate, (total - warm) / rate)
    i = 0
    while i < total:
        now = time.perf_counter()
        while i < total and t0 + i / rate <= now:
            gen.dispatch(t0 + i / rate)
            i += 1
        ticker.maybe("warm-up" if now < gen.measure_from else "measuring")
        gen.prune_idle()
        if i < total:
            # At least 1 ms: uvloop's timers count whole milliseconds, and a shorter sleep
            # returns at once, so the loop would spin on a core until the next due time. The
            # cost is up to 1 ms of lateness, which counts in the latency (it is measured
            # from the due time) and shows in `schedule_late_ms`.
            await asyncio.sleep(max(0.001, t0 + i / rate - time.perf_counter()))
    await wait_outstanding(gen)
    return duration


async def main_async(args: argparse.Namespace, key: str) -> dict[str, Any]:
    gen = LoadGen(args, key)
    cpu0 = time.process_time()
    if args.mode == "closed":
        gen.max_connections = args.connections
        window = await run_closed(gen, args.connections, args.warmup, args.duration)
    else:
        window = await run_open(gen, args.rate, args.warmup, args.duration)
    # CPU from the measured window's start to its last response (the warm-up is left out).
    cpu_end = time.process_time()
    lost = gen.outstanding  # no response within DRAIN_S after the last send
    if lost > 0:
        gen.errors[CONNECT_ERROR] += lost
        gen.error_samples.setdefault(CONNECT_ERROR, f"no response within {DRAIN_S:.0f} s")
    for conn in gen.idle:
        conn.close()
    ok = len(gen.latencies)
    errors = sum(gen.errors.values())
    measured_cpu = cpu_end - gen.cpu_from
    out: dict[str, Any] = {
        "mode": args.mode,
        "path": args.path,
        "loop": type(gen.loop).__module__.split(".")[0],
        "duration_s": window,
        "warmup_s": args.warmup,
        "requests": ok + errors,
        "ok": ok,
        "errors": {str(k): v for k, v in sorted(gen.errors.items())},
        "error_samples": {str(k): v for k, v in sorted(gen.error_samples.items())},
        "rate": round((ok + errors) / window, 1),
        "ok_rate": round(ok / window, 1),
        "latency_ms": summary_ms(gen.latencies),
        "connections_opened": gen.opened,
        "connections_max_open": gen.max_live,
        "cpu_s": round(measured_cpu, 3),
        "cpu_total_s": round(cpu_end - cpu0, 3),
        "cpu_cores": round(measured_cpu / window, 3),
        "cpu_us_per_request": round(measured_cpu / max(ok + errors, 1) * 1e6, 1),
    }
    if args.mode == "closed":
        out["connections"] = args.connections
    else:
        out["target_rate"] = args.rate
        out["schedule_late_ms"] = summary_ms(gen.late)
        out["send_delay_ms"] = summary_ms(gen.send_delay)
        out["max_waiting_for_connection"] = gen.max_waiting
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--mode", choices=["closed", "open"], required=True)
    p.add_argument("--connections", type=int, default=32, help="closed loop: connections")
    p.add_argument("--rate", type=float, default=1000.0, help="open loop: requests/s")
    p.add_argument(
        "--max-connections",
        type=int,
        default=64,
        help="open loop: at most this many sockets; a request due when all are busy waits for "
        "one, and the wait counts in its latency (default 64)",
    )
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds sent but not measured")
    p.add_argument("--method", default="POST")
    p.add_argument("--path", default="/v1/tasks")
    p.add_argument("--body", default=DEFAULT_BODY)
    p.add_argument("--expect", type=int, default=201, help="the status that is not an error")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0 or args.connections < 1 or args.warmup < 0:
        p.error("--duration, --rate and --connections must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    key = os.environ.get("LOADGEN_KEY", "")
    if not key:
        print("loadgen: set LOADGEN_KEY to the API key", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(main_async(args, key))
    else:
        result = uvloop.run(main_async(args, key))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
