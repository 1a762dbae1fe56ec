"""Named SQL loaded once from ``queries/*.sql`` (``-- name: x`` blocks)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

TASK_COLUMNS = (
    "id, tenant_id, type, queue, priority, status, payload, result, last_error, attempts, "
    "max_attempts, timeout_s, idempotency_key, correlation_id, run_at, created_at, started_at, "
    "finished_at"
)

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _parse(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        # Only our own constant is substituted: never anything from a request.
        out[name] = body.strip().rstrip(";").replace("{task_columns}", TASK_COLUMNS)
    return out


@cache
def load(group: str) -> dict[str, str]:
    """All queries of ``queries/<group>.sql`` by name."""
    text = resources.files(__package__).joinpath("queries", f"{group}.sql").read_text("utf-8")
    return _parse(text)
