-- task_queue_depth and task_oldest_pending_seconds gain the tenant's name as a label (the
-- contract's task_queue_depth{tenant,queue,priority}): every tenant's depths, for /metrics with
-- the deployment's metrics token, by tenant. A SECURITY DEFINER function, as before (0010, 0016):
-- API sessions see one tenant.
DROP FUNCTION taskstream_depths();
CREATE FUNCTION taskstream_depths()
RETURNS TABLE (tenant text, queue text, priority smallint, status text, n bigint, oldest_s float8)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT te.name, t.queue, t.priority, t.status, count(*),
           extract(epoch FROM now() - min(t.run_at))::float8
    FROM tasks t JOIN tenants te ON te.id = t.tenant_id
    WHERE t.status IN ('pending', 'scheduled', 'processing', 'failed')
    GROUP BY te.name, t.queue, t.priority, t.status
$$;
REVOKE ALL ON FUNCTION taskstream_depths() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskstream_depths() TO taskstream_api;
