-- name: beat
INSERT INTO workers (name, host, pid, queues, concurrency, running, degraded)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE
SET running = excluded.running, degraded = excluded.degraded, last_seen = now();

-- name: forget
DELETE FROM workers WHERE name = $1;

-- name: list_workers
-- Workers seen recently that serve a queue of tenant $2 (a worker without --queues serves every
-- queue); older rows belong to workers that died without saying goodbye. A worker's queues are
-- shown as far as they are the tenant's: the others name other tenants' queues.
SELECT w.name, w.host, w.pid, w.concurrency, w.running, w.degraded, w.started_at, w.last_seen,
       CASE WHEN w.queues IS NULL THEN NULL
            ELSE ARRAY(SELECT q FROM unnest(w.queues) AS q WHERE q = ANY (mine.names) ORDER BY q)
       END AS queues,
       extract(epoch FROM now() - w.last_seen)::float8 AS seen_s_ago
FROM workers w,
     LATERAL (SELECT array_agg(name) AS names FROM queues WHERE tenant_id = $2) AS mine
WHERE w.last_seen > now() - make_interval(secs => $1)
  AND (w.queues IS NULL OR w.queues && mine.names)
ORDER BY w.name;

-- name: prune_workers
DELETE FROM workers WHERE last_seen < now() - make_interval(secs => $1);

-- name: depths
-- One tenant's non-terminal and failed tasks by queue, priority and status (/metrics, admin key),
-- with how long the oldest has been due.
SELECT te.name AS tenant, t.queue, t.priority, t.status, count(*) AS n,
       extract(epoch FROM now() - min(t.run_at))::float8 AS oldest_s
FROM tasks t JOIN tenants te ON te.id = t.tenant_id
WHERE t.tenant_id = $1 AND t.status IN ('pending', 'scheduled', 'processing', 'failed')
GROUP BY te.name, t.queue, t.priority, t.status;

-- name: depths_all
-- Every tenant's (/metrics with the deployment's metrics token): a SECURITY DEFINER function,
-- since API sessions see one tenant (migration 0010).
SELECT tenant, queue, priority, status, n, oldest_s FROM taskstream_depths();

-- name: queue_stats
SELECT queue, priority, status, count(*) AS n,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_s
FROM tasks
WHERE tenant_id = $1 AND status IN ('pending', 'scheduled', 'processing', 'failed')
GROUP BY queue, priority, status;
