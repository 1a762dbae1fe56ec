"""Redis, a Redis Cluster master and PostgreSQL die mid-run (private servers, killed and restarted
on the same port): the API never answers 500, every accepted task completes once, with one
effect."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from taskstream.broker.connection import connect_blocking
from taskstream.broker.keys import Keys
from taskstream.core.config import Settings
from taskstream.core.models import Priority
from taskstream.devcluster import LocalCluster
from taskstream.devservers import RunningServer, start_postgres, start_redis

from .conftest import Cluster, query, wait_until

pytestmark = pytest.mark.slow

EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS test_effects (id bigserial PRIMARY KEY,"
    " task_id uuid NOT NULL, value int NOT NULL, lease_epoch bigint NOT NULL)"
)


def port_of(server: RunningServer) -> int:
    return int(server.url.split("@")[-1].split("//")[-1].split(":")[1].split("/")[0])


class Submitter(threading.Thread):
    """Submits batches steadily and records every answer (status, ids)."""

    def __init__(self, url: str, key: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.seconds = url, key, seconds
        self.codes: Counter[int] = Counter()
        self.accepted: list[str] = []
        self.retry_after_missing = 0

    def run(self) -> None:
        end = time.monotonic() + self.seconds
        value = 0
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while time.monotonic() < end:
                batch = [
                    {
                        "type": "test.effect",
                        "payload": {"value": value + i, "sleep_s": 0.01},
                        "max_attempts": 20,
                    }
                    for i in range(25)
                ]
                value += 25
                try:
                    r = client.post(
                        "/v1/tasks/batch",
                        json={"tasks": batch},
                        headers={"Authorization": f"Bearer {self.key}"},
                    )
                except httpx.HTTPError:
                    self.codes[0] += 1
                    continue
                self.codes[r.status_code] += 1
                if r.status_code == 201:
                    self.accepted += [i["task"]["id"] for i in r.json()["items"]]
                elif r.status_code == 503 and "retry-after" not in r.headers:
                    self.retry_after_missing += 1
                time.sleep(0.05)


def start_stack(cluster: Cluster, dsn: str) -> str:
    cluster.env["TASKSTREAM_VISIBILITY_TIMEOUT_S"] = "3"
    cluster.env["TASKSTREAM_LOG_LEVEL"] = "warning"
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    query(dsn, EFFECTS_DDL)
    cluster.start_api()
    cluster.start("scheduler")
    for _ in range(2):
        cluster.start("worker", "--app", "testapp", "--concurrency", "20")
    wait_until(
        lambda: query(dsn, "SELECT count(*) AS n FROM task_types")[0]["n"] >= 2, 30, "task types"
    )
    return key


def check_exactly_once(dsn: str, accepted: list[str]) -> None:
    def all_done() -> bool:
        rows = query(dsn, "SELECT count(*) FILTER (WHERE status <> 'completed') AS open FROM tasks")
        return rows[0]["open"] == 0

    wait_until(all_done, 120, "every task to complete")
    done = {str(r["id"]) for r in query(dsn, "SELECT id FROM tasks WHERE status='completed'")}
    assert set(accepted) <= done  # every task the API accepted ran to completion
    effects = query(dsn, "SELECT count(*) AS n, count(DISTINCT task_id) AS d FROM test_effects")
    assert effects[0]["n"] == effects[0]["d"] == len(done)  # one effect per task, no more


@pytest.mark.timeout(300)
@pytest.mark.parametrize("aof", [False, True], ids=["no-persistence", "aof"])
def test_redis_killed_and_restarted(
    cluster: Cluster, settings: Settings, tmp_path: Path, aof: bool
) -> None:
    redis_server = start_redis(tmp_path / "redis", appendonly=aof, progress=lambda _: None)
    try:
        cluster.env["TASKSTREAM_REDIS_URL"] = redis_server.url
        key = start_stack(cluster, settings.database_url)
        submitter = Submitter(cluster.api_url, key, seconds=8)
        submitter.start()
        time.sleep(2)
        redis_server.process.kill()  # SIGKILL: no shutdown save
        redis_server.process.wait()
        time.sleep(3)  # down: the API keeps accepting, workers claim from PostgreSQL
        redis_server = start_redis(
            tmp_path / "redis", appendonly=aof, port=port_of(redis_server), progress=lambda _: None
        )
        submitter.join()
        assert set(submitter.codes) == {201}, submitter.codes  # accepted throughout, no 5xx
        check_exactly_once(settings.database_url, submitter.accepted)
        # Workers are back on the streams: a fresh task is picked up at stream speed.
        with httpx.Client(base_url=cluster.api_url) as client:
            r = client.post(
                "/v1/tasks",
                headers={"Authorization": f"Bearer {key}"},
                json={"type": "test.effect", "payload": {"value": -1}},
            )
            assert r.status_code == 201
        check_exactly_once(settings.database_url, [r.json()["id"]])
    finally:
        cluster.close()
        redis_server.stop()


@pytest.mark.timeout(300)
def test_postgres_restarted_immediate(cluster: Cluster, tmp_path: Path) -> None:
    # Durable settings: a 201 promises a committed row, and a server with synchronous_commit
    # off loses the last ~0.2 s of commits to an immediate shutdown (seen: two accepted tasks).
    pg = start_postgres(tmp_path / "pg", progress=lambda _: None, durable=True)
    try:
        dsn = pg.url
        cluster.env["TASKSTREAM_DATABASE_URL"] = dsn
        key = start_stack(cluster, dsn)
        submitter = Submitter(cluster.api_url, key, seconds=9)
        submitter.start()
        time.sleep(2)
        pg.process.send_signal(signal.SIGQUIT)  # = pg_ctl stop -m immediate
        pg.process.wait(timeout=30)
        time.sleep(3)
        pg = start_postgres(
            tmp_path / "pg", port=port_of(pg), progress=lambda _: None, durable=True
        )
        submitter.join()
        assert submitter.codes[500] == 0 and set(submitter.codes) <= {201, 503}, submitter.codes
        assert submitter.codes[503] > 0  # the outage was seen ...
        assert submitter.retry_after_missing == 0  # ... and every 503 said when to come back
        check_exactly_once(dsn, submitter.accepted)
    finally:
        cluster.close()
        pg.stop()


@pytest.mark.timeout(300)
def test_redis_cluster_master_killed_and_restarted_empty(
    cluster: Cluster, settings: Settings, tmp_path: Path
) -> None:
    """The master holding the queue's streams dies (the cluster is down while it is) and comes
    back without its data: the API keeps accepting, the scheduler notices that master's
    sentinel is gone and republishes, and every task still runs once."""
    with LocalCluster(tmp_path / "cluster", progress=lambda _: None) as redis_cluster:
        cluster.env["TASKSTREAM_REDIS_URL"] = redis_cluster.url
        stream = Keys(settings.redis_prefix).stream("acme", "default", Priority.NORMAL)
        client = connect_blocking(redis_cluster.url)
        try:
            port = client.get_node_from_key(stream).port
        finally:
            client.close()
        victim = redis_cluster.ports.index(port)
        try:
            key = start_stack(cluster, settings.database_url)
            submitter = Submitter(cluster.api_url, key, seconds=10)
            submitter.start()
            time.sleep(2)
            redis_cluster.kill(victim)
            time.sleep(4)  # past the node timeout: the cluster says CLUSTERDOWN meanwhile
            redis_cluster.restart(victim)
            submitter.join()
            assert set(submitter.codes) == {201}, submitter.codes  # accepted throughout
            check_exactly_once(settings.database_url, submitter.accepted)
        finally:
            cluster.close()
