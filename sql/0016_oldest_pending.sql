-- 0016: /metrics with the deployment's metrics token also reads how long the oldest task of each
-- (queue, priority, status) has been due: `task_oldest_pending_seconds` (issue 14's alerts).
DROP FUNCTION taskstream_depths();
CREATE FUNCTION taskstream_depths()
RETURNS TABLE (queue text, priority smallint, status text, n bigint, oldest_s float8)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT queue, priority, status, count(*), extract(epoch FROM now() - min(run_at))::float8
    FROM tasks WHERE status IN ('pending', 'scheduled', 'processing', 'failed')
    GROUP BY queue, priority, status
$$;
REVOKE ALL ON FUNCTION taskstream_depths() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskstream_depths() TO taskstream_api;
