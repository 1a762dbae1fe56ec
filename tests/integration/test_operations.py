"""GET /v1/queues and GET /v1/workers."""

from __future__ import annotations


async def test_queue_depths(api, tenants) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    body = {
        "tasks": [
            {"type": "examples.echo", "payload": {"message": "a"}, "priority": "critical"},
            {"type": "examples.echo", "payload": {"message": "b"}, "priority": "low"},
            {
                "type": "examples.echo",
                "payload": {"message": "c"},
                "priority": "low",
                "queue": "reports",
            },
            {"type": "examples.echo", "payload": {"message": "d"}, "delay_s": 600},
        ]
    }
    assert (await api.post("/v1/tasks/batch", json=body, headers=acme.auth())).status_code == 201
    queues = (await api.get("/v1/queues", headers=acme.auth("viewer"))).json()["items"]
    assert [q["queue"] for q in queues] == ["default", "reports"]
    default = queues[0]
    assert default["pending"] == {"critical": 1, "high": 0, "normal": 0, "low": 1}
    assert (default["scheduled"], default["processing"], default["dead"]) == (1, 0, 0)
    assert default["oldest_pending_age_s"] >= 0
    assert queues[1]["pending"]["low"] == 1
    assert (await api.get("/v1/queues", headers=globex.auth())).json()["items"] == []


async def test_workers_listed_while_alive(api, tenants, start_worker) -> None:
    acme = tenants["acme"]
    worker = await start_worker(concurrency=7)
    assert (await api.get("/v1/workers", headers=acme.auth("viewer"))).status_code == 403
    items = (await api.get("/v1/workers", headers=acme.auth())).json()["items"]
    assert [(w["name"], w["concurrency"], w["degraded"]) for w in items] == [
        (worker.name, 7, False)
    ]


async def test_metrics(api, tenants) -> None:
    acme = tenants["acme"]
    body = {
        "tasks": [
            {
                "type": "examples.echo",
                "payload": {"message": "m"},
                "priority": "high",
                "queue": "metrics-q",
            }
        ]
        * 3
    }
    assert (await api.post("/v1/tasks/batch", json=body, headers=acme.auth())).status_code == 201
    await api.post("/v1/tasks", json={"type": "no.such"}, headers=acme.auth())
    text = (await api.get("/metrics", headers=acme.auth("admin"))).text
    depth = 'task_queue_depth{priority="high",queue="metrics-q",status="pending",tenant="acme"}'
    assert f"{depth} 3.0" in text
    assert "dead_letter_depth 0.0" in text
    assert 'http_problems_total{code="unknown_task_type",status="422"}' in text
    assert "tasks_submitted_total" in text
