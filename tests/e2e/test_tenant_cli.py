"""`taskstream tenant create|update|list` as a user runs them, with the limits of DESIGN §9."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from taskstream.core.config import Settings

from .conftest import Cluster, query

pytestmark = pytest.mark.slow


def rows(cluster: Cluster, **env: str) -> dict[str, dict[str, Any]]:
    done = cluster.run("tenant", "list", "--output", "json", env=env)
    assert done.returncode == 0, done.stderr
    return {t["name"]: t for t in json.loads(done.stdout)}


def test_tenant_limits_on_the_cli(cluster: Cluster, settings: Settings) -> None:
    cluster.cli("migrate")
    out = cluster.cli(
        "tenant", "create", "acme", "--rate-limit", "500", "--max-pending", "2000",
        "--max-concurrency", "8", "--weight", "3",
    )  # fmt: skip
    assert out.count("\n") == 1
    acme_id = uuid.UUID(out.strip())  # the id alone on its line
    uuid.UUID(cluster.cli("tenant", "create", "globex").strip())

    stored = query(
        settings.database_url,
        "SELECT rate_limit, max_pending, max_concurrency, weight FROM tenants WHERE name = 'acme'",
    )
    assert tuple(stored[0]) == (500, 2000, 8, 3)

    updated = cluster.cli(
        "tenant", "update", "acme", "--max-concurrency", "2", "--weight", "5",
        "--retention-days", "7",
    )  # fmt: skip
    assert "acme" in updated and str(acme_id) in updated
    found = rows(cluster)
    assert found["acme"]["id"] == str(acme_id)
    assert found["acme"]["limits"] == {
        "rate_limit": 500, "max_pending": 2000, "max_concurrency": 2, "weight": 5,
        "retention_days": 7,
    }  # fmt: skip
    # globex has no limits of its own: null, and the deployment's defaults in effect.
    assert found["globex"]["limits"] == {
        "rate_limit": None, "max_pending": None, "max_concurrency": None, "weight": 1,
        "retention_days": None,
    }  # fmt: skip
    assert found["globex"]["effective"] == {
        "rate_limit": settings.tenant_rate_limit, "max_pending": settings.tenant_max_pending,
        "max_concurrency": None, "weight": 1, "retention_days": settings.retention_days,
    }  # fmt: skip

    # `default` resets one limit; the others stay.
    cluster.cli(
        "tenant", "update", "acme", "--rate-limit", "default", "--max-concurrency", "default"
    )
    found = rows(cluster, TASKSTREAM_TENANT_RATE_LIMIT="250")
    assert found["acme"]["limits"] == {
        "rate_limit": None, "max_pending": 2000, "max_concurrency": None, "weight": 5,
        "retention_days": 7,
    }  # fmt: skip
    assert found["acme"]["effective"]["rate_limit"] == 250

    table = cluster.run("tenant", "list", env={"TASKSTREAM_TENANT_RATE_LIMIT": "250"})
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "ID"]
    assert "MAX CONCURRENCY" in lines[0]
    assert lines[0].split()[-3:] == ["WEIGHT", "RETENTION", "REGION"]
    assert [line.split()[0] for line in lines[1:]] == ["acme", "globex"]
    assert str(acme_id) in lines[1] and "default (250)" in lines[1] and "2000" in lines[1]
    assert lines[1].split()[-3:] == ["5", "7", "-"]
    assert f"default ({settings.tenant_max_pending})" in lines[2] and "no cap" in lines[2]
    assert f"default ({settings.retention_days})" in lines[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenant", "create", "x", "--rate-limit", "0"), "rate_limit must be"),
        (("tenant", "create", "x", "--max-pending", "-3"), "max_pending must be"),
        (("tenant", "create", "x", "--max-concurrency", "lots"), "max_concurrency must be"),
        (("tenant", "create", "x", "--weight", "1001"), "weight must be"),
        (("tenant", "update", "acme", "--weight", "default"), "weight must be"),
        (("tenant", "update", "acme", "--rate-limit", "1.5"), "rate_limit must be"),
        (("tenant", "update", "acme"), "nothing to change"),
    ],
)
def test_bad_values_are_usage_errors(
    cluster: Cluster, settings: Settings, args: tuple[str, ...], message: str
) -> None:
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme", "--rate-limit", "7")
    done = cluster.run(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr and done.stdout == ""
    stored = query(settings.database_url, "SELECT name, rate_limit, weight FROM tenants")
    assert [tuple(r) for r in stored] == [("acme", 7, 1)]


def test_unknown_tenant_is_reported(cluster: Cluster) -> None:
    cluster.cli("migrate")
    done = cluster.run("tenant", "update", "nobody", "--weight", "2")
    assert done.returncode == 1 and "no tenant named 'nobody'" in done.stderr
    assert "Traceback" not in done.stderr
