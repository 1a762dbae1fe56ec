"""Named SQL loaded once from ``queries/*.sql`` (``-- name: x`` blocks)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

TASK_COLUMNS = (
    "id, tenant_id, type, queue, priority, status, payload, result, last_error, attempts, "
    "max_attempts, timeout_s, idempotency_key, correlation_id, run_at, created_at, started_at, "
    "finished_at, payload_key, result_key, region"
)

# The audit log's append (issue 13; core/audit.py): after a CTE `entries` (tenant_id, at, actor,
# action, target, request_id, digest, ord), appends them as one block per tenant. The heads are
# locked first, in tenant order, so two writers of the same tenants cannot deadlock; the chain
# and the seq numbers are computed here, under those locks. `logged` returns a row per entry.
AUDIT_CHAIN = """
locked AS MATERIALIZED (
    SELECT h.tenant_id FROM audit_heads h
    WHERE h.tenant_id IN (SELECT tenant_id FROM entries)
    ORDER BY h.tenant_id
    FOR UPDATE
), blocks AS (
    SELECT tenant_id, count(*) AS n, sha256(string_agg(digest, ''::bytea ORDER BY ord)) AS block
    FROM entries GROUP BY tenant_id
), heads AS (
    UPDATE audit_heads h SET seq = h.seq + b.n, chain = sha256(h.chain || b.block)
    FROM blocks b JOIN locked l ON l.tenant_id = b.tenant_id
    WHERE h.tenant_id = b.tenant_id
    RETURNING h.tenant_id, h.seq AS last, h.chain, b.n
), logged AS (
    INSERT INTO audit_log (tenant_id, seq, at, actor, action, target, request_id, digest, chain)
    SELECT e.tenant_id, h.last - h.n + e.k, e.at, e.actor, e.action, e.target, e.request_id,
           e.digest, CASE WHEN e.k = h.n THEN h.chain END
    FROM (SELECT entries.*, row_number() OVER (PARTITION BY tenant_id ORDER BY ord) AS k
          FROM entries) AS e
    JOIN heads h ON h.tenant_id = e.tenant_id
    RETURNING 1
)"""

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _parse(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        # Only our own constant is substituted: never anything from a request.
        body = body.strip().rstrip(";").replace("{task_columns}", TASK_COLUMNS)
        out[name] = body.replace("{audit_chain}", AUDIT_CHAIN.strip())
    return out


@cache
def load(group: str) -> dict[str, str]:
    """All queries of ``queries/<group>.sql`` by name."""
    text = resources.files(__package__).joinpath("queries", f"{group}.sql").read_text("utf-8")
    return _parse(text)
