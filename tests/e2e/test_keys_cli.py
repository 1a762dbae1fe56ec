"""`taskstream key create|list|revoke` as a user runs them, against the API as a real process."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from taskstream.core.config import Settings

from .conftest import Cluster

pytestmark = pytest.mark.slow


def test_key_lifecycle_on_the_cli(cluster: Cluster, settings: Settings) -> None:
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme")
    out = cluster.cli(
        "key", "create", "--tenant", "acme", "--role", "viewer", "--expires-in", "90d"
    )
    assert out.count("\n") == 1 and out.startswith("tsk_")  # the key alone on one line
    key = out.strip()
    prefix = key.split("_")[1]
    cluster.cli("key", "create", "--tenant", "acme", "--role", "admin")

    table = cluster.cli("key", "list", "--tenant", "acme").splitlines()
    assert table[0].split()[:2] == ["PREFIX", "ROLE"] and len(table) == 3
    assert key not in "\n".join(table) and key.split("_")[2] not in "\n".join(table)
    rows = json.loads(cluster.cli("key", "list", "--tenant", "acme", "--output", "json"))
    mine = next(r for r in rows if r["prefix"] == prefix)
    assert mine["role"] == "viewer" and mine["revoked_at"] is None
    assert (
        mine["expires_at"][:4] > mine["created_at"][:4] or mine["expires_at"] > mine["created_at"]
    )

    url = cluster.start_api()
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{url}/v1/tasks", headers=auth, timeout=10).status_code == 200

    done = cluster.run("key", "revoke", prefix)
    assert done.returncode == 0 and done.stdout == "" and prefix in done.stderr
    rows = json.loads(cluster.cli("key", "list", "--tenant", "acme", "--output", "json"))
    assert next(r for r in rows if r["prefix"] == prefix)["revoked_at"] is not None
    assert next(r for r in rows if r["prefix"] == prefix)["last_used_at"] is not None

    # The API refuses it within TASKSTREAM_API_KEY_CACHE_TTL_S (10 s by default).
    deadline_s, waited_s = 12.0, 0.0
    while httpx.get(f"{url}/v1/tasks", headers=auth, timeout=10).status_code == 200:
        assert waited_s < deadline_s, "revoked key still served"
        waited_s += 0.2
        time.sleep(0.2)
    r = httpx.get(f"{url}/v1/tasks", headers=auth, timeout=10)
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("key", "revoke", "0123456789ab"), "no key with prefix"),
        (("key", "revoke", "not-a-prefix"), "no key with prefix"),
        (("key", "list", "--tenant", "nobody"), "no tenant named"),
        (
            ("key", "create", "--tenant", "acme", "--role", "viewer", "--expires-in", "soon"),
            "duration",
        ),
    ],
)
def test_cli_errors_are_clear(cluster: Cluster, args: tuple[str, ...], message: str) -> None:
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme")
    done = cluster.run(*args)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
