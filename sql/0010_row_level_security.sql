-- 0010: Row-Level Security on every tenant table, enforced for the API's connections.
--
-- Every query already names its tenant; these policies enforce it a second time, so a statement
-- that forgot its tenant filter still sees (and writes) only the tenants its session is scoped
-- to. Who is held by them:
--   * the API: its connections `SET ROLE taskstream_api` when they open, and scope their session
--     to the tenant of the request (`taskstream.tenants`, set by store/database.py) before a
--     statement runs. A session scoped to no tenant sees no rows.
--   * workers, schedulers and the CLI serve every tenant: they run as the role that owns the
--     tables (the migrating role), which RLS does not restrict (ENABLE, not FORCE).
-- Key look-ups by prefix and the deployment-wide queue depths of /metrics run before a tenant is
-- known or across tenants: they go through SECURITY DEFINER functions that do exactly that.

DO $$
BEGIN
    CREATE ROLE taskstream_api NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;  -- another database of the cluster
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT taskstream_api TO %I', current_user);
EXCEPTION
    WHEN duplicate_object THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO taskstream_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO taskstream_api;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO taskstream_api;
-- Tables and sequences of later migrations (created by the same migrating role).
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO taskstream_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO taskstream_api;
-- Migrations are the owner's business.
REVOKE ALL ON schema_migrations FROM taskstream_api;

-- The tenants the session is scoped to; none when unset. The policies call it as a scalar
-- sub-select, which PostgreSQL evaluates once per statement (an InitPlan) instead of once per
-- row, and which can still drive an index.
CREATE FUNCTION taskstream_scope() RETURNS uuid[]
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(nullif(current_setting('taskstream.tenants', true), ''), '{}')::uuid[] $$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenants TO taskstream_api
    USING (id = ANY ((SELECT taskstream_scope())::uuid[])) WITH CHECK (id = ANY ((SELECT taskstream_scope())::uuid[]));

-- Every table with a tenant_id column (tests/integration/test_rls.py checks none is missed).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'queues', 'tasks', 'task_attempts', 'task_replays',
                             'schedules']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_scope ON %I TO taskstream_api'
            ' USING (tenant_id = ANY ((SELECT taskstream_scope())::uuid[]))'
            ' WITH CHECK (tenant_id = ANY ((SELECT taskstream_scope())::uuid[]))', t);
    END LOOP;
END
$$;

-- /metrics with the deployment's metrics token: depths of every tenant, nothing else.
CREATE FUNCTION taskstream_depths()
RETURNS TABLE (queue text, priority smallint, status text, n bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
    SELECT queue, priority, status, count(*)
    FROM tasks WHERE status IN ('pending', 'scheduled', 'processing', 'failed')
    GROUP BY queue, priority, status
$$;
REVOKE ALL ON FUNCTION taskstream_depths() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskstream_depths() TO taskstream_api;

-- Migration 0009's key functions run as the owner: only the API's role may call them.
REVOKE ALL ON FUNCTION taskstream_key_by_prefix(text), taskstream_live_key_prefixes(timestamptz),
    taskstream_touch_keys(text[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskstream_key_by_prefix(text),
    taskstream_live_key_prefixes(timestamptz), taskstream_touch_keys(text[], timestamptz[])
    TO taskstream_api;
