"""What `taskstream.client` costs over raw httpx (issue 15): single submits through
`Client.submit` against the same submits by a bare `httpx.Client` loop, in paired rounds of
the same run, against one real `taskstream api` process.

Both sides send the same request: one keep-alive connection, `POST /v1/tasks` with the same
body and a fresh idempotency key each (the client makes one per submit, so the raw loop does
too: the API's work is the same on both sides). The raw loop only checks the status; the client
also decodes the answer into a `Task` and runs its retry machinery (no retry happens: the
tenant's rate limit is out of reach). Within a round the sides take turns, 50 submits at a
time (A B, B A, ...), so whatever else the machine does falls on both. The figure is the
median of the rounds' ratios client/raw; the target is below 1.10.

    .venv/bin/python bench/client_overhead.py                 # private Redis + PostgreSQL
    .venv/bin/python bench/client_overhead.py --use-running   # the ones on the default ports

A worker registers the task types (the API validates submissions against them) and serves
another queue, so the submitted tasks stay pending and no worker competes for the CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
from e2e_parts.console import BenchError, say
from e2e_parts.processes import Cluster, free_port, process_env, tail
from e2e_parts.servers import Stores, servers

from taskstream.client import Client

TYPE = "examples.echo"
PAYLOAD = {"message": "hello from the bench"}
QUEUE = "bench"
TARGET_RATIO = 1.10


class Side:
    """One way of submitting, with the wall and CPU time (this process's: the caller's cost)
    its submits took in a round."""

    def __init__(self, name: str, submit: Callable[[], None]) -> None:
        self.name = name
        self.submit = submit
        self.wall_s = 0.0
        self.cpu_s = 0.0

    def run(self, n: int) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            self.submit()
        self.wall_s += time.perf_counter() - wall
        self.cpu_s += time.process_time() - cpu


def raw_submit(http: httpx.Client) -> Callable[[], None]:
    """A bare httpx submit: the same body, a fresh idempotency key, the status checked."""
    encode = msgspec.json.Encoder().encode

    def submit() -> None:
        body = {"type": TYPE, "payload": PAYLOAD, "queue": QUEUE,
                "idempotency_key": f"raw-{uuid.uuid4().hex}"}  # fmt: skip
        r = http.post("/v1/tasks", content=encode(body))
        if r.status_code != 201:
            raise BenchError(f"raw submit answered {r.status_code}: {r.text[:300]}")

    return submit


def _ignore(_: object) -> None:
    pass


def paired_round(url: str, key: str, n: int, chunk: int) -> tuple[Side, Side]:
    """n submits each way, in chunks that alternate (raw client, client raw, ...): whatever
    the machine does meanwhile falls on both sides alike."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http, Client(url, key) as c:
        raw = Side("raw", raw_submit(http))
        client = Side("client", lambda: _ignore(c.submit(TYPE, PAYLOAD, queue=QUEUE)))
        for j in range(max(1, n // chunk)):
            for side in (raw, client) if j % 2 == 0 else (client, raw):
                side.run(chunk)
    return raw, client


def wait_ready(url: str, cluster: Cluster, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cluster.check_alive()
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise BenchError(f"the API did not become ready; see {cluster.log_dir}")


def registered(url: str, key: str) -> bool:
    """The worker has registered the task types: a submit of TYPE is not a 422."""
    r = httpx.post(
        f"{url}/v1/tasks", json={"type": TYPE, "payload": PAYLOAD, "queue": QUEUE},
        headers={"Authorization": f"Bearer {key}"}, timeout=10,
    )  # fmt: skip
    return r.status_code == 201


def rounds(url: str, key: str, n: int, count: int, chunk: int) -> list[tuple[Side, Side]]:
    say(f"warm-up: {n // 4} submits each way")
    paired_round(url, key, n // 4, chunk)
    results = []
    for i in range(count):
        raw, client = paired_round(url, key, n, chunk)
        say(
            f"round {i + 1}/{count}: raw {raw.wall_s / n * 1e6:,.0f} us a submit "
            f"({raw.cpu_s / n * 1e6:,.0f} us CPU here), client {client.wall_s / n * 1e6:,.0f} us "
            f"({client.cpu_s / n * 1e6:,.0f} us CPU here): client/raw "
            f"{client.wall_s / raw.wall_s:.3f}"
        )
        results.append((raw, client))
    return results


async def main(args: argparse.Namespace) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="taskstream-client-bench-"))
    async with servers(args.use_running, log_dir) as found:
        stores = Stores(found)
        cluster = Cluster(process_env(stores), log_dir)
        try:
            say(f"database {stores.database}, logs in {log_dir}")
            cluster.cli("migrate")
            cluster.cli("tenant", "create", "bench", "--rate-limit", "2000000000")
            key = cluster.cli("key", "create", "--tenant", "bench", "--role", "submitter").strip()
            port = free_port()
            cluster.start("api", "api", "--port", str(port))
            cluster.start("worker", "worker", "--app", "taskstream.examples.tasks",
                          "--queues", "elsewhere", "--concurrency", "1")  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, cluster)
            deadline = time.monotonic() + 60
            while not registered(url, key):
                cluster.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"task types never registered:\n{tail(log_dir / 'worker.log')}"
                    )
                time.sleep(0.2)
            say(f"API at {url}; {args.rounds} paired rounds of {args.n} submits each way")
            results = await asyncio.to_thread(rounds, url, key, args.n, args.rounds, args.chunk)
        finally:
            await cluster.stop_all()
            await stores.clean()
    ratios = [c.wall_s / r.wall_s for r, c in results]
    median = statistics.median(ratios)
    per = {
        name: (statistics.median(s.wall_s for s in sides) / args.n * 1e6,
               statistics.median(s.cpu_s for s in sides) / args.n * 1e6)
        for name, sides in (("raw", [r for r, _ in results]), ("client", [c for _, c in results]))
    }  # fmt: skip
    verdict = "met" if median < TARGET_RATIO else "MISSED"
    print(f"client overhead: median client/raw {median:.3f} over {len(ratios)} paired rounds "
          f"of {args.n} submits each way (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"per submit raw {per['raw'][0]:,.0f} us ({per['raw'][1]:,.0f} us CPU in the caller), "
          f"client {per['client'][0]:,.0f} us ({per['client'][1]:,.0f} us CPU); "
          f"target < {TARGET_RATIO:.2f}: {verdict}")  # fmt: skip
    return 0 if median < TARGET_RATIO else 1


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="submits per side per round")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds")
    parser.add_argument(
        "--chunk", type=int, default=50, help="submits in a row before the other side's turn"
    )
    parser.add_argument(
        "--use-running", action="store_true",
        help="Redis and PostgreSQL from BENCH_REDIS_URL / BENCH_PG_URL or the default ports",
    )  # fmt: skip
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
    except BenchError as exc:
        say(f"stopped: {exc}")
        sys.exit(2)
