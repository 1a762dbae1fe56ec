-- name: create_tenant
-- $3-$5, $7: NULL for the deployment default (rate limit, max pending, retention) or no cap
-- (concurrency).
INSERT INTO tenants (id, name, rate_limit, max_pending, max_concurrency, weight, retention_days,
                     region)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (name) DO NOTHING
RETURNING id;

-- name: tenant_by_name
SELECT id, name FROM tenants WHERE name = $1;

-- name: update_tenant
-- One statement, so two operators changing different limits at once both keep their change.
-- $2/$4/$6: whether rate_limit/max_pending/max_concurrency are changed ($3/$5/$7, NULL: the
-- default or no cap); $8: the new weight, NULL to keep it; $9/$10: retention_days, as the first.
UPDATE tenants SET
    rate_limit = CASE WHEN $2 THEN $3::integer ELSE rate_limit END,
    max_pending = CASE WHEN $4 THEN $5::bigint ELSE max_pending END,
    max_concurrency = CASE WHEN $6 THEN $7::integer ELSE max_concurrency END,
    weight = coalesce($8::integer, weight),
    retention_days = CASE WHEN $9 THEN $10::integer ELSE retention_days END,
    region = CASE WHEN $11 THEN $12::text ELSE region END
WHERE name = $1
RETURNING id, name, created_at, rate_limit, max_pending, max_concurrency, weight, retention_days,
    region;

-- name: list_tenants
SELECT id, name, created_at, rate_limit, max_pending, max_concurrency, weight, retention_days,
       region
FROM tenants ORDER BY name;

-- name: tenant_limits
-- On the API's tenant-scoped pool: Row-Level Security shows only its own tenant's row.
SELECT rate_limit, max_pending, max_concurrency, weight, retention_days FROM tenants WHERE id = $1;

-- name: create_key
-- $6: seconds until it expires (NULL: never).
INSERT INTO api_keys (id, tenant_id, prefix, secret_hash, role, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::float8))
RETURNING prefix, role, created_at, last_used_at, expires_at, revoked_at;

-- name: key_by_prefix
-- Before the tenant is known: through the SECURITY DEFINER function (0009), past RLS.
SELECT tenant_id, secret_hash, role, expires_at, revoked_at, last_used_at
FROM taskstream_key_by_prefix($1);

-- name: live_key_prefixes
SELECT array_agg(p) FROM taskstream_live_key_prefixes(coalesce($1, now())) AS p;

-- name: touch_keys
SELECT taskstream_touch_keys($1::text[], $2::timestamptz[]);

-- name: list_keys
SELECT prefix, role, created_at, last_used_at, expires_at, revoked_at
FROM api_keys WHERE tenant_id = $1
ORDER BY created_at, prefix;

-- name: revoke_key
-- Revoking twice keeps the first time.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE prefix = $1 AND tenant_id = $2
RETURNING prefix, role, created_at, last_used_at, expires_at, revoked_at;

-- name: revoke_key_any_tenant
-- The operator's CLI (runs as the table owner): the prefix alone names the key.
UPDATE api_keys k SET revoked_at = coalesce(k.revoked_at, now())
FROM tenants t
WHERE k.prefix = $1 AND t.id = k.tenant_id
RETURNING t.id AS tenant_id, t.name AS tenant, k.prefix, k.role, k.created_at, k.last_used_at,
    k.expires_at, k.revoked_at;

-- name: tenant_names
SELECT id, name FROM tenants WHERE id = ANY($1::uuid[]);

-- name: served_queues
-- What workers read: every queue (or those named) of their region ($2, '' for none, NULL for
-- all) with its tenant's name and weight.
SELECT q.tenant_id, t.name AS tenant, q.name AS queue, t.weight, q.region
FROM queues q JOIN tenants t ON t.id = q.tenant_id
WHERE ($1::text[] IS NULL OR q.name = ANY($1::text[])) AND ($2::text IS NULL OR q.region = $2)
ORDER BY t.name, q.name;
