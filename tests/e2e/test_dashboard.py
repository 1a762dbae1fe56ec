"""The dashboard in a real browser, as a person uses it (issue 15): Playwright driving Debian's
Chromium (never a downloaded one) against real API, worker and scheduler processes.

A task fails into the dead-letter queue for a missing table; the table is then created (the
fix), and the person signs in, finds the failed task, reads its attempts, replays it and sees it
complete. Every page is saved as a screenshot in ``.taskstream/screenshots/`` (ignored by git);
with ``TASKSTREAM_DOCS_SCREENSHOT=1`` the queues page is also written to
``docs/img/dashboard.png`` for the README.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskstream.core.config import Settings

from .conftest import Cluster, query, wait_until

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".taskstream" / "screenshots"
DOCS_IMAGE = ROOT / "docs" / "img" / "dashboard.png"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
EFFECTS_DDL = (
    "CREATE TABLE test_effects (id bigserial PRIMARY KEY, task_id uuid NOT NULL,"
    " value int NOT NULL, lease_epoch bigint NOT NULL)"
)


def _install_chromium() -> str | None:
    """Install Debian's chromium if it is missing; why not, when it cannot be."""
    if CHROMIUM.exists():
        return None
    if os.geteuid() != 0:
        return "chromium is not installed and installing it needs root"
    if shutil.which("apt-get") is None:
        return "chromium is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    for step in ([], [["apt-get", "update"]]):  # a fresh machine may have no package lists
        for command in step:
            subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
        done = subprocess.run(install, env=env, capture_output=True, timeout=600, check=False)
        if done.returncode == 0 and CHROMIUM.exists():
            return None
    return f"apt-get could not install chromium: {done.stderr.decode()[-300:]}"


@pytest.fixture(scope="session")
def chromium() -> Path:
    why = _install_chromium()
    if why is not None:
        print(f"skipping the browser tests: {why}")
        pytest.skip(why)
    return CHROMIUM


