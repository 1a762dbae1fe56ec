"""The alert rules in deploy/prometheus/ (issue 14), checked and unit-tested by Debian's
`promtool` (the `prometheus` package: installed here when missing and we may; otherwise the
test is skipped, saying why)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("promtool is missing and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]
    for args in (["apt-get", "update", "-q"], install):
        done = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0 and args[1] == "install":
            pytest.skip(f"could not install Debian's prometheus package: {done.stderr[-300:]}")
    found = shutil.which("promtool")
    if not found:
        pytest.skip("the prometheus package installed no promtool")
    return found


@pytest.mark.slow
def test_alert_rules_pass_promtool() -> None:
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", "alerts.yml"], cwd=RULES,
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "8 rules found" in check.stdout
    tested = subprocess.run([tool, "test", "rules", "alerts.test.yml"], cwd=RULES,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_dashboard_and_rules_name_only_metrics_we_export() -> None:
    """Every metric a panel or a rule queries is one some process serves."""
    from taskstream.observability.metrics import SCHEDULER, WORKER

    served = {*WORKER, *SCHEDULER, "tasks_submitted_total", "http_requests_total",
              "http_request_duration_seconds", "http_problems_total", "task_queue_depth",
              "dead_letter_depth", "task_oldest_pending_seconds"}  # fmt: skip
    dashboard = json.loads((RULES.parent / "grafana" / "taskstream.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append((RULES / "alerts.yml").read_text())
    metric = re.compile(r"\b([a-z_]+_(?:total|seconds|depth|slots|leader|degraded)(?:_bucket)?)\b")
    names = {n for e in exprs for n in metric.findall(e)}
    assert names, "no metric found"
    unknown = {n.removesuffix("_bucket") for n in names} - served
    assert not unknown, unknown
    assert len(dashboard["panels"]) >= 12
