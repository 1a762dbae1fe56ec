-- 0002: the history of every attempt, and replays from the dead-letter queue.

CREATE TABLE task_attempts (
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    tenant_id    uuid NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN
                   ('completed', 'retry', 'fail', 'timeout', 'worker_lost', 'released')),
    error        text,                      -- message and a traceback excerpt
    worker       text,
    duration_s   double precision,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, attempt, finished_at)
);

CREATE TABLE task_replays (
    id           bigserial PRIMARY KEY,
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tenant_id    uuid NOT NULL,
    replayed_at  timestamptz NOT NULL DEFAULT now(),
    replayed_by  text NOT NULL,             -- the API key's public prefix
    last_error   text                       -- why it had failed
);
CREATE INDEX task_replays_task_idx ON task_replays (task_id);

-- The dead-letter queue is the failed tasks of a tenant, newest first.
CREATE INDEX tasks_failed_idx ON tasks (tenant_id, id DESC) WHERE status = 'failed';
