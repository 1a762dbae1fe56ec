"""Paired A/B drains of a feature switched off (A) and on (B), in one run, side by side: the
lifecycle phase (issue 13: auditing every submission and sealing payloads) and the
instrumentation phase (issue 14: counting every request and attempt, TASKSTREAM_METRICS).

Lifecycle:

* A ("off"): the defaults, with ``TASKSTREAM_AUDIT_SUBMISSIONS=false`` and no
  ``TASKSTREAM_ENCRYPTION_KEYS``.
* B ("on"): ``TASKSTREAM_AUDIT_SUBMISSIONS=true`` and one key in ``TASKSTREAM_ENCRYPTION_KEYS``:
  every submission is appended to the audit log in the INSERT's own statement, and every payload
  (and result) is sealed with AES-256-GCM in PostgreSQL.

Each variant is the drain phase's measurement (`drain.drain_once`): N tasks of the peers' body
with a ~200-byte payload (`config.LIFECYCLE_PAYLOAD`, the same for both) pre-filled over HTTP with
no worker running, then a worker of 2 processes started and timed until PostgreSQL shows all
completed. The pre-fill's rate is where the audit row and the sealing are paid (the API); the
drain's is where every claim opens the payload (the worker). Each drain runs on a deployment of
its own (database, key prefix, API, scheduler, removed afterwards), made with the variant's
settings. Rounds alternate the order (A then B, then B then A), as the paired phase does, so a
steady drift of the machine favours neither; B/A is taken within each round and the median round
is reported with the spread. After each drain the run checks that the variant took: B's tasks
all have a sealed payload and a `task.submit` audit row, A's none.

Instrumentation: A ``TASKSTREAM_METRICS=false``, B ``true`` (the default), everything else the
same; after each drain the API's /metrics (read with a metrics token of the run's) must count
every submitted task in B and none in A.

Cluster (issue 16): A one Redis (the run's), B a private Redis Cluster of three masters started
for the phase on the same machine (``TASKSTREAM_REDIS_URL=redis+cluster://...``); the handler's
own Redis round trip (the peers' body) stays on the run's Redis in both. After each drain the
deployment's sentinels must be where the variant put them: one on the single Redis in A, one on
each master in B.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import re
import secrets
import statistics
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec

from .config import LIFECYCLE_PAYLOAD, PEER_EMAIL, PEER_TYPE, Config
from .console import say
from .drain import Case, drain_once, register_types
from .servers import Servers
from .stack import Stack, deployment

AUDIT_ENV = "TASKSTREAM_AUDIT_SUBMISSIONS"
KEYS_ENV = "TASKSTREAM_ENCRYPTION_KEYS"
KEY_ID = "bench"
VARIANTS = {"A": "off", "B": "on"}
CASE = Case("peer", 2)  # the peers' body, 2 worker processes: the paired phase's drain
# The two rates compared: name in the report -> key of a drain_once result.
RATES = {"submit": "prefill_rate", "drain": "rate"}

# Fresh deployment: every task in it is one of this variant's (the drain's and the warm-up's).
STATE_SQL = """
SELECT (SELECT count(*) FROM tasks) AS tasks,
       (SELECT count(*) FROM tasks WHERE payload_key IS NOT NULL) AS sealed,
       (SELECT count(*) FROM audit_log WHERE action = 'task.submit') AS audited
"""


METRICS_ENV = "TASKSTREAM_METRICS"
TOKEN_ENV = "TASKSTREAM_METRICS_TOKEN"


@dataclasses.dataclass(frozen=True)
class Feature:
    """A feature measured off (A) against on (B)."""

    phase: str  # the report's key and the log folder
    issue: int
    label: str  # what B turns on, for the report
    shown: dict[str, dict[str, str]]  # each variant's settings, secrets masked
    env: Callable[[str, str], dict[str, str | None]]  # (variant, the run's secret) -> settings
    state: Callable[[Stack, str, str], Awaitable[dict[str, Any]]]  # checks after the drain
    # What the phase holds for all its rounds, yielding the "secret" env and state are given
    # (the cluster's URL); None: 32 random bytes (a key, a token).
    context: Callable[[], contextlib.AbstractContextManager[str]] | None = None


def lifecycle_env(variant: str, key: str) -> dict[str, str | None]:
    """The variant's settings for every process of its deployment (None: removed, so a key in the
    caller's environment does not turn A's encryption on)."""
    if variant == "A":
        return {AUDIT_ENV: "false", KEYS_ENV: None}
    return {AUDIT_ENV: "true", KEYS_ENV: f"{KEY_ID}:{key}"}


async def lifecycle_state(stack: Stack, variant: str, _secret: str) -> dict[str, Any]:
    """How many of the deployment's tasks are sealed and audited, and whether that is what the
    variant's settings promise (all of them in B, none in A)."""
    row = await stack.pool.fetchrow(STATE_SQL)
    tasks, sealed, audited = row["tasks"], row["sealed"], row["audited"]
    want = tasks if variant == "B" else 0
    return {
        "tasks": tasks,
        "as_configured": sealed == want and audited == want,
        "checks": {"payloads sealed / tasks": f"{sealed:,} / {tasks:,}",
                   "task.submit audit rows / tasks": f"{audited:,} / {tasks:,}"},
    }  # fmt: skip


