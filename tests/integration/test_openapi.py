"""The served OpenAPI, the offline docs page, and the fixes made with them: /metrics behind a
token or an admin key, /v1/workers scoped to the tenant, no trailing newline in schedule names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

import taskstream.api.app as app_module
from taskstream.core.config import Settings
from taskstream.worker.runner import Worker

from .conftest import REGISTRY, Tenant

METHODS = ("get", "post", "put", "patch", "delete")
PROBLEM = {"$ref": "#/components/schemas/Problem"}
BODIES = {
    ("/v1/tasks", "post"): "SubmitTask",
    ("/v1/tasks/batch", "post"): "SubmitBatch",
    ("/v1/schedules", "post"): "ScheduleIn",
    ("/v1/schedules/{schedule_id}", "patch"): "SchedulePatch",
    ("/v1/dead-letters/replay", "post"): "ReplayFilter",
}
Client = AsyncTestClient[Any]
Tenants = dict[str, Tenant]
EVERY_MINUTE = {"name": "tick", "cron": "* * * * *", "task": {"type": "examples.noop"}}


async def test_schema_describes_bodies_problems_and_the_bearer_scheme(api: Client) -> None:
    r = await api.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`",
    }
    operations = [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS and (path.startswith("/v1/") or path == "/metrics")
    ]
    assert len(operations) >= 17
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        assert op["security"] == [{"bearer": []}], where
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}
            elif int(status) != 204 and path != "/metrics":
                (schema,) = (c["schema"] for c in response["content"].values())
                assert "$ref" in schema, where  # a Struct, not "a string"
        assert {"400", "401", "429", "503"} <= set(op["responses"]), where
        if method in ("get", "delete"):
            assert "requestBody" not in op, where
        if (path, method) in BODIES:
            assert "requestBody" in op, where
        if "requestBody" in op:
            (schema,) = op["requestBody"]["content"].values()
            assert op["requestBody"]["required"] is True
            assert list(op["requestBody"]["content"]) == ["application/json"], where
            name = schema["schema"]["$ref"].removeprefix("#/components/schemas/")
            assert name == BODIES.get((path, method), name), where
            assert doc["components"]["schemas"][name]["additionalProperties"] is False
            assert {"413", "415", "422"} <= set(op["responses"]), where
    submit = doc["paths"]["/v1/tasks"]["post"]["responses"]
    assert {"200", "201", "409"} <= set(submit)
    for path in ("/healthz", "/readyz"):
        assert "security" not in doc["paths"][path]["get"]


async def test_docs_page_needs_no_network(api: Client) -> None:
    r = await api.get("/schema")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert 'const SCHEMA_URL = "/schema/openapi.json";' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


async def test_schedule_name_may_not_end_in_a_newline(api: Client, tenants: Tenants) -> None:
    acme = tenants["acme"]
    for name in ("tick\n", "tick\r", " tick", ""):
        body = {**EVERY_MINUTE, "name": name}
        r = await api.post("/v1/schedules", json=body, headers=acme.auth())
        assert r.status_code == 422, (name, r.text)
        assert r.json()["code"] == "invalid_body"
    r = await api.post("/v1/schedules", json=EVERY_MINUTE, headers=acme.auth())
    assert r.status_code == 201, r.text


@pytest.fixture
async def metrics_api(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    """An API with a metrics token set."""
    changed = msgspec.structs.replace(settings, metrics_token="scrape-me")
    async with AsyncTestClient(app=app_module.create_app(changed)) as client:
        yield client


async def test_metrics_need_the_token_or_an_admin_key(
    api: Client, metrics_api: Client, tenants: Tenants
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    for tenant, queue in ((acme, "acme-reports"), (globex, "globex-mail")):
        body = {"type": "examples.echo", "payload": {"message": "m"}, "queue": queue}
        assert (await api.post("/v1/tasks", json=body, headers=tenant.auth())).status_code == 201
    refused: dict[str | bytes, tuple[int, str]] = {
        "": (401, "missing_api_key"),
        "Bearer scrape-m": (401, "invalid_api_key"),
        "Basic scrape-me": (401, "missing_api_key"),
        # hmac.compare_digest raises on a str with non-ASCII characters: not a 500.
        "Bearer sçrape-mé".encode("latin-1"): (401, "invalid_api_key"),
        f"Bearer {acme.viewer_key}": (403, "forbidden"),
        f"Bearer {acme.submitter_key}": (403, "forbidden"),
    }
    for header, (status, code) in refused.items():
        raw = header if isinstance(header, bytes) else header.encode()
        r = await metrics_api.get("/metrics", headers={b"authorization": raw} if raw else {})
        assert (r.status_code, r.json()["code"]) == (status, code), header
        assert r.headers["content-type"].startswith("application/problem+json")

    everyone = await metrics_api.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert everyone.status_code == 200
    assert everyone.headers["content-type"].startswith("text/plain")
    assert 'queue="acme-reports"' in everyone.text and 'queue="globex-mail"' in everyone.text
    # Each tenant's depths under its own name (the contract's task_queue_depth{tenant,...}).
    assert 'queue="acme-reports",status="pending",tenant="acme"} 1.0' in everyone.text
    assert 'queue="globex-mail",status="pending",tenant="globex"} 1.0' in everyone.text
    assert 'task_oldest_pending_seconds{queue="globex-mail",tenant="globex"}' in everyone.text
    own = await metrics_api.get("/metrics", headers=acme.auth("admin"))
    assert own.status_code == 200
    assert 'queue="acme-reports"' in own.text and "globex-mail" not in own.text
    assert 'tenant="globex"' not in own.text
    # Without a token configured, only admin keys open it.
    assert (await api.get("/metrics", headers={"Authorization": "Bearer "})).status_code == 401
    assert (await api.get("/metrics", headers=globex.auth())).status_code == 200


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[list[Worker]]:
    """A worker for two named queues and one for every queue (no --queues)."""
    started = [Worker(settings, REGISTRY, queues=["acme-only", "elsewhere"], concurrency=1),
               Worker(settings, REGISTRY, concurrency=1)]  # fmt: skip
    stop = asyncio.Event()
    runs = [asyncio.create_task(w.run(stop)) for w in started]
    await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in started)), 10)
    yield started
    stop.set()
    await asyncio.gather(*runs)


async def test_workers_shown_to_a_tenant_serve_its_queues(
    api: Client, tenants: Tenants, workers: list[Worker]
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    body = {"type": "examples.echo", "payload": {"message": "m"}, "queue": "acme-only"}
    assert (await api.post("/v1/tasks", json=body, headers=acme.auth())).status_code == 201
    dedicated, shared = workers

    async def names(tenant: Tenant) -> dict[str, Any]:
        r = await api.get("/v1/workers", headers=tenant.auth())
        assert r.status_code == 200, r.text
        return {w["name"]: w["queues"] for w in r.json()["items"]}

    assert await names(acme) == {dedicated.name: ["acme-only"], shared.name: None}
    assert await names(globex) == {shared.name: None}
