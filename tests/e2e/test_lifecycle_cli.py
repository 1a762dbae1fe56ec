"""Encryption at rest and the audit log as an operator drives them: `taskstream keygen`, an API
and a worker started with TASKSTREAM_ENCRYPTION_KEYS, `taskstream reencrypt` after a rotation,
`taskstream audit verify` before and after a row is edited. Real processes."""

from __future__ import annotations

import re

import httpx
import pytest

from taskstream.core.config import Settings

from .conftest import Cluster, query, wait_until

pytestmark = pytest.mark.slow
MARKER = "secret-marker-5be1"


def test_keys_rotation_and_the_audit_log_from_the_cli(cluster: Cluster, settings: Settings) -> None:
    cluster.cli("migrate")
    k1 = cluster.cli("keygen", "k1").strip()
    k2 = cluster.cli("keygen", "k2").strip()
    assert re.fullmatch(r"k1:[A-Za-z0-9+/]{43}=", k1) and k1 != k2.replace("k2", "k1")
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    auth = {"Authorization": f"Bearer {key}"}

    cluster.env["TASKSTREAM_ENCRYPTION_KEYS"] = k1
    cluster.start("worker", "--app", "taskstream.examples.tasks")
    wait_until(
        lambda: bool(query(settings.database_url, "SELECT 1 FROM task_types")), 30, "the types"
    )
    url = cluster.start_api()
    r = httpx.post(f"{url}/v1/tasks", headers=auth, timeout=10,
                   json={"type": "examples.echo", "payload": {"message": MARKER}})  # fmt: skip
    assert r.status_code == 201, r.text
    task = r.json()["id"]

    def done() -> bool:
        got = httpx.get(f"{url}/v1/tasks/{task}", headers=auth, timeout=10).json()
        return bool(got["status"] == "completed")

    wait_until(done, 30, "the task to complete")
    rows = query(settings.database_url, "SELECT t::text AS t FROM tasks t")
    assert rows and all(MARKER not in r["t"] for r in rows)

    # Rotation: k2 first, k1 still listed; reencrypt moves the row; then k2 alone opens it.
    moved = cluster.run(
        "reencrypt", "--batch", "10", env={"TASKSTREAM_ENCRYPTION_KEYS": f"{k2},{k1}"}
    )
    assert moved.returncode == 0, moved.stderr
    assert "1 rows to seal with key 'k2'" in moved.stderr and "1 rows sealed" in moved.stderr
    keys = query(settings.database_url, "SELECT payload_key, result_key FROM tasks")
    assert [tuple(r) for r in keys] == [("k2", "k2")]

    bad = cluster.run("reencrypt", env={"TASKSTREAM_ENCRYPTION_KEYS": "k3:c2hvcnQ="})
    assert bad.returncode == 2 and "key 'k3' is 5 bytes" in bad.stderr
    assert "c2hvcnQ=" not in bad.stderr
    missing = cluster.run("reencrypt", env={"TASKSTREAM_ENCRYPTION_KEYS": k1})
    assert missing.returncode == 1 and "'k2'" in missing.stderr

    # The audit log: the CLI's and the API's actions, intact; then one row edited.
    intact = cluster.run("audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "audit log intact: 3 rows of 1 tenant(s)" in intact.stdout
    actors = query(settings.database_url, "SELECT actor, action FROM audit_log ORDER BY seq")
    assert [r["action"] for r in actors] == ["tenant.create", "key.create", "task.submit"]
    assert actors[0]["actor"].startswith("cli:") and actors[2]["actor"].startswith("key:")
    query(settings.database_url, "UPDATE audit_log SET target = 'other' WHERE seq = 2")
    tampered = cluster.run("audit", "verify", "--tenant", "acme")
    assert tampered.returncode == 1
    assert "BROKEN tenant" in tampered.stdout and "row 2:" in tampered.stdout


def test_regions_from_the_cli(cluster: Cluster, settings: Settings) -> None:
    """Two workers started for two regions; each runs only its region's tasks."""
    cluster.env["TASKSTREAM_REGIONS"] = "eu,us"
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme", "--region", "eu")
    refused = cluster.run("tenant", "create", "globex", "--region", "mars")
    assert refused.returncode == 1 and "unknown region 'mars'" in refused.stderr
    table = cluster.cli("tenant", "list")
    assert table.splitlines()[0].split()[-1] == "REGION" and table.splitlines()[1].endswith("eu")
    bad = cluster.run("worker", "--region", "mars")
    assert bad.returncode == 2 and "unknown region 'mars'" in bad.stderr
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    pids = {}
    for region in ("eu", "us"):
        proc = cluster.start("worker", "--app", "taskstream.examples.tasks", "--region", region)
        pids[str(proc.pid)] = region
    wait_until(
        lambda: bool(query(settings.database_url, "SELECT 1 FROM task_types")), 30, "the types"
    )
    url = cluster.start_api()
    auth = {"Authorization": f"Bearer {key}"}
    ids = {}
    for region in (None, "us"):
        body = {"type": "examples.noop", **({"region": region} if region else {})}
        r = httpx.post(f"{url}/v1/tasks", headers=auth, json=body, timeout=10)
        assert r.status_code == 201, r.text
        ids[r.json()["id"]] = region or "eu"

    def done() -> bool:
        rows = query(settings.database_url, "SELECT count(*) AS n FROM task_attempts")
        return bool(rows[0]["n"] == 2)

    wait_until(done, 30, "both tasks to run")
    rows = query(settings.database_url, "SELECT task_id, worker FROM task_attempts")
    # A worker's name is host:pid:random; each task ran on the worker of its region.
    assert {str(r["task_id"]): pids[r["worker"].split(":")[1]] for r in rows} == ids