@pytest.fixture
def open_page(chromium: Path, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens a page of a fresh Chromium profile; console errors (a CSP refusal, say) are
    collected in ``page.errors``. Called once the stack is up: Playwright's sync API runs an
    event loop in this thread, and the helpers of conftest run their own."""
    from playwright.sync_api import sync_playwright

    with contextlib.ExitStack() as stack:

        def open_() -> Any:
            p = stack.enter_context(sync_playwright())
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=str(chromium), headless=True,
                args=FLAGS, viewport={"width": 1366, "height": 860},
            )  # fmt: skip
            stack.callback(context.close)
            page = context.new_page()
            page.errors = []
            page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.set_default_timeout(15_000)
            return page

        yield open_


def _stack(cluster: Cluster, settings: Settings) -> tuple[str, dict[str, str]]:
    """API, worker (queue `default` only: other queues keep a backlog to show) and scheduler;
    an admin key of tenant acme."""
    cluster.cli("migrate")
    cluster.cli("tenant", "create", "acme")
    key = cluster.cli("key", "create", "--tenant", "acme", "--role", "admin").strip()
    cluster.start("worker", "--app", "testapp", "--app", "taskstream.examples.tasks",
                  "--queues", "default", "--concurrency", "4")  # fmt: skip
    cluster.start("scheduler")
    wait_until(lambda: bool(query(settings.database_url, "SELECT 1 FROM task_types")), 30, "types")
    return cluster.start_api(), {"Authorization": f"Bearer {key}"}


def _submit(url: str, auth: dict[str, str], tasks: list[dict[str, Any]]) -> list[str]:
    r = httpx.post(f"{url}/v1/tasks/batch", headers=auth, json={"tasks": tasks}, timeout=10)
    assert r.status_code == 201, r.text
    return [item["task"]["id"] for item in r.json()["items"]]


def _some_work(url: str, auth: dict[str, str]) -> str:
    """A backlog, finished and failed tasks, a schedule; the id of the task to rescue."""
    (doomed,) = _submit(url, auth, [{"type": "test.effect", "payload": {"value": 7},
                                     "max_attempts": 1}])  # fmt: skip
    echo = {"type": "examples.echo", "payload": {"message": "hello"}}
    _submit(url, auth, [echo] * 12 + [{"type": "examples.fail"}] * 2)
    backlog = [{**echo, "queue": q, "priority": p} for q, p, n in
               [("emails", "high", 7), ("emails", "normal", 23), ("reports", "low", 4),
                ("reports", "critical", 1)] for _ in range(n)]  # fmt: skip
    _submit(url, auth, [*backlog, {**echo, "queue": "emails", "delay_s": 3600}])
    nightly = {"name": "nightly-report", "cron": "0 3 * * *", "task": {"type": "examples.noop"}}
    every = {"name": "heartbeat", "cron": "* * * * *", "task": {"type": "examples.noop"}}
    for schedule in (nightly, every):
        assert httpx.post(f"{url}/v1/schedules", headers=auth, json=schedule).status_code == 201

    def status(task_id: str) -> str:
        r = httpx.get(f"{url}/v1/tasks/{task_id}", headers=auth, timeout=5)
        return str(r.json()["status"])

    wait_until(lambda: status(doomed) == "failed", 30, "the task to fail")
    return doomed


def _shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_a_person_rescues_a_failed_task(
    cluster: Cluster, settings: Settings, open_page: Callable[[], Any]
) -> None:
    from playwright.sync_api import expect

    url, auth = _stack(cluster, settings)
    doomed = _some_work(url, auth)
    query(settings.database_url, EFFECTS_DDL)  # the fix: the table the task writes to
    page = open_page()

    # Signing in: the dashboard sends a stranger to the sign-in form first.
    page.goto(f"{url}/ui")
    expect(page).to_have_url(f"{url}/ui/sign-in?next=%2Fui")
    _shot(page, "sign-in")
    page.get_by_label("API key").fill(auth["Authorization"].removeprefix("Bearer "))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    expect(page.get_by_role("row", name="emails")).to_contain_text("23")
    page.keyboard.press("Tab")  # keyboard users meet the skip link first
    expect(page.locator("a.skip")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    queues = _shot(page, "queues")
    if os.environ.get("TASKSTREAM_DOCS_SCREENSHOT") == "1":
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(queues, DOCS_IMAGE)

    # Finding the failed task in the dead-letter queue, and why it failed.
    page.get_by_role("link", name="Dead letters", exact=True).click()
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    _shot(page, "dead-letters")
    page.locator(f'a[href="/ui/tasks/{doomed}"]').click()
    expect(page.locator("#task-status")).to_have_text("failed")
    attempt = page.locator("#live pre.error").last
    expect(attempt).to_contain_text("test_effects")
    _shot(page, "task-failed")

    # Replaying it, and watching it complete (the page refreshes itself).
    page.get_by_role("button", name="Replay this task").click()
    expect(page.get_by_role("status")).to_contain_text("Replayed")
    expect(page.locator("#task-status")).to_have_text("completed", timeout=30_000)
    expect(page.locator("pre.json").last).to_contain_text('"value": 7')
    _shot(page, "task-completed")

    # The other pages, with a filter and a search by id.
    page.get_by_role("link", name="Tasks", exact=True).click()
    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{url}/ui/tasks?status=completed&type=&queue=")
    expect(page.locator(f'a[href="/ui/tasks/{doomed}"]')).to_be_visible()
    _shot(page, "tasks")
    page.get_by_label("Task id").fill(doomed)
    page.get_by_label("Task id").press("Enter")
    expect(page).to_have_url(f"{url}/ui/tasks/{doomed}")
    for name in ("Schedules", "Workers"):
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", name=name)).to_be_visible()
        _shot(page, name.lower())
    expect(page.get_by_role("row").nth(1)).to_contain_text("ok")
    page.get_by_role("link", name="Schedules", exact=True).click()
    page.get_by_role("row", name="heartbeat").get_by_role("button", name="Pause").click()
    expect(page.get_by_role("row", name="heartbeat")).to_contain_text("paused")
    assert page.errors == []  # no script error, nothing the page's CSP refused

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_the_api_docs_work_offline(
    cluster: Cluster, settings: Settings, open_page: Callable[[], Any]
) -> None:
    """/schema loads nothing from another host: with every other host cut off it still lists
    the routes."""
    from playwright.sync_api import expect

    cluster.cli("migrate")
    url = cluster.start_api()
    page = open_page()
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{url}/schema")
    expect(page.locator("#ops")).to_contain_text("/v1/tasks")
    assert outside == []
    _shot(page, "api-docs")
