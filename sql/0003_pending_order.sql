-- 0003: workers claim straight from the table when Redis is down (priority order, oldest first).
CREATE INDEX tasks_pending_idx ON tasks (priority, id) WHERE status = 'pending';
