-- name: upsert_task_types
INSERT INTO task_types (name, queue, timeout_s, max_attempts, payload_schema, visibility_timeout_s)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::int4[], $5::text[]::jsonb[],
                     $6::float8[])
ON CONFLICT (name) DO UPDATE
SET queue = excluded.queue, timeout_s = excluded.timeout_s,
    max_attempts = excluded.max_attempts, payload_schema = excluded.payload_schema,
    visibility_timeout_s = excluded.visibility_timeout_s, updated_at = now()
WHERE (task_types.queue, task_types.timeout_s, task_types.max_attempts,
       task_types.payload_schema, task_types.visibility_timeout_s)
   IS DISTINCT FROM (excluded.queue, excluded.timeout_s, excluded.max_attempts,
                     excluded.payload_schema, excluded.visibility_timeout_s);

-- name: list_task_types
SELECT name, queue, timeout_s, max_attempts, payload_schema, visibility_timeout_s
FROM task_types ORDER BY name;
