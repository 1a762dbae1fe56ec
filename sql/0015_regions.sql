-- 0015: regions (issue 13). A tenant's home region, a task's region, and the streams per region.
--
-- A task's region is what it was submitted with, else its tenant's home region at submit, else
-- none. Its stream entries go to streams of that region ({tenant/queue@region}); a worker started
-- with --region reads only those, a worker without one only the streams of tasks with no
-- region. `queues` records each (tenant, queue, region) that ever received a task ('' for none).
-- Adding nullable columns and a column with a constant default rewrites nothing.
ALTER TABLE tenants ADD COLUMN region text
    CONSTRAINT tenants_region_check CHECK (region ~ '^[a-z0-9][a-z0-9-]{0,31}$');
ALTER TABLE tasks ADD COLUMN region text;
ALTER TABLE queues ADD COLUMN region text NOT NULL DEFAULT '';
ALTER TABLE queues DROP CONSTRAINT queues_pkey, ADD PRIMARY KEY (tenant_id, name, region);
