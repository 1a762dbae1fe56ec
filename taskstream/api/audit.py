"""`GET /v1/audit`: a tenant's audit log, for its admins (who acts: ``auth.actor``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from ..core.errors import InvalidRequest
from ..core.rbac import Action
from .openapi import BEARER, problems
from .tasks import Cursor, Filter, Limit

Since = Annotated[
    datetime | None, QueryParameter(description="only entries at or after this time (RFC 3339)")
]


class AuditEntryOut(msgspec.Struct, kw_only=True):
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    request_id: str | None


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditEntryOut]
    next_cursor: str | None


@get(
    "/v1/audit",
    summary="The tenant's audit log, newest first (admin; keyset pagination)",
    responses=problems(400, 403),
    security=BEARER,
)
async def list_audit(
    request: Request[Any, Any, Any],
    state: State,
    action: Filter = None,
    actor: Filter = None,
    target: Filter = None,
    since: Since = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AuditPage:
    """Every submission and state-changing call of the tenant: who (`key:<prefix>`,
    `cli:<user>`, `schedule:<name>`), what (`task.submit`, `task.cancel`, `task.retry`,
    `dead_letter.replay`, `breaker.reset`, `schedule.*`, `key.*`, `tenant.*`), on what, when, in
    which request."""
    who = await state.auth.principal(request, Action.ADMIN)
    before = None
    if cursor:
        if not cursor.isdigit() or len(cursor) > 18:
            raise InvalidRequest("malformed cursor", code="invalid_cursor")
        before = int(cursor)
    if since is not None and since.tzinfo is None:
        raise InvalidRequest("since needs a time zone (RFC 3339)", code="invalid_parameter")
    rows = await state.audit.page(
        who.tenant_id, limit=limit, before=before, action=action, actor=actor, target=target,
        since=since,
    )  # fmt: skip
    items = [msgspec.convert(dict(r), AuditEntryOut) for r in rows]
    return AuditPage(items=items, next_cursor=str(items[-1].seq) if len(items) == limit else None)


ROUTES = [list_audit]
