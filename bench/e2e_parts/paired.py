"""Paired drains: taskstream and each peer back to back, round after round.

The drain phase runs first and the peers last, tens of minutes apart in a full run, and a shared
2-core machine drifts by more than 10 % over that time (one full run measured pgqueuer at
9,650-12,246 jobs/s in three consecutive repetitions). A ratio of two figures measured so far
apart carries that drift. Here each round runs one taskstream drain (the peers' body, 2 worker
processes, a deployment of its own that is gone before the peers start) and one drain of each
peer, minutes apart; the order alternates between rounds (taskstream first, then the peers
first) so a steady drift favours neither side. Each round gives its own ratio against the
fastest peer of each kind in that round; the median round is reported with the spread.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .config import Config
from .console import say
from .peers import phase_peers
from .servers import Servers

DrainOnce = Callable[[Config, Path], Awaitable[dict[str, Any]]]
KINDS = {"redis": "fastest_redis_drain", "postgres": "fastest_pg_drain"}


async def phase_paired(
    cfg: Config, srv: Servers, log_dir: Path, drain_once: DrainOnce
) -> dict[str, Any]:
    ours = dataclasses.replace(
        cfg, phases=("drain",), drain_reps=1, drain_workers=(2,), drain_bodies=("peer",)
    )
    rounds: list[dict[str, Any]] = []
    for i in range(1, cfg.paired_rounds + 1):
        round_dir = log_dir / f"paired-{i}"
        round_dir.mkdir(parents=True, exist_ok=True)
        order = ("taskstream", "peers") if i % 2 else ("peers", "taskstream")
        say(f"paired: round {i}/{cfg.paired_rounds}: {order[0]} first")
        rnd: dict[str, Any] = {"round": i, "order": list(order)}
        for side in order:
            if side == "taskstream":
                run = await drain_once(ours, round_dir)
                rnd["taskstream"] = {k: run.get(k) for k in ("rate", "n", "processes", "cpu")}
            else:
                found = await phase_peers(
                    srv.peers_redis_url, srv.peers_pg_dsn, round_dir,
                    libs=list(cfg.peers), n=cfg.peers_n, rate=cfg.peers_rate,
                    duration=cfg.peers_duration, quick=cfg.quick, phases="drain", reps=1,
                )  # fmt: skip
                rnd["peers"] = {kind: found.get(key) for kind, key in KINDS.items()}
                rnd["peer_errors"] = found.get("errors", [])
        rnd["ratios"] = round_ratios(rnd)
        say(
            f"paired: round {i}: taskstream {rnd['taskstream']['rate']:,} tasks/s; "
            + ", ".join(
                f"{p['lib']} {p['rate']:,.0f} ({rnd['ratios'][kind]:.2f}x)"
                for kind, p in rnd["peers"].items()
                if p
            )
        )
        rounds.append(rnd)
    return {"rounds": rounds, "summary": summarize_rounds(rounds)}


def round_ratios(rnd: dict[str, Any]) -> dict[str, float | None]:
    """taskstream's rate over the fastest (exactly-once) peer of each kind in this round."""
    ours = rnd["taskstream"]["rate"]
    out: dict[str, float | None] = {}
    for kind, peer in rnd["peers"].items():
        rate = (peer or {}).get("rate")
        out[kind] = round(ours / rate, 3) if ours and rate else None
    return out


def summarize_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind: the median round's ratio, the lowest and highest, and how many rounds."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        ratios = [r["ratios"][kind] for r in rounds if r["ratios"].get(kind) is not None]
        libs = sorted({r["peers"][kind]["lib"] for r in rounds if r["peers"][kind]})
        out[kind] = {
            "median": round(statistics.median(ratios), 2) if ratios else None,
            "min": min(ratios, default=None),
            "max": max(ratios, default=None),
            "rounds": len(ratios),
            "peers": libs,
            "taskstream_median_rate": _median_rate([r["taskstream"] for r in rounds]),
        }
    return out


def _median_rate(runs: list[dict[str, Any]]) -> float | None:
    rates = [r["rate"] for r in runs if r.get("rate")]
    return round(statistics.median(rates)) if rates else None
