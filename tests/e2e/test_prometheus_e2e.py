"""A real Prometheus (Debian's package) scraping a running stack with our alert rules, and two
rules firing from what happens to it: tasks failing into the dead-letter queue, then the only
worker killed (issue 14). The rules are deploy/prometheus/alerts.yml with their `for:` windows
cut to 0s, so the test does not wait minutes; the expressions are the shipped ones."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskstream.core.config import Settings
from taskstream.observability.scrape import RULES, scrape_config

from .conftest import Cluster, query, wait_until
from .test_deploy_rules import promtool

pytestmark = pytest.mark.slow
TOKEN = "prometheus-e2e-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alerts(url: str) -> dict[str, str]:
    """Each alert's state (pending / firing) as Prometheus has it now."""
    try:
        found = httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    except (httpx.HTTPError, ValueError, KeyError):
        return {}
    return {a["labels"]["alertname"]: a["state"] for a in found}


def value(url: str, expr: str) -> float | None:
    try:
        result = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    rows = result.get("data", {}).get("result", [])
    return float(rows[0]["value"][1]) if rows else None


@pytest.fixture
def prometheus_bin() -> str:
    promtool()  # installs Debian's prometheus package when missing (or skips, saying why)
    found = shutil.which("prometheus")
    if not found:
        pytest.skip("the prometheus package installed no prometheus binary")
    return found


def test_rules_fire_on_a_running_stack(
    cluster: Cluster, settings: Settings, tmp_path: Path, prometheus_bin: str
) -> None:
    env = {"TASKSTREAM_METRICS_TOKEN": TOKEN}
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    auth = {"Authorization": f"Bearer {key}"}
    worker_port, scheduler_port = free_port(), free_port()
    worker = cluster.start("worker", "--app", "taskstream.examples.tasks",
                           "--metrics-port", str(worker_port), env=env)  # fmt: skip
    cluster.start("scheduler", "--metrics-port", str(scheduler_port), env=env)
    wait_until(lambda: bool(query(settings.database_url, "SELECT 1 FROM task_types")), 30, "types")
    api = cluster.start_api(env=env)

    rules = tmp_path / "alerts.yml"
    rules.write_text(re.sub(r"for: \d+m", "for: 0s", RULES.read_text()))
    config = tmp_path / "prometheus.yml"
    text = scrape_config(api, TOKEN, workers=[worker_port], schedulers=[scheduler_port],
                         rules=[rules], interval_s=1)  # fmt: skip
    config.write_text(text)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "prometheus.log", "wb") as log:
        prom = subprocess.Popen(
            [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        run_the_story(url, api, auth, cluster, worker)
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()


def run_the_story(url: str, api: str, auth: dict[str, str], cluster: Cluster, worker: Any) -> None:
    # Every target up, and the dead-letter depth seen at 0 before anything fails.
    def all_up() -> bool:
        return value(url, 'count(up{job=~"taskstream-.*"} == 1)') == 3

    wait_until(all_up, 60, "Prometheus to scrape the API, worker and scheduler")
    wait_until(lambda: value(url, "sum(dead_letter_depth)") == 0, 30, "a first depth of 0")
    # With `for: 0s`, a rule evaluated before the first scrapes fires at once (no worker, no
    # leader yet); it must resolve once the stack is seen healthy.
    wait_until(lambda: not alerts(url), 30, "the start-up alerts to resolve")

    r = httpx.post(f"{api}/v1/tasks/batch", headers=auth, timeout=10,
                   json={"tasks": [{"type": "examples.fail"}] * 12})  # fmt: skip
    assert r.status_code == 201, r.text
    wait_until(lambda: alerts(url).get("TaskstreamDeadLettersGrowing") == "firing", 60,
               "TaskstreamDeadLettersGrowing to fire")  # fmt: skip
    # What Prometheus holds is what happened: 12 dead letters, 12 failed attempts (scraped
    # within a second of each other, so read until both are there).
    failed = 'sum(tasks_completed_total{status="failed"})'
    wait_until(lambda: value(url, "sum(dead_letter_depth)") == 12 and value(url, failed) == 12,
               10, "12 dead letters and 12 failed attempts in Prometheus")  # fmt: skip

    cluster.stop(worker, signal.SIGKILL)
    time.sleep(0.5)
    wait_until(lambda: alerts(url).get("TaskstreamNoLiveWorkers") == "firing", 60,
               "TaskstreamNoLiveWorkers to fire once the only worker is gone")  # fmt: skip
