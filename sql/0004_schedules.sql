-- 0004: cron schedules and leader leases.

CREATE TABLE schedules (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL,
    cron             text NOT NULL,
    timezone         text NOT NULL,
    task             jsonb NOT NULL,        -- template: type, payload, queue, priority, ...
    misfire          text NOT NULL CHECK (misfire IN ('run_once', 'run_all', 'skip')),
    misfire_grace_s  double precision NOT NULL CHECK (misfire_grace_s >= 0),
    max_catch_up     integer NOT NULL CHECK (max_catch_up >= 1),
    paused           boolean NOT NULL DEFAULT false,
    next_run_at      timestamptz NOT NULL,  -- persisted: survives every scheduler restart
    last_run_at      timestamptz,           -- the last fire time enqueued
    last_lag_ms      double precision,      -- enqueue time minus fire time, last pass
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE NOT paused;

-- One row per leader-only role ("cron"): whoever holds an unexpired lease leads; the epoch
-- fences writes of a leader that lost its lease without knowing.
CREATE TABLE leader_leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    epoch       bigint NOT NULL,
    expires_at  timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL DEFAULT now()
);
