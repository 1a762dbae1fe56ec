-- 0014: the audit log (issue 13). Every submission and every state-changing call, per tenant,
-- in an append-only, hash-chained log (core/audit.py says how the chain is computed).
--
-- Each row carries the SHA-256 digest of its own content. Rows are appended in blocks (one
-- group commit, or one call); the last row of a block carries the chain value
-- sha256(previous chain || sha256(digests of the block's rows in seq order)), and
-- audit_heads holds each tenant's last seq and chain. `taskstream audit verify` recomputes all of
-- it: an edited row breaks its digest, a deleted row its block's chain or the seq sequence, a
-- deleted tail the head.
CREATE TABLE audit_log (
    tenant_id uuid NOT NULL,
    seq bigint NOT NULL,
    at timestamptz NOT NULL,
    actor text NOT NULL,       -- "key:<prefix>", "cli:<user>" or "schedule:<name>"
    action text NOT NULL,      -- task.submit, task.cancel, dead_letter.replay, key.create...
    target text NOT NULL,      -- what it acted on: a task id, a schedule or key name
    request_id text,
    digest bytea NOT NULL,
    chain bytea,               -- on the last row of a block
    PRIMARY KEY (tenant_id, seq)
);

CREATE TABLE audit_heads (
    tenant_id uuid PRIMARY KEY,
    seq bigint NOT NULL DEFAULT 0,
    chain bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
);

-- Every tenant has its head from the start: appends only ever UPDATE it (no upsert race).
INSERT INTO audit_heads (tenant_id) SELECT id FROM tenants;
CREATE FUNCTION taskstream_audit_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
BEGIN
    INSERT INTO audit_heads (tenant_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;
CREATE TRIGGER tenants_audit_head AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION taskstream_audit_head();

-- The API's role appends and reads, never changes or removes a row.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM taskstream_api;
REVOKE INSERT, DELETE, TRUNCATE ON audit_heads FROM taskstream_api;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['audit_log', 'audit_heads']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_scope ON %I TO taskstream_api'
            ' USING (tenant_id = ANY ((SELECT taskstream_scope())::uuid[]))'
            ' WITH CHECK (tenant_id = ANY ((SELECT taskstream_scope())::uuid[]))', t);
    END LOOP;
END
$$;
