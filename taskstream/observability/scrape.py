"""A Prometheus configuration that scrapes one deployment: the API's /metrics (with the
deployment's metrics token), each worker's and scheduler's --metrics-port, and the alert rules.
`taskstream dev` writes one for `make prometheus`; the end-to-end tests start a real
Prometheus with it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

# The rules as shipped in a source checkout (not in the wheel).
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def scrape_config(
    api_url: str,
    token: str,
    *,
    workers: Sequence[int] = (),
    schedulers: Sequence[int] = (),
    rules: Sequence[Path] = (),
    interval_s: float = 5.0,
) -> str:
    """The configuration as YAML text (JSON strings are valid YAML scalars: every value quoted
    that way, whatever it holds)."""
    q = json.dumps
    api = api_url.removeprefix("http://").removeprefix("https://").rstrip("/")
    scheme = "https" if api_url.startswith("https://") else "http"
    lines = [
        "# Written by taskstream: scrapes one deployment (observability/scrape.py).",
        "global:",
        f"  scrape_interval: {q(f'{interval_s:g}s')}",
        f"  evaluation_interval: {q(f'{interval_s:g}s')}",
    ]
    if rules:
        lines += ["rule_files:", *(f"  - {q(str(r))}" for r in rules)]
    lines += [
        "scrape_configs:",
        "  - job_name: taskstream-api",
        f"    scheme: {scheme}",
        "    authorization:",
        f"      credentials: {q(token)}",
        "    static_configs:",
        f"      - targets: [{q(api)}]",
    ]
    for job, ports in (("taskstream-worker", workers), ("taskstream-scheduler", schedulers)):
        if ports:
            targets = ", ".join(q(f"127.0.0.1:{p}") for p in ports)
            lines += [f"  - job_name: {job}", "    static_configs:"]
            lines += [f"      - targets: [{targets}]"]
    return "\n".join(lines) + "\n"
