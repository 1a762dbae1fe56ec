"""The Litestar application: wiring of stores, broker, catalog, intake and routes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any

from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from ..broker.breakers import Breakers
from ..broker.connection import connect
from ..broker.keys import Keys
from ..broker.producer import Producer
from ..broker.rate import RateBuckets
from ..core.config import Settings
from ..core.crypto import keyring
from ..core.errors import BrokerUnavailable, StoreUnavailable
from ..store.audit import AuditStore
from ..store.database import acquire, create_pool
from ..store.notifications import listen
from ..store.schedules import LeaseStore, ScheduleStore
from ..store.task_types import CHANNEL, TaskTypeStore
from ..store.tasks import TaskStore
from ..store.tenants import TenantStore
from ..store.workers import WorkerStore
from . import ui
from .audit import ROUTES as AUDIT_ROUTES
from .auth import Authenticator
from .breakers import ROUTES as BREAKER_ROUTES
from .catalog import Catalog
from .dead_letters import ROUTES as DEAD_LETTER_ROUTES
from .intake import Intake
from .keys import ROUTES as KEY_ROUTES
from .limits import Backlog, Limits, RateLimiter, add_rate_headers
from .observe import Observe
from .openapi import openapi_config
from .operations import ROUTES as OPERATION_ROUTES
from .problems import EXCEPTION_HANDLERS
from .schedules import ROUTES as SCHEDULE_ROUTES
from .schemas import Leader, Readiness, ReadyStatus
from .tasks import ROUTES as TASK_ROUTES

INTAKE_POOL_SIZE = 4  # group commit: few inserts are in flight at once


@get("/healthz", summary="Liveness", include_in_schema=True)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/readyz",
    summary="Readiness: PostgreSQL and Redis reachable",
    responses={503: ResponseSpec(Readiness, description="PostgreSQL unreachable")},
)
async def readyz(state: State) -> Response[Readiness]:
    checks: dict[str, str] = {}
    leaders: dict[str, Leader] = {}
    try:
        async with acquire(state.pool) as conn:
            await conn.fetchval("SELECT 1")
        checks["postgresql"] = "ok"
        for lease in await state.leases.status():
            leaders[lease["name"]] = Leader(
                leader=lease["holder"], epoch=lease["epoch"],
                lease_expires_in_s=round(lease["expires_in_s"], 3),
            )  # fmt: skip
    except StoreUnavailable as exc:
        checks["postgresql"] = str(exc)
    try:
        await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["redis"] = str(BrokerUnavailable(type(exc).__name__))
    # Without Redis the API still accepts tasks (they are published later), so only PostgreSQL
    # decides readiness; a Redis outage shows as "degraded".
    ready = checks["postgresql"] == "ok"
    status: ReadyStatus = "ready" if all(v == "ok" for v in checks.values()) else "degraded"
    body = Readiness(status=status if ready else "unavailable", checks=checks, leaders=leaders)
    return Response(body, status_code=200 if ready else 503)


def create_app(settings: Settings) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        state = app.state
        state.settings = settings
        # Both pools are tenant-scoped: Row-Level Security holds every API statement to the
        # tenants it names (migration 0010), a second time after each query's own filter.
        state.pool = await create_pool(
            settings.database_url,
            min_size=2,
            max_size=settings.db_pool_size,
            tenant_scoped=True,
        )
        state.redis = connect(settings.redis_url)
        state.breakers = Breakers.of(state.redis, settings)  # handlers' dependencies
        state.tasks = TaskStore(
            state.pool,
            idempotency_ttl_s=settings.idempotency_ttl_s,
            keys=keyring(settings.encryption_keys),
        )
        tenants = TenantStore(state.pool)
        state.limits = Limits(
            tenants,
            RateLimiter(RateBuckets(state.redis, Keys(settings.redis_prefix))),
            Backlog(state.tasks.count_waiting),
            default_rate=settings.tenant_rate_limit,
            default_max_pending=settings.tenant_max_pending,
            ttl_s=settings.api_key_cache_ttl_s,
        )
        state.auth = Authenticator(
            tenants,
            settings.api_key_cache_ttl_s,
            settings.auth_failures_per_minute,
            limits=state.limits,
        )
        state.catalog = Catalog(TaskTypeStore(state.pool))
        state.schedules = ScheduleStore(state.pool)
        state.audit = AuditStore(state.pool)
        state.leases = LeaseStore(state.pool)
        state.workers = WorkerStore(state.pool)
        # Submissions insert through a pool of their own that keeps cached plans: planning
        # every INSERT cost about a tenth of single-submit capacity, and an insert cannot scan.
        state.intake_pool = await create_pool(
            settings.database_url,
            min_size=1,
            max_size=INTAKE_POOL_SIZE,
            custom_plans=False,
            tenant_scoped=True,
        )
        intake_store = TaskStore(
            state.intake_pool,
            idempotency_ttl_s=settings.idempotency_ttl_s,
            keys=keyring(settings.encryption_keys),
        )
        names = TenantStore(state.intake_pool).names  # streams are named by tenant name
        state.intake = Intake(
            intake_store, Producer(state.redis, Keys(settings.redis_prefix), names)
        )
        await state.catalog.reload()
        close_listener = await listen(state.pool, CHANNEL, state.catalog.invalidate)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # best effort: the relay covers what is left
                await state.intake.close()
            with contextlib.suppress(Exception):  # last-used times still waiting
                await state.auth.aclose()
            await close_listener()
            await state.redis.aclose()
            await state.intake_pool.close()
            await state.pool.close()

    handlers: list[Any] = [
        healthz,
        readyz,
        *TASK_ROUTES,
        *DEAD_LETTER_ROUTES,
        *SCHEDULE_ROUTES,
        *OPERATION_ROUTES,
        *KEY_ROUTES,
        *AUDIT_ROUTES,
        *BREAKER_ROUTES,
        *ui.routers(),  # the dashboard at /ui (api/ui/): pages, outside the OpenAPI document
    ]
    app = Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        # Every response to a tenant's request says where its rate limit stands (api/limits.py).
        after_request=add_rate_headers,
        request_max_body_size=settings.max_request_bytes,
        openapi_config=openapi_config(version("taskstream")),
        template_config=ui.templates(),
        debug=False,
    )
    # Outside Litestar's own layers, so 404s and problems are counted and carry the id too.
    app.asgi_handler = Observe(app.asgi_handler, counting=settings.metrics)
    return app
