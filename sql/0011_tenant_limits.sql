-- 0011: per-tenant limits, set by the operator (`taskstream tenant create|update`).
--
-- NULL rate_limit / max_pending: the deployment's default (TASKSTREAM_TENANT_RATE_LIMIT,
-- TASKSTREAM_TENANT_MAX_PENDING), read when the limit is enforced, so changing a default reaches
-- every tenant without one of its own. NULL max_concurrency: no cap.
--   rate_limit       requests per minute, over every route of the tenant
--   max_pending      tasks waiting (pending + scheduled)
--   max_concurrency  tasks processing at once across all workers
--   weight           the tenant's share of worker turns against other tenants with work waiting
ALTER TABLE tenants
    ADD COLUMN rate_limit integer CONSTRAINT tenants_rate_limit_check CHECK (rate_limit > 0),
    ADD COLUMN max_pending bigint CONSTRAINT tenants_max_pending_check CHECK (max_pending > 0),
    ADD COLUMN max_concurrency integer
        CONSTRAINT tenants_max_concurrency_check CHECK (max_concurrency > 0),
    ADD COLUMN weight integer NOT NULL DEFAULT 1
        CONSTRAINT tenants_weight_check CHECK (weight BETWEEN 1 AND 1000);

-- The API reads its own tenant's row (0010's table-wide SELECT covers these columns; the policy
-- keeps it to that row) but never writes tenants: without this, a tenant-scoped session could
-- raise its own limits. Tenants and their limits are the operator's, through the owning role.
REVOKE INSERT, UPDATE, DELETE ON tenants FROM taskstream_api;
