-- 0012: retention per tenant (`taskstream tenant create|update --retention-days`).
--
-- NULL: the deployment's default (TASKSTREAM_RETENTION_DAYS, 30), read at each purge, so
-- changing the default reaches every tenant without one of its own. The purge
-- (scheduler/pruner.py) needs no index of its own: it reads (tenant_id, status, id DESC).
ALTER TABLE tenants
    ADD COLUMN retention_days integer
        CONSTRAINT tenants_retention_days_check CHECK (retention_days BETWEEN 1 AND 36500);
