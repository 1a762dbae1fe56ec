"""`taskstream tasks|queues|workers|dlq|schedules` as a user runs them: real processes (the
API, a worker, each verb) talking over HTTP through `taskstream.client`."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import pytest

from .conftest import Cluster

pytestmark = pytest.mark.slow


@dataclass
class Api:
    cluster: Cluster
    env: dict[str, str]  # TASKSTREAM_URL and TASKSTREAM_API_KEY (an admin's)

    def run(self, *args: str, key: str | None = None) -> tuple[int, str, str]:
        env = self.env if key is None else {**self.env, "TASKSTREAM_API_KEY": key}
        done = self.cluster.run(*args, env=env, timeout_s=60)
        return done.returncode, done.stdout, done.stderr

    def json(self, *args: str) -> object:
        code, out, err = self.run(*args, "--output", "json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def api(cluster: Cluster) -> Api:
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    cluster.start("worker", "--app", "taskstream.examples.tasks", "--concurrency", "4")
    url = cluster.start_api()
    return Api(cluster, {"TASKSTREAM_URL": url, "TASKSTREAM_API_KEY": key})


def test_submit_get_wait_and_list(api: Api) -> None:
    task = api.json("tasks", "submit", "examples.echo", "--payload", '{"message": "hi"}',
                    "--priority", "high", "--idempotency-key", "k1")  # fmt: skip
    assert isinstance(task, dict) and task["status"] in {"pending", "processing", "completed"}
    assert task["priority"] == "high" and task["idempotency_key"] == "k1"
    code, out, err = api.run("tasks", "wait", task["id"], "--timeout", "30")
    assert code == 0, err
    assert "completed" in out and '{"echo":"hi","attempt":1}' in out  # the table's RESULT row
    got = api.json("tasks", "get", task["id"])
    assert isinstance(got, dict) and got["result"] == {"echo": "hi", "attempt": 1}
    again = api.json("tasks", "submit", "examples.echo", "--payload", '{"message": "hi"}',
                     "--priority", "high", "--idempotency-key", "k1")  # fmt: skip
    assert isinstance(again, dict) and again["id"] == task["id"]

    code, out, err = api.run("tasks", "submit", "examples.echo", "--payload", '{"message": "w"}',
                             "--wait", "30")  # fmt: skip
    assert code == 0 and "completed" in out, err
    listed = api.json("tasks", "list", "--status", "completed", "--limit", "0")
    assert isinstance(listed, list) and task["id"] in {t["id"] for t in listed}
    code, out, _ = api.run("tasks", "list", "--limit", "1")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["ID", "TYPE", "QUEUE"] and len(lines) == 2
    attempts = api.json("tasks", "attempts", task["id"])
    assert isinstance(attempts, list) and attempts[0]["outcome"] == "completed"


def test_cancel_retry_dead_letters_and_queues(api: Api) -> None:
    later = api.json("tasks", "submit", "examples.noop", "--delay-s", "600", "--queue", "later")
    assert isinstance(later, dict) and later["status"] == "scheduled"
    cancelled = api.json("tasks", "cancel", later["id"])
    assert isinstance(cancelled, dict) and cancelled["status"] == "cancelled"
    code, _, err = api.run("tasks", "cancel", later["id"])
    assert code == 1 and "invalid_state" in err and "HTTP 409" in err

    doomed = api.json("tasks", "submit", "examples.fail", "--payload", '{"reason": "no"}',
                      "--max-attempts", "1")  # fmt: skip
    assert isinstance(doomed, dict)
    code, out, err = api.run("tasks", "wait", doomed["id"], "--timeout", "30")
    assert code == 1 and "failed" in err and "no" in out
    dead = api.json("dlq", "list")
    assert isinstance(dead, list) and [t["id"] for t in dead] == [doomed["id"]]
    retried = api.json("tasks", "retry", doomed["id"])
    assert isinstance(retried, dict) and retried["status"] == "pending"
    api.run("tasks", "wait", doomed["id"], "--timeout", "30")  # failed again
    code, out, err = api.run("dlq", "replay", "--type", "examples.fail")
    assert code == 0 and "replayed 1 task(s)" in err and doomed["id"] in out
    code, _, err = api.run("dlq", "replay")
    assert code == 2 and "--all" in err

    api.json("tasks", "submit", "examples.noop", "--delay-s", "600", "--queue", "later")
    queues = api.json("queues")
    assert isinstance(queues, list) and {q["queue"]: q["scheduled"] for q in queues} == {
        "default": 0, "later": 1,
    }  # fmt: skip
    code, out, _ = api.run("queues")
    assert code == 0 and out.split()[:3] == ["QUEUE", "CRITICAL", "HIGH"]
    workers = api.json("workers")
    assert isinstance(workers, list) and len(workers) == 1


def test_schedules_pause_and_resume_by_name(api: Api) -> None:
    r = httpx.post(
        f"{api.env['TASKSTREAM_URL']}/v1/schedules",
        json={"name": "nightly", "cron": "0 3 * * *", "task": {"type": "examples.noop"}},
        headers={"Authorization": f"Bearer {api.env['TASKSTREAM_API_KEY']}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    paused = api.json("schedules", "pause", "nightly")
    assert isinstance(paused, dict) and paused["paused"] is True and paused["next_run_at"] is None
    code, out, _ = api.run("schedules", "list")
    header, row = out.splitlines()
    assert code == 0 and header.split()[:3] == ["ID", "NAME", "CRON"]
    assert row.split()[1] == "nightly" and " yes " in row  # PAUSED
    resumed = api.json("schedules", "resume", r.json()["id"])
    assert isinstance(resumed, dict) and resumed["paused"] is False and resumed["next_run_at"]
    code, _, err = api.run("schedules", "pause", "no-such")
    assert code == 1 and "schedule_not_found" in err


def test_errors_usage_and_help(api: Api, cluster: Cluster) -> None:
    code, _, err = api.run("tasks", "get", "01a23f92-94cc-78fb-acbb-8683348e58dd")
    assert code == 1 and "task_not_found" in err and "HTTP 404" in err
    code, _, err = api.run("queues", key="tsk_00000000_wrong")
    assert code == 1 and "HTTP 401" in err
    code, _, err = api.run("tasks", "submit", "no.such.type")
    assert code == 1 and "unknown_task_type" in err
    code, _, err = api.run("tasks", "submit", "examples.echo", "--payload", "[1]")
    assert code == 2 and "JSON object" in err
    done = cluster.run("queues", env={"TASKSTREAM_URL": "", "TASKSTREAM_API_KEY": ""})
    assert done.returncode == 2 and "TASKSTREAM_URL" in done.stderr
    done = cluster.run("queues", "--url", api.env["TASKSTREAM_URL"], env={"TASKSTREAM_API_KEY": ""})
    assert done.returncode == 2 and "TASKSTREAM_API_KEY" in done.stderr
    done = cluster.run("tasks", "frobnicate")
    assert done.returncode == 2 and "invalid choice" in done.stderr
    version = cluster.run("--version")
    assert version.returncode == 0 and version.stdout.startswith("taskstream ")
    for verb in (["tasks", "submit"], ["tasks", "get"], ["tasks", "list"], ["tasks", "cancel"],
                 ["tasks", "retry"], ["tasks", "wait"], ["queues"], ["dlq", "list"],
                 ["dlq", "replay"], ["schedules", "list"], ["schedules", "pause"],
                 ["schedules", "resume"]):  # fmt: skip
        shown = cluster.run(*verb, "--help")
        assert shown.returncode == 0, verb
        assert "TASKSTREAM_URL" in shown.stdout and "TASKSTREAM_API_KEY" in shown.stdout, verb