def instrumentation_env(variant: str, token: str) -> dict[str, str | None]:
    return {METRICS_ENV: "false" if variant == "A" else "true", TOKEN_ENV: token}


async def instrumentation_state(stack: Stack, variant: str, token: str) -> dict[str, Any]:
    """The API's count of submitted tasks against the tasks stored: all of them in B, 0 in A."""
    tasks = await stack.pool.fetchval("SELECT count(*) FROM tasks")
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{stack.api_url}/metrics",
                               headers={"Authorization": f"Bearer {token}"})).text  # fmt: skip
    found = re.search(r"^tasks_submitted_total (\S+)$", text, flags=re.M)
    counted = round(float(found.group(1))) if found else 0
    return {
        "tasks": tasks,
        "as_configured": counted == (tasks if variant == "B" else 0),
        "checks": {"tasks_submitted_total / tasks": f"{counted:,} / {tasks:,}"},
    }


LIFECYCLE = Feature(
    "lifecycle", 13, "audit + sealing",
    {"A": {AUDIT_ENV: "false", KEYS_ENV: "unset"},
     "B": {AUDIT_ENV: "true", KEYS_ENV: f"{KEY_ID}:<32 random bytes>"}},
    lifecycle_env, lifecycle_state,
)  # fmt: skip
INSTRUMENTATION = Feature(
    "instrumentation", 14, "metrics counting",
    {"A": {METRICS_ENV: "false"}, "B": {METRICS_ENV: "true"}},
    instrumentation_env, instrumentation_state,
)  # fmt: skip


def cluster_env(variant: str, url: str) -> dict[str, str | None]:
    return {} if variant == "A" else {REDIS_ENV: url}


async def cluster_state(stack: Stack, variant: str, url: str) -> dict[str, Any]:
    """Where the deployment's sentinels are: one on the run's Redis (A), one per master (B)."""
    from taskstream.broker.connection import connect

    sentinel = f"{stack.stores.prefix}:sentinel"
    single = int(await stack.redis.exists(sentinel))
    cluster = connect(url)
    try:
        found = [k async for k in cluster.scan_iter(match=f"{sentinel}:*")]
    finally:
        await cluster.aclose()
    want = (1, 0) if variant == "A" else (0, 3)
    return {
        "tasks": await stack.pool.fetchval("SELECT count(*) FROM tasks"),
        "as_configured": (single, len(found)) == want,
        "checks": {"sentinels on one Redis / on the cluster": f"{single} / {len(found)}"},
    }


@contextlib.contextmanager
def local_cluster() -> Iterator[str]:
    from taskstream.devcluster import LocalCluster

    with (
        tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder,
        LocalCluster(Path(folder), progress=say) as cluster,
    ):
        yield cluster.url


REDIS_ENV = "TASKSTREAM_REDIS_URL"
CLUSTER = Feature(
    "cluster", 16, "Redis Cluster of 3 masters (against one Redis)",
    {"A": {REDIS_ENV: "the run's Redis"}, "B": {REDIS_ENV: "redis+cluster://<3 local masters>"}},
    cluster_env, cluster_state, local_cluster,
)  # fmt: skip
FEATURES = {f.phase: f for f in (LIFECYCLE, INSTRUMENTATION, CLUSTER)}


def payload_bytes() -> int:
    """The encoded size of one task's payload (the largest `n` makes it a byte or two longer)."""
    return len(msgspec.json.encode({"n": 0, "to": PEER_EMAIL, **LIFECYCLE_PAYLOAD}))


async def phase_ab(feature: Feature, cfg: Config, srv: Servers, log_dir: Path) -> dict[str, Any]:
    """The rounds; a drain that fails ends them, with the rounds before it kept and the error in
    ``errors``."""
    if feature.context is None:
        key = base64.b64encode(secrets.token_bytes(32)).decode()  # this run's; not reported
        return await _rounds(feature, cfg, srv, log_dir, key)
    with feature.context() as held:
        return await _rounds(feature, cfg, srv, log_dir, held)


