"""The dashboard at /ui: sign-in and the session cookie, cross-site defences, roles, tenant
isolation, every page with real data, escaping, and bad input as 4xx pages."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from taskstream.store.tenants import split_key

from .conftest import Tenant, new_task
from .test_dead_letters import fail_tasks

Client = AsyncTestClient[Any]
TOKEN = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
HOSTILE_TYPE = '<script>alert("type")</script>'
HOSTILE_TEXT = "</pre><img src=x onerror=alert(1)>"


async def sign_in(api: Client, key: str) -> str:
    """Sign ``api`` in with ``key``; the session's form token."""
    r = await api.post("/ui/sign-in", data={"key": key, "next": "/ui"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/ui"
    page = await api.get("/ui")
    assert page.status_code == 200
    match = TOKEN.search(page.text)
    assert match
    return match.group(1)


@pytest.fixture
def ui(api: Client) -> Client:
    """The API client, not following redirects: where they go is what is tested."""
    api.follow_redirects = False
    return api


def html(r: Any) -> str:
    assert r.headers["content-type"].startswith("text/html"), r.headers
    return str(r.text)


async def test_sign_in_sets_a_strict_httponly_cookie_and_signs_out(
    ui: Client, tenants: dict[str, Tenant]
) -> None:
    r = await ui.get("/ui/tasks")
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/sign-in?next=%2Fui%2Ftasks"
    form = await ui.get("/ui/sign-in?next=/ui/tasks")
    assert 'type="password"' in html(form) and 'value="/ui/tasks"' in form.text

    r = await ui.post("/ui/sign-in", data={"key": tenants["acme"].key, "next": "/ui/tasks"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/tasks"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("ts_session=")
    for flag in ("httponly", "samesite=strict", "path=/ui", "max-age=28800"):
        assert flag in cookie.lower(), cookie
    assert "Secure" not in cookie  # plain http here; over https it is set (below)
    page = await ui.get("/ui")
    assert page.status_code == 200 and "acme" in html(page) and ">admin<" in page.text
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Cache-Control"):
        assert name.lower() in page.headers

    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    r = await ui.post("/ui/sign-out", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/ui/sign-in?reason=signed-out"
    assert 'ts_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert (await ui.get("/ui")).status_code == 303

    secure = await ui.post("https://testserver.local/ui/sign-in", data={"key": tenants["acme"].key})
    assert secure.status_code == 303 and "Secure" in secure.headers["set-cookie"]


async def test_a_bad_key_is_refused_and_a_revoked_key_signs_out(
    ui: Client, tenants: dict[str, Tenant]
) -> None:
    acme = tenants["acme"]
    for bad in ("nonsense", acme.key[:-4] + "zzzz"):
        r = await ui.post("/ui/sign-in", data={"key": bad})
        assert r.status_code == 401
        assert "Not signed in" in html(r) and "set-cookie" not in r.headers
    assert (await ui.post("/ui/sign-in", data={"key": " "})).status_code == 400

    await sign_in(ui, acme.viewer_key)
    prefix = split_key(acme.viewer_key)[0]  # type: ignore[index]
    assert (await ui.delete(f"/v1/keys/{prefix}", headers=acme.auth())).status_code == 204
    live = await ui.get("/ui", headers={"X-UI-Live": "1"})
    assert live.status_code == 401  # ui.js reloads the page on this
    r = await ui.get("/ui")
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/sign-in?next=%2Fui&reason=expired"
    assert "Max-Age=0" in r.headers["set-cookie"]
    assert "no longer valid" in (await ui.get(r.headers["location"])).text


async def test_cross_site_posts_are_refused(ui: Client, tenants: dict[str, Tenant]) -> None:
    acme = tenants["acme"]
    evil = {"Origin": "https://evil.example"}
    r = await ui.post("/ui/sign-in", data={"key": acme.key}, headers=evil)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    token = await sign_in(ui, acme.key)
    cases = [
        ({"csrf": token}, evil),
        ({"csrf": token}, {"Origin": "null"}),
        ({"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
        ({}, {}),  # no token
        ({"csrf": "0" * 64}, {}),  # another token
    ]
    for form, headers in cases:
        r = await ui.post("/ui/dead-letters/replay", data={**form, "all": "1"}, headers=headers)
        assert r.status_code == 403, (form, headers)
        assert "another site" in html(r) or "expired" in r.text
    same = {"Origin": "http://testserver.local", "Sec-Fetch-Site": "same-origin"}
    r = await ui.post("/ui/dead-letters/replay", data={"csrf": token, "all": "1"}, headers=same)
    assert r.status_code == 303 and r.headers["location"] == "/ui/dead-letters?replayed=0"


async def test_viewers_see_but_cannot_replay(
    ui: Client, tenants: dict[str, Tenant], start_worker: Any, pool: Any, until: Any
) -> None:
    acme = tenants["acme"]
    await start_worker()
    (tid,) = await fail_tasks(ui, acme, 1, until, pool)
    token = await sign_in(ui, acme.viewer_key)
    page = html(await ui.get("/ui/dead-letters"))
    assert tid in page and "can look but not replay" in page and "Replay selected" not in page
    assert "Replay this task" not in html(await ui.get(f"/ui/tasks/{tid}"))
    assert 'href="/ui/workers"' not in page
    assert (await ui.get("/ui/workers")).status_code == 403
    r = await ui.post(f"/ui/tasks/{tid}/retry", data={"csrf": token})
    assert r.status_code == 403 and "may not operate" in html(r)
    r = await ui.post("/ui/dead-letters/replay", data={"csrf": token, "ids": tid})
    assert r.status_code == 403
    assert await pool.fetchval("SELECT status FROM tasks WHERE id = $1", UUID(tid)) == "failed"


async def test_another_tenants_task_is_not_found(
    ui: Client, tenants: dict[str, Tenant], store: Any
) -> None:
    (theirs,) = await store.insert_many([new_task(tenants["globex"].id)])
    token = await sign_in(ui, tenants["acme"].key)
    r = await ui.get(f"/ui/tasks/{theirs.task.id}")
    assert r.status_code == 404 and "task not found" in html(r)
    assert str(theirs.task.id) not in (await ui.get("/ui/tasks")).text
    r = await ui.post(f"/ui/tasks/{theirs.task.id}/retry", data={"csrf": token})
    assert r.status_code == 404


async def test_every_page_renders_with_real_data_and_replays_work(
    ui: Client, tenants: dict[str, Tenant], start_worker: Any, pool: Any, until: Any
) -> None:
    acme = tenants["acme"]
    await start_worker()
    dead = await fail_tasks(ui, acme, 3, until, pool)
    done = await ui.post(
        "/v1/tasks", json={"type": "examples.echo", "payload": {"message": "hi"}, "queue": "mail"},
        headers=acme.auth(),
    )  # fmt: skip
    done_id = done.json()["id"]
    schedule = {"name": "nightly", "cron": "0 3 * * *", "task": {"type": "examples.noop"}}
    r = await ui.post("/v1/schedules", json=schedule, headers=acme.auth())
    assert r.status_code == 201
    schedule_id = r.json()["id"]

    async def echoed() -> bool:
        return (await ui.get(f"/v1/tasks/{done_id}", headers=acme.auth())).json()[
            "status"
        ] == "completed"

    await until(echoed)
    token = await sign_in(ui, acme.key)

    queues = html(await ui.get("/ui"))
    assert ">default<" in queues and ">mail<" in queues and "Failed, last hour" in queues
    assert "100.0 %" in queues and "0.0 %" in queues  # default: 3 failed of 3; mail: 0 of 1
    tasks = html(await ui.get("/ui/tasks"))
    assert all(t in tasks for t in (*dead, done_id))
    failed_only = html(await ui.get("/ui/tasks", params={"status": "failed", "queue": "default"}))
    assert done_id not in failed_only and dead[0] in failed_only
    found = await ui.get("/ui/tasks", params={"id": f" {done_id} "})
    assert found.status_code == 303 and found.headers["location"] == f"/ui/tasks/{done_id}"
    page = html(await ui.get(f"/ui/tasks/{done_id}"))
    assert '"echo": "hi"' in page.replace("&#34;", '"') and "completed" in page
    page = html(await ui.get(f"/ui/tasks/{dead[0]}"))
    assert '<pre class="error">boom' in page and "Replay this task" in page
    assert "nightly" in html(await ui.get("/ui/schedules"))
    assert "/ui/schedules/" in (await ui.get("/ui/schedules")).text
    assert "ok</span>" in html(await ui.get("/ui/workers"))
    live = await ui.get("/ui/dead-letters", headers={"X-UI-Live": "1"})
    assert live.status_code == 200 and "<html" not in live.text and dead[1] in live.text

    r = await ui.post(f"/ui/tasks/{dead[0]}/retry", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == f"/ui/tasks/{dead[0]}?notice=replayed"
    assert "Replayed: the task is pending again." in (await ui.get(r.headers["location"])).text
    r = await ui.post("/ui/dead-letters/replay", data={"csrf": token, "ids": [dead[1], dead[2]]})
    assert r.headers["location"] == "/ui/dead-letters?replayed=2"
    assert "Replayed 2 tasks" in (await ui.get(r.headers["location"])).text
    r = await ui.post(f"/ui/tasks/{done_id}/retry", data={"csrf": token})
    assert r.status_code == 409 and "only failed tasks" in html(r)

    r = await ui.post(f"/ui/schedules/{schedule_id}/pause", data={"csrf": token})
    assert r.status_code == 303
    got = (await ui.get(f"/v1/schedules/{schedule_id}", headers=acme.auth())).json()
    assert got["paused"] is True
    assert "Resume" in (await ui.get("/ui/schedules")).text
    await ui.post(f"/ui/schedules/{schedule_id}/resume", data={"csrf": token})
    got = (await ui.get(f"/v1/schedules/{schedule_id}", headers=acme.auth())).json()
    assert got["paused"] is False
    audit = (await ui.get("/v1/audit", headers=acme.auth())).json()["items"]
    actions = {e["action"] for e in audit}
    assert {"task.retry", "dead_letter.replay", "schedule.pause", "schedule.resume"} <= actions


async def test_hostile_text_is_escaped(ui: Client, tenants: dict[str, Tenant], store: Any) -> None:
    acme = tenants["acme"]
    payload = msgspec.json.encode({"html": HOSTILE_TEXT, HOSTILE_TYPE: 1})
    (row,) = await store.insert_many(
        [new_task(acme.id, type=HOSTILE_TYPE, queue="q<b>", payload_json=payload)]
    )
    await sign_in(ui, acme.key)
    for path in ("/ui", "/ui/tasks", f"/ui/tasks/{row.task.id}", "/ui/tasks?type=%3Cscript%3E"):
        page = html(await ui.get(path))
        assert "<script>alert" not in page and "<img src=x" not in page and "<b>" not in page
    page = (await ui.get(f"/ui/tasks/{row.task.id}")).text
    assert "&lt;script&gt;alert(&#34;type&#34;)&lt;/script&gt;" in page
    assert "&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;" in page


async def test_bad_input_is_a_4xx_page(ui: Client, tenants: dict[str, Tenant]) -> None:
    token = await sign_in(ui, tenants["acme"].key)
    cases = {
        "/ui/tasks/not-a-uuid": 404,
        "/ui/tasks/0193a1f2-7c4e-7d1a-9b2c-3d4e5f607182": 404,
        "/ui/tasks?id=zzz": 400,
        "/ui/tasks?status=bogus": 400,
        "/ui/tasks?cursor=nope": 400,
        "/ui/tasks?type=%00": 400,
        "/ui/tasks?queue=" + "q" * 201: 400,
        "/ui/dead-letters?replayed=-1": 400,
        "/ui/sign-in?next=" + "n" * 501: 400,
    }
    for path, status in cases.items():
        r = await ui.get(path)
        assert r.status_code == status, (path, r.text)
        assert "<h1>" in html(r)
    posts = {
        "/ui/tasks/nope/retry": 404,
        "/ui/schedules/nope/pause": 404,
        "/ui/dead-letters/replay": 400,  # nothing selected
    }
    for path, status in posts.items():
        assert (await ui.post(path, data={"csrf": token})).status_code == status, path
    r = await ui.post("/ui/dead-letters/replay", data={"csrf": token, "ids": "x"})
    assert r.status_code == 400
    # An open redirect after sign-in is not possible: anything but a /ui path goes to /ui.
    for target in (
        "https://evil.example/ui",
        "//evil.example/ui",
        "/v1/tasks",
        "/\\evil",
        "/ui\r\nSet-Cookie: a=b",
        "/ui/tasks é",
    ):
        r = await ui.post("/ui/sign-in", data={"key": tenants["acme"].key, "next": target})
        assert r.headers["location"] == "/ui", target


async def test_pages_stay_out_of_the_schema_and_assets_are_served(ui: Client) -> None:
    doc = (await ui.get("/schema/openapi.json")).json()
    assert not [p for p in doc["paths"] if p.startswith("/ui")]
    css = await ui.get("/ui/static/ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = await ui.get("/ui/static/ui.js")
    assert js.status_code == 200 and "X-UI-Live" in js.text
    assert (await ui.get("/ui/static/../app.py")).status_code == 404
