-- 0005: worker heartbeats, for GET /v1/workers and readiness.
CREATE TABLE workers (
    name         text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    queues       text[],                    -- NULL: every queue
    concurrency  integer NOT NULL,
    running      integer NOT NULL DEFAULT 0,
    degraded     boolean NOT NULL DEFAULT false,   -- claiming from PostgreSQL (Redis down)
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now()
);
