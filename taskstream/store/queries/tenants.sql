-- name: create_tenant
INSERT INTO tenants (id, name) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
RETURNING id;

-- name: tenant_by_name
SELECT id, name FROM tenants WHERE name = $1;

-- name: create_key
INSERT INTO api_keys (id, tenant_id, prefix, secret_hash, role) VALUES ($1, $2, $3, $4, $5);

-- name: key_by_prefix
SELECT k.tenant_id, k.secret_hash, k.role
FROM api_keys k
WHERE k.prefix = $1 AND k.revoked_at IS NULL;
