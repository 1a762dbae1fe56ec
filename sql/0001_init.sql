-- 0001: tenants, API keys, task type definitions, tasks, queues.
-- Forward-only. Applied once by `taskstream migrate` under an advisory lock.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are shown once; only a SHA-256 of the secret is kept, found by its public prefix.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix       text NOT NULL UNIQUE,
    secret_hash  bytea NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'operator', 'submitter', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- Task types are code deployed with workers; workers register them here at start-up and the
-- API validates submissions against the cached copy.
CREATE TABLE task_types (
    name          text PRIMARY KEY,
    queue         text NOT NULL,
    timeout_s     double precision NOT NULL CHECK (timeout_s > 0),
    max_attempts  integer NOT NULL CHECK (max_attempts >= 1),
    payload_schema jsonb NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Every (tenant, queue) that ever received a task; workers read it to find their streams.
CREATE TABLE queues (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE tasks (
    id                uuid PRIMARY KEY,                 -- time-ordered (UUIDv7): keyset order
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    type              text NOT NULL,
    queue             text NOT NULL,
    priority          smallint NOT NULL CHECK (priority BETWEEN 0 AND 3),  -- 0 = critical
    status            text NOT NULL CHECK (status IN
                        ('pending', 'scheduled', 'processing', 'completed', 'failed', 'cancelled')),
    payload           jsonb NOT NULL,
    result            jsonb,
    last_error        text,
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL CHECK (max_attempts >= 1),
    timeout_s         double precision NOT NULL CHECK (timeout_s > 0),
    idempotency_key   text,
    request_hash      bytea,                            -- for same-key/different-body = 409
    correlation_id    text,
    run_at            timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    published_at      timestamptz,                      -- NULL: no stream entry known to exist
    lease_epoch       bigint NOT NULL DEFAULT 0,        -- the fencing token
    lease_owner       text,
    lease_expires_at  timestamptz
);

CREATE UNIQUE INDEX tasks_idempotency_idx ON tasks (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Listing: keyset on id within a tenant, optionally by status.
CREATE INDEX tasks_tenant_id_idx ON tasks (tenant_id, id DESC);
CREATE INDEX tasks_tenant_status_idx ON tasks (tenant_id, status, id DESC);
-- Promoter: due retries and delayed tasks.
CREATE INDEX tasks_due_idx ON tasks (run_at) WHERE status = 'scheduled';
-- Relay: rows whose stream entry was never written.
CREATE INDEX tasks_unpublished_idx ON tasks (run_at)
    WHERE status = 'pending' AND published_at IS NULL;
-- Rescuer: leases that ran out.
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE status = 'processing';
