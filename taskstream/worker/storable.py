"""What PostgreSQL can store: an attempt's outcome is checked (cheaply) and made storable before
it reaches the completer, so a handler's result or error text can never be the reason its
outcome cannot be written. The completer's own fallback (:func:`refused`) covers the rest."""

from __future__ import annotations

import re

from ..core.models import Finish, TaskStatus
from ..core.outcomes import OutcomeKind

MAX_ERROR_CHARS = 2000
NUL_NOT_STORABLE = "result not storable: contains NUL"
_NUL_ESCAPE = b"\\u0000"
# The escape itself, not a backslash escaped before "u0000": preceded by an even run of them.
_NUL_IN_JSON = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")


def storable_text(text: str | None) -> str | None:
    """An error text PostgreSQL's ``text`` accepts, at most MAX_ERROR_CHARS long: NUL shown as
    ``\\0``, lone surrogates (not UTF-8) as their escapes. A handler's error must never be the
    reason its outcome cannot be written."""
    if text is None:
        return None
    text = text[:MAX_ERROR_CHARS]
    if "\x00" in text:
        text = text.replace("\x00", "\\0")[:MAX_ERROR_CHARS]
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode()[:MAX_ERROR_CHARS]
    return text


def result_problem(encoded: bytes) -> str | None:
    """Why PostgreSQL would refuse this JSON result, or None. jsonb cannot hold the NUL
    character: the substring test is the one check every result pays; the exact test runs only
    when it hits."""
    if _NUL_ESCAPE in encoded and _NUL_IN_JSON.search(encoded):
        return NUL_NOT_STORABLE
    return None


def refused(finish: Finish, exc: BaseException) -> Finish:
    """The outcome PostgreSQL refused, as a failed attempt that says why (no result)."""
    return Finish(
        task_id=finish.task_id,
        lease_epoch=finish.lease_epoch,
        status=TaskStatus.FAILED,
        outcome=str(OutcomeKind.FAIL),
        error=storable_text(f"outcome not storable: {type(exc).__name__}: {exc}"),
        duration_s=finish.duration_s,
    )
