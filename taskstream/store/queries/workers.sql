-- name: beat
INSERT INTO workers (name, host, pid, queues, concurrency, running, degraded)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE
SET running = excluded.running, degraded = excluded.degraded, last_seen = now();

-- name: forget
DELETE FROM workers WHERE name = $1;

-- name: list_workers
-- Workers seen recently; older rows belong to workers that died without saying goodbye.
SELECT name, host, pid, queues, concurrency, running, degraded, started_at, last_seen,
       extract(epoch FROM now() - last_seen)::float8 AS seen_s_ago
FROM workers
WHERE last_seen > now() - make_interval(secs => $1)
ORDER BY name;

-- name: prune_workers
DELETE FROM workers WHERE last_seen < now() - make_interval(secs => $1);

-- name: depths
-- All tenants, for /metrics: non-terminal and failed tasks by queue, priority and status.
SELECT queue, priority, status, count(*) AS n
FROM tasks WHERE status IN ('pending', 'scheduled', 'processing', 'failed')
GROUP BY queue, priority, status;

-- name: queue_stats
SELECT queue, priority, status, count(*) AS n,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_s
FROM tasks
WHERE tenant_id = $1 AND status IN ('pending', 'scheduled', 'processing', 'failed')
GROUP BY queue, priority, status;
