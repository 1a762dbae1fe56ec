-- name: queue_names
-- Every queue the tenant ever used, so an idle one still shows on the dashboard.
SELECT name FROM queues WHERE tenant_id = $1 ORDER BY name;

-- name: queue_depths
-- Waiting, running and dead tasks by queue, priority and status, with how long the oldest of
-- each group has been due (run_at: a delayed task is not "waiting" before its time).
SELECT queue, priority, status, count(*) AS n,
       extract(epoch FROM now() - min(run_at))::float8 AS oldest_s
FROM tasks
WHERE tenant_id = $1 AND status IN ('pending', 'scheduled', 'processing', 'failed')
GROUP BY queue, priority, status;

-- name: queue_hour
-- Tasks finished in the last $3 seconds by queue and outcome. `id >= $2` (the smallest UUIDv7
-- of the look-back's start) keeps this a range of tasks_tenant_status_idx instead of a walk over
-- the tenant's whole history: a task created before the look-back and finished within the hour
-- (delayed more than a day) is not counted.
SELECT queue,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM tasks
WHERE tenant_id = $1 AND status IN ('completed', 'failed') AND id >= $2
  AND finished_at >= now() - make_interval(secs => $3)
GROUP BY queue;

-- name: tenant_name
SELECT name FROM tenants WHERE id = $1;
