-- name: lock_tenant_schedules
-- Creates of one tenant's schedules take turns until their transaction ends, so the quota's
-- count and the insert hold together (two creates at quota - 1 cannot both pass). The count is
-- the next statement, not this one: in READ COMMITTED a statement's snapshot is taken when it
-- starts, before this lock is granted, and would miss a create that committed while we waited.
-- An advisory lock rather than the tenant's row: locking a row needs UPDATE on tenants, which
-- the API's role is not to have, and it would hold up whatever else locks that row.
SELECT pg_advisory_xact_lock(hashtext('taskstream.schedules'), hashtext($1::uuid::text));

-- name: count_schedules
SELECT count(*) FROM schedules WHERE tenant_id = $1;

-- name: insert_schedule
INSERT INTO schedules (id, tenant_id, name, cron, timezone, task, misfire, misfire_grace_s,
                       max_catch_up, paused, next_run_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11)
ON CONFLICT (tenant_id, name) DO NOTHING
RETURNING {schedule_columns};

-- name: get_schedule
SELECT {schedule_columns} FROM schedules WHERE tenant_id = $1 AND id = $2;

-- name: list_schedules
SELECT {schedule_columns} FROM schedules WHERE tenant_id = $1 ORDER BY name;

-- name: update_schedule
UPDATE schedules
SET cron = $3, timezone = $4, task = $5::jsonb, misfire = $6, misfire_grace_s = $7,
    max_catch_up = $8, paused = $9, next_run_at = $10, updated_at = now()
WHERE tenant_id = $1 AND id = $2
RETURNING {schedule_columns};

-- name: delete_schedule
DELETE FROM schedules WHERE tenant_id = $1 AND id = $2 RETURNING name;

-- name: due_schedules
-- Leader only, inside the firing transaction; SKIP LOCKED keeps a deposed leader that has not
-- noticed yet from blocking the new one.
SELECT {schedule_columns} FROM schedules
WHERE NOT paused AND next_run_at <= now()
ORDER BY next_run_at
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: advance_schedule
UPDATE schedules
SET next_run_at = $2, last_run_at = coalesce($3, last_run_at), last_lag_ms = $4
WHERE id = $1;

-- name: acquire_lease
-- Take the lease if it is free or expired (a new epoch), or renew our own (same epoch).
INSERT INTO leader_leases (name, holder, epoch, expires_at)
VALUES ($1, $2, 1, now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
SET holder = excluded.holder,
    epoch = CASE WHEN leader_leases.holder = excluded.holder
                  AND leader_leases.expires_at > now()
                 THEN leader_leases.epoch ELSE leader_leases.epoch + 1 END,
    expires_at = excluded.expires_at, renewed_at = now()
WHERE leader_leases.holder = excluded.holder OR leader_leases.expires_at <= now()
RETURNING epoch;

-- name: holds_lease
-- Checked inside every leader write: this transaction proceeds only while the lease is ours.
SELECT 1 FROM leader_leases
WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()
FOR SHARE;

-- name: release_lease
DELETE FROM leader_leases WHERE name = $1 AND holder = $2 AND epoch = $3;

-- name: lease_status
SELECT name, holder, epoch, expires_at, renewed_at,
       extract(epoch FROM expires_at - now())::float8 AS expires_in_s
FROM leader_leases ORDER BY name;