async def _rounds(
    feature: Feature, cfg: Config, srv: Servers, log_dir: Path, key: str
) -> dict[str, Any]:
    ours = dataclasses.replace(cfg, drain_n=cfg.lifecycle_n)
    name = feature.phase
    say(
        f"{name}: {cfg.lifecycle_rounds} round(s) of a drain of each variant: "
        f"{cfg.lifecycle_n:,} {PEER_TYPE} tasks, {payload_bytes()}-byte payloads, "
        f"{CASE.processes} worker processes; A: {feature.label} off, B: on"
    )
    out: dict[str, Any] = {
        "issue": feature.issue, "label": feature.label,
        "n": cfg.lifecycle_n, "body": PEER_TYPE, "processes": CASE.processes,
        "payload_bytes": payload_bytes(), "rounds_planned": cfg.lifecycle_rounds,
        "variants": feature.shown, "rounds": [], "errors": {},
    }  # fmt: skip
    for i in range(1, cfg.lifecycle_rounds + 1):
        order = ("A", "B") if i % 2 else ("B", "A")
        say(f"{name}: round {i}/{cfg.lifecycle_rounds}: {order[0]} first")
        rnd: dict[str, Any] = {"round": i, "order": list(order)}
        try:
            for variant in order:
                folder = log_dir / f"round-{i}-{variant}"
                rnd[variant] = await one_drain(feature, ours, srv, folder, variant, key)
        except Exception as exc:
            say(f"{name}: round {i} failed: {type(exc).__name__}: {exc}")
            out["errors"][f"round {i}"] = f"{type(exc).__name__}: {exc}"
            break
        rnd["ratios"] = round_ratios(rnd)
        say(
            f"{name}: round {i}: "
            + "; ".join(
                f"{name} A {rnd['A'][k] or 0:,} / B {rnd['B'][k] or 0:,} tasks/s "
                f"(B/A {_x(rnd['ratios'][name])})"
                for name, k in RATES.items()
            )
        )
        out["rounds"].append(rnd)
    out["as_configured"] = all(r[v]["as_configured"] for r in out["rounds"] for v in VARIANTS)
    if out["rounds"] and not out["as_configured"]:
        out["errors"]["check"] = f"a variant's {feature.label} was not as it was configured"
    out["summary"] = summarize(out["rounds"])
    return out


async def one_drain(
    feature: Feature, cfg: Config, srv: Servers, folder: Path, variant: str, secret: str
) -> dict[str, Any]:
    """One drain of the variant on a deployment of its own; its state checked afterwards."""
    record: dict[str, Any] = {}
    async with deployment(cfg, srv, folder, record, feature.env(variant, secret)) as stack:
        await register_types(stack)  # a worker once (types, warm-up), then stopped
        say(f"{feature.phase}: variant {variant} ({VARIANTS[variant]})")
        run = await drain_once(stack, CASE, LIFECYCLE_PAYLOAD)
        state = await feature.state(stack, variant, secret)
    checks = "; ".join(f"{k} {v}" for k, v in state["checks"].items())
    say(
        f"{feature.phase}: {variant}: submit {run['prefill_rate']:,} tasks/s, drain "
        f"{run['rate'] or 0:,} tasks/s; {checks}"
        + ("" if state["as_configured"] else " -- NOT AS CONFIGURED")
    )
    return {"variant": variant, **run, **state, "shutdown": record.get("shutdown")}


def round_ratios(rnd: dict[str, Any]) -> dict[str, float | None]:
    """B's rate over A's, for the submit and the drain: above 1, B was faster."""
    out: dict[str, float | None] = {}
    for name, k in RATES.items():
        a, b = rnd["A"].get(k), rnd["B"].get(k)
        out[name] = round(b / a, 3) if a and b else None
    return out


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per rate: each variant's median, the median round's B/A with the lowest and highest, and
    the ratio of the medians (the same figure when the rounds agree)."""
    out: dict[str, Any] = {}
    for name, k in RATES.items():
        med = {v: _median([r[v].get(k) for r in rounds]) for v in VARIANTS}
        ratios = [r["ratios"][name] for r in rounds if r["ratios"].get(name) is not None]
        out[name] = {
            "A_median": med["A"],
            "B_median": med["B"],
            "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
            "ratio_min": min(ratios, default=None),
            "ratio_max": max(ratios, default=None),
            "ratio_of_medians": round(med["B"] / med["A"], 3) if med["A"] and med["B"] else None,
            "rounds": len(ratios),
        }
    return out


def _median(values: list[Any]) -> float | None:
    found = [v for v in values if v]
    return round(statistics.median(found)) if found else None


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"
