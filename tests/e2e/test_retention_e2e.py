"""Retention as a user runs it: `taskstream scheduler` (the elected one) deletes a finished task
older than its tenant's `--retention-days`, with its attempts, and keeps an unfinished one."""

from __future__ import annotations

import time

import pytest

from taskstream.core.config import Settings
from taskstream.core.ids import uuid7

from .conftest import Cluster, query

pytestmark = pytest.mark.slow

INSERT = """
INSERT INTO tasks (id, tenant_id, type, queue, priority, status, payload, max_attempts,
                   timeout_s, run_at, created_at, finished_at)
SELECT '{id}', id, 'examples.noop', 'default', 2, '{status}', '{{}}', 3, 10,
       now() - interval '3 days', now() - interval '3 days', {finished}
FROM tenants WHERE name = 'acme'
"""


def test_the_scheduler_purges_what_retention_let_go(cluster: Cluster, settings: Settings) -> None:
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme", "--retention-days", "2")
    three_days_ago = int((time.time() - 3 * 86_400) * 1000)
    old, waiting = uuid7(three_days_ago), uuid7(three_days_ago)  # ids as the API makes them
    query(settings.database_url, INSERT.format(id=old, status="completed",
                                               finished="now() - interval '3 days'"))  # fmt: skip
    query(settings.database_url, INSERT.format(id=waiting, status="pending", finished="NULL"))
    query(
        settings.database_url,
        f"INSERT INTO task_attempts (task_id, attempt, tenant_id, outcome) SELECT id, 0, "
        f"tenant_id, 'completed' FROM tasks WHERE id = '{old}'",
    )
    cluster.start("scheduler", env={"TASKSTREAM_RETENTION_INTERVAL_S": "0.5"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = query(settings.database_url, f"SELECT count(*) FROM tasks WHERE id = '{old}'")
        if left[0][0] == 0:
            break
        time.sleep(0.2)
    ids = {r[0] for r in query(settings.database_url, "SELECT id::text FROM tasks")}
    assert ids == {str(waiting)}  # the pending one stays, however old
    attempts = query(settings.database_url, f"SELECT count(*) FROM task_attempts "
                                            f"WHERE task_id = '{old}'")  # fmt: skip
    assert attempts[0][0] == 0
