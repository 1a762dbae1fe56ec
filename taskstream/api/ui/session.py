"""Dashboard sessions: an API key in a cookie, checked like a bearer key on every request.

The cookie (``ts_session``, HttpOnly, SameSite=Strict, Secure over https, path ``/ui``, 8 h)
holds a random nonce and the key itself, so every API process can serve a session without
shared state, and every request goes through the API's own key cache (``api/auth.py``): a
revoked or expired key signs the user out within ``TASKSTREAM_API_KEY_CACHE_TTL_S``. Each
request also counts against the tenant's rate limit, as an API call does.

Cross-site requests: SameSite=Strict keeps the cookie off them, and every POST must also come
from this origin (``Origin``, else ``Sec-Fetch-Site``, when the browser sends them) and, once
signed in, carry the session's form token: an HMAC of the nonce under the key, which a page of
another site can neither read nor compute.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request
from litestar.datastructures import Cookie

from ...core.errors import Forbidden, Unauthenticated
from ...core.rbac import Action, allows
from ...store.tenants import Principal

COOKIE = "ts_session"
PATH = "/ui"
MAX_AGE_S = 8 * 3600
TOKEN_FIELD = "csrf"  # noqa: S105 - the form field's name, not a secret
_TOKEN_CONTEXT = b"taskstream dashboard form token:"


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """Who is signed in, and the token their forms carry."""

    who: Principal
    token: str

    def may(self, action: Action) -> bool:
        return allows(self.who.role, action)


class CrossSite(Forbidden):
    """A POST that does not come from a page of this dashboard."""

    code = "cross_site_request"


def _token(key: str, nonce: str) -> str:
    return hmac.new(key.encode(), _TOKEN_CONTEXT + nonce.encode(), hashlib.sha256).hexdigest()


def _parts(request: Request[Any, Any, Any]) -> tuple[str, str] | None:
    """(nonce, key) from the session cookie, if there is one of the right shape."""
    nonce, dot, key = request.cookies.get(COOKIE, "").partition(".")
    return (nonce, key) if dot and nonce and key else None


def _address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def signed_in(request: Request[Any, Any, Any], action: Action = Action.READ) -> Session:
    """The request's session, checked as the REST routes check a key: Unauthenticated without
    a valid one, 429 past the tenant's rate, Forbidden when the role does not allow ``action``."""
    parts = _parts(request)
    if parts is None:
        raise Unauthenticated("sign in with an API key", code="signed_out")
    nonce, key = parts
    state = request.app.state
    who = await state.auth.verify(key, _address(request))
    if state.auth.limits is not None:
        await state.auth.limits.admit_request(who.tenant_id)
    if not allows(who.role, action):
        raise Forbidden(f"role {who.role!r} may not {action.value}", code="forbidden")
    return Session(who=who, token=_token(key, nonce))


async def sign_in(request: Request[Any, Any, Any], key: str) -> Cookie:
    """Verify ``key`` (Unauthenticated if it is not a live key) and make its session cookie."""
    key = key.strip()
    await request.app.state.auth.verify(key, _address(request))
    return _cookie(request, f"{os.urandom(16).hex()}.{key}", MAX_AGE_S)


def signed_out(request: Request[Any, Any, Any]) -> Cookie:
    """A cookie that ends the session in the browser."""
    return _cookie(request, "", 0)


def _cookie(request: Request[Any, Any, Any], value: str, max_age_s: int) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=value,
        path=PATH,
        max_age=max_age_s,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def check_origin(request: Request[Any, Any, Any]) -> None:
    """CrossSite unless the browser says the request comes from this origin. Clients that send
    neither header (scripts, tests) pass; browsers send ``Origin`` with every POST."""
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc != request.headers.get("host"):
            raise CrossSite("this form was sent from another site")
        return
    if request.headers.get("sec-fetch-site", "same-origin") not in {"same-origin", "none"}:
        raise CrossSite("this form was sent from another site")


def check_token(session: Session, given: str | None) -> None:
    """CrossSite unless ``given`` is the session's form token."""
    if given is None or not hmac.compare_digest(given.encode(), session.token.encode()):
        raise CrossSite("this form has expired or was not sent from the dashboard; try again")
