-- Retention (issue 13): finished tasks older than their tenant's retention are deleted, a batch
-- at a time, by the scheduler's leader (scheduler/pruner.py).

-- name: retention_days
-- Every tenant's retention in days: its own (`tenant create|update --retention-days`) or $1,
-- the deployment's (TASKSTREAM_RETENTION_DAYS).
SELECT id, coalesce(retention_days, $1::integer) AS days FROM tenants ORDER BY id;

-- name: purge_finished
-- One batch of a tenant's finished tasks that finished before $3, with their attempt log
-- (task_attempts has no foreign key since 0008) and their replays (ON DELETE CASCADE). A task
-- that finished before $3 was created before it, so its time-ordered id is below $2 (the
-- smallest id of $3's millisecond): (tenant_id, status, id DESC) finds the batch without a scan
-- of the tenant's newer rows or an index of its own. (Ids come from the API host's clock: one
-- running a minute ahead has its tasks purged a minute late, never early: finished_at decides.) Rows someone else holds (a replay being
-- written) are skipped, never waited for; unfinished tasks are never touched, however old.
WITH doomed AS (
    SELECT id FROM tasks
    WHERE tenant_id = $1 AND status IN ('completed', 'failed', 'cancelled') AND id < $2
      AND finished_at < $3
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), attempts AS (
    DELETE FROM task_attempts a USING doomed WHERE a.task_id = doomed.id
)
DELETE FROM tasks t USING doomed WHERE t.id = doomed.id;
