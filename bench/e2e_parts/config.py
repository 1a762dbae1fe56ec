"""The options of one run, their full and `--quick` defaults, and the tasks it submits.

Kept free of third-party imports: `benchapp` (imported by the worker processes) reads the peer
body's key names from here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Every worker loads both: the example no-op and the peers' task body.
APPS = ("taskstream.examples.tasks", "e2e_parts.benchapp")
NOOP_TYPE = "examples.noop"
PEER_TYPE = "bench.peer_body"
SLEEP_TYPE = "examples.sleep"  # {"seconds": s}: the fairness phase's body, slots busy, CPU idle
BODIES = {"noop": NOOP_TYPE, "peer": PEER_TYPE}  # --drain-bodies name -> task type
PEER_EMAIL = "user@example.com"  # the peers' payload: {"n": i, "to": PEER_EMAIL}

# The peer body's Redis round trip goes to this server, under this run's key prefix, so the
# run's cleanup (DEL <prefix>:*) removes its counters too.
BODY_REDIS_URL_ENV = "BENCH_BODY_REDIS_URL"
BODY_PREFIX_ENV = "BENCH_BODY_PREFIX"


def body_keys(prefix: str) -> tuple[str, str]:
    """(executions counter, bitmap of distinct jobs): the peers' `bench:done` / `bench:bits`."""
    return f"{prefix}:bench:done", f"{prefix}:bench:bits"


PHASES = (
    "drain", "sustained", "pickup", "http", "large", "memory", "peers", "paired", "fairness",
    "lifecycle", "instrumentation", "cluster",
)  # fmt: skip
# Run only when named: `--phases all` (the default) is every other phase. The fairness phase
# (issue 12, ~5 minutes), the lifecycle phase (issue 13, ~2 minutes) and the instrumentation
# phase (issue 14, the same A/B drains) build deployments of their own.
OPT_IN_PHASES = ("fairness", "lifecycle", "instrumentation", "cluster")
FAIRNESS_PARTS = ("skew", "tenants")
DEFAULT_PHASES = tuple(p for p in PHASES if p not in OPT_IN_PHASES)
PEER_LIBS_DEFAULT = ("taskiq_stream", "pgqueuer", "saq", "dramatiq")
PEER_LIBS_ALL = (
    "arq", "saq", "taskiq_stream", "taskiq_list", "dramatiq", "celery", "rq", "procrastinate",
    "pgqueuer",
)  # fmt: skip

# Sizes that `--quick` shrinks: (full run, quick smoke run). An option given explicitly wins.
SIZES: dict[str, tuple[Any, Any]] = {
    "drain_n": (50_000, 5_000),
    "drain_reps": (3, 1),
    "sustained_duration": (20.0, 3.0),
    "duration": (15.0, 3.0),
    "http_duration": (15.0, 3.0),
    "memory_n": (1_000_000, 20_000),
    "large_rows": (1_000_000, 20_000),
    "peers_n": (50_000, 5_000),
    "peers_duration": (15.0, 3.0),
    "paired_rounds": (5, 1),
    "fairness_duration": (30.0, 5.0),
    "fairness_backlog": (50_000, 5_000),
    "fairness_n": (20_000, 2_000),
    "fairness_reps": (3, 1),
    "lifecycle_rounds": (3, 1),
}

# The lifecycle phase's payload: the peers' {"n", "to"} and what a real notification job carries
# besides, ~200 bytes of JSON, so that sealing has something to encrypt. The peer body reads
# `n` and `to` and ignores the rest (its Struct does not forbid unknown fields).
LIFECYCLE_PAYLOAD: dict[str, Any] = {
    "template": "invoice-ready",
    "locale": "en-GB",
    "subject": "Your invoice INV-2024-000123 is ready",
    "vars": {"customer": "Ada Lovelace", "amount": "1,234.56", "currency": "EUR",
             "due": "2024-07-31"},
}  # fmt: skip


@dataclass(frozen=True)
class Config:
    # The field order is the order of "config" in the JSON report.
    phases: tuple[str, ...]
    quick: bool
    use_running: bool  # BENCH_REDIS_URL / BENCH_PG_URL instead of private servers
    workers: int  # worker processes for sustained, pickup, memory, large
    api_processes: int  # `api --processes`
    concurrency: int
    timeout: float
    json_out: Path
    # drain
    drain_n: int
    drain_reps: int  # runs of each case; the median by rate is reported, as the peers' harness does
    drain_workers: tuple[int, ...]
    drain_bodies: tuple[str, ...]  # keys of BODIES
    batch_size: int  # pre-fill: tasks per POST /v1/tasks/batch
    submitters: int  # pre-fill: concurrent HTTP clients
    # sustained
    sustained_rate: float  # tasks/s offered in batches
    sustained_batch: int
    sustained_clients: int
    sustained_single_rate: float  # tasks/s offered as single POST /v1/tasks (0: skip)
    sustained_duration: float
    # pickup
    rate: float
    duration: float
    http_client: str  # pickup load generator: "raw" or "httpx"
    # http, memory, large, peers (run by their own modules)
    http_rate: float
    http_duration: float
    memory_n: int
    large_rows: int
    peers: tuple[str, ...]
    peers_n: int
    peers_rate: float
    peers_duration: float
    paired_rounds: int  # rounds of one taskstream drain and one drain of each peer, back to back
    # fairness (issue 12): tenant skew, then the drain over many tenants
    fairness_duration: float  # seconds of light-tenant load in each of runs A and B
    fairness_rate: float  # single submits per second of each of the nine light tenants
    fairness_backlog: int  # the heavy tenant's tasks, pre-filled before run B's light load
    fairness_body_ms: float | None  # the skew's task body (examples.sleep); None: derived
    fairness_n: int  # tasks of each many-tenants drain, spread evenly over the tenants
    fairness_tenants: tuple[int, ...]  # tenant counts, one drain case each, ascending
    fairness_reps: int  # drains of each tenant count; the median by steady rate is reported
    fairness_parts: tuple[str, ...]  # of FAIRNESS_PARTS
    # lifecycle (issue 13) and instrumentation (issue 14): the drain with the feature on and off
    lifecycle_n: int  # tasks pre-filled per drain
    lifecycle_rounds: int  # rounds of one drain of each variant, the order alternating

    def wants(self, phase: str) -> bool:
        return phase in self.phases
