"""`/v1/keys`: a tenant's admins list, create and revoke the tenant's API keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from ..core.errors import Forbidden
from ..core.rbac import Action, may_grant
from ..store.tenants import MAX_EXPIRES_IN_S, KeyInfo
from .auth import actor
from .body import decode_body
from .openapi import BEARER, problems, request_body

Role = Literal["admin", "operator", "submitter", "viewer"]


class KeyOut(msgspec.Struct, kw_only=True):
    """A key as its tenant's admins see it: never the secret."""

    prefix: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None  # accurate to a minute
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, info: KeyInfo) -> KeyOut:
        return msgspec.convert(msgspec.structs.asdict(info), cls)


class KeyList(msgspec.Struct, kw_only=True):
    items: list[KeyOut]


class CreateKey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Role
    expires_in_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_EXPIRES_IN_S)] | None = None
    """Seconds until the key stops working; absent: never."""


class CreatedKey(msgspec.Struct, kw_only=True):
    key: str  # shown this once: only a hash is stored
    prefix: str
    role: Role
    created_at: datetime
    expires_at: datetime | None


@get(
    "/v1/keys",
    summary="The tenant's API keys, never their secrets (admin)",
    responses=problems(403),
    security=BEARER,
)
async def list_keys(request: Request[Any, Any, Any], state: State) -> KeyList:
    who = await state.auth.principal(request, Action.MANAGE_KEYS)
    return KeyList(items=[KeyOut.of(k) for k in await state.auth.tenants.list_keys(who.tenant_id)])


@post(
    "/v1/keys",
    summary="Create an API key of the tenant, shown this once (admin)",
    status_code=201,
    opt=request_body(CreateKey),
    responses=problems(400, 403, 413, 415, 422),
    security=BEARER,
)
async def create_key(request: Request[Any, Any, Any], state: State) -> CreatedKey:
    who = await state.auth.principal(request, Action.MANAGE_KEYS)
    body = await decode_body(request, CreateKey)
    if not may_grant(who.role, body.role):
        raise Forbidden(f"role {who.role!r} may not create {body.role!r} keys", code="forbidden")
    issued = await state.auth.tenants.issue_key(
        who.tenant_id, body.role, expires_in_s=body.expires_in_s,
        by=actor(who, request, datetime.now(UTC)),
    )  # fmt: skip
    info = issued.info
    return CreatedKey(
        key=issued.key,
        prefix=info.prefix,
        role=body.role,
        created_at=info.created_at,
        expires_at=info.expires_at,
    )


@delete(
    "/v1/keys/{prefix:str}",
    summary="Revoke an API key of the tenant (admin)",
    status_code=204,
    responses=problems(403, 404),
    security=BEARER,
)
async def revoke_key(request: Request[Any, Any, Any], state: State, prefix: FromPath[str]) -> None:
    """Refused by every API process within `TASKSTREAM_API_KEY_CACHE_TTL_S`, by this one at
    once. Another tenant's prefix answers 404, like a missing one."""
    who = await state.auth.principal(request, Action.MANAGE_KEYS)
    await state.auth.tenants.revoke_key(
        who.tenant_id, prefix, by=actor(who, request, datetime.now(UTC))
    )
    state.auth.forget(prefix)


ROUTES = [list_keys, create_key, revoke_key]
