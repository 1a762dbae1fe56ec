-- 0007: lists filtered by type or queue over a long history.
-- Without these, "newest tasks of type X" walked the tenant's rows newest first and skipped every
-- other type: ~115 ms a page on a million rows when X sat behind 200,000 newer rows of another
-- type. Only finished tasks are indexed: a row enters once, when it finishes, instead of at every
-- transition (a full index costs each claim and outcome two more index entries, measured at 18%
-- of no-op drain throughput). Unfinished tasks are few and are found through
-- tasks_tenant_status_idx; the list statement reads both parts.
CREATE INDEX tasks_done_type_idx ON tasks (tenant_id, type, id DESC)
    WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX tasks_done_queue_idx ON tasks (tenant_id, queue, id DESC)
    WHERE status IN ('completed', 'failed', 'cancelled');
