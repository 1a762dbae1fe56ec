-- The audit log (issue 13): appends, pages for GET /v1/audit, and the reads of `audit verify`.

-- name: append
-- Entries of one call (or several): $1-$7 column arrays, one block per tenant.
WITH entries AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::bytea[])
           WITH ORDINALITY AS e(tenant_id, at, actor, action, target, request_id, digest, ord)
), {audit_chain}
SELECT count(*) FROM logged;

-- name: page
-- Newest first, keyset on seq ($3: before this seq, NULL: from the newest); filters $4-$7.
SELECT seq, at, actor, action, target, request_id FROM audit_log
WHERE tenant_id = $1
  AND ($3::bigint IS NULL OR seq < $3)
  AND ($4::text IS NULL OR action = $4)
  AND ($5::text IS NULL OR actor = $5)
  AND ($6::text IS NULL OR target = $6)
  AND ($7::timestamptz IS NULL OR at >= $7)
ORDER BY seq DESC
LIMIT $2;

-- name: heads
SELECT tenant_id, seq, chain FROM audit_heads WHERE $1::uuid IS NULL OR tenant_id = $1
ORDER BY tenant_id;

-- name: rows
SELECT tenant_id, seq, at, actor, action, target, request_id, digest, chain FROM audit_log
WHERE tenant_id = $1 ORDER BY seq;
