-- Key rotation (`taskstream reencrypt`): rows whose payload or result is clear or sealed with
-- another key than $1 (the first of TASKSTREAM_ENCRYPTION_KEYS) are sealed again with it.

-- name: count_stale
SELECT count(*) FROM tasks
WHERE payload_key IS DISTINCT FROM $1 OR (result IS NOT NULL AND result_key IS DISTINCT FROM $1);

-- name: stale_after
-- The next batch in id order (the primary key walks the table once).
SELECT id, payload::text AS payload, payload_key, result::text AS result, result_key
FROM tasks
WHERE id > $2
  AND (payload_key IS DISTINCT FROM $1 OR (result IS NOT NULL AND result_key IS DISTINCT FROM $1))
ORDER BY id
LIMIT $3;

-- name: reseal
-- Compare-and-set on what was read: a row whose result a worker wrote meanwhile (or a replay
-- cleared) is left for the next pass, never overwritten with the value read before.
UPDATE tasks t
SET payload = u.payload::jsonb, payload_key = u.payload_key,
    result = u.result::jsonb, result_key = u.result_key
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[])
     AS u(id, payload, payload_key, result, result_key,
          old_payload, old_payload_key, old_result, old_result_key)
WHERE t.id = u.id
  AND t.payload = u.old_payload::jsonb AND t.payload_key IS NOT DISTINCT FROM u.old_payload_key
  AND t.result IS NOT DISTINCT FROM u.old_result::jsonb
  AND t.result_key IS NOT DISTINCT FROM u.old_result_key
RETURNING t.id;
