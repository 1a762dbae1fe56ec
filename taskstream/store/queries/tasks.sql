-- [1] Statements that name their rows by id write the status they expect as a sub-select, not
-- a literal. With a literal the planner matches it to a partial index (tasks_lease_idx for
-- 'processing', tasks_unpublished_idx for 'pending') and, trusting statistics that say the
-- state is rare, scans that whole index once per id: with a few hundred tasks in flight a batch
-- of outcomes cost ~225 us a row instead of ~25. The sub-select is only known at run time, so
-- the primary key drives the statement.

-- name: insert_tasks
-- One statement for a whole group commit. Conflicting idempotency keys are skipped here and
-- resolved by the caller (same body -> the original task, other body -> 409). A task without a
-- region ($15) takes its tenant's home region (TaskStore records a new (tenant, queue, region)
-- in `queues` before the tasks are published). $16: the submit's trace context. The tasks
-- created with an audit entry ($17-$21: task id, time, actor, request id, digest) are recorded
-- in the audit log in the same statement, so in the same commit (the chain: queries.AUDIT_CHAIN).
WITH ins AS (
    INSERT INTO tasks (id, tenant_id, type, queue, priority, status, payload, max_attempts,
                       timeout_s, idempotency_key, request_hash, correlation_id, run_at,
                       visibility_timeout_s, payload_key, region, trace_context)
    SELECT u.id, u.tenant_id, u.type, u.queue, u.priority,
           CASE WHEN u.run_at IS NULL OR u.run_at <= now() THEN 'pending' ELSE 'scheduled' END,
           u.payload::jsonb, u.max_attempts, u.timeout_s, u.idempotency_key, u.request_hash,
           u.correlation_id, coalesce(u.run_at, now()), u.visibility_timeout_s, u.payload_key,
           coalesce(u.region, tn.region), u.trace_context
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int2[], $6::text[],
                $7::int4[], $8::float8[], $9::text[], $10::bytea[], $11::text[],
                $12::timestamptz[], $13::float8[], $14::text[], $15::text[], $16::text[])
         AS u(id, tenant_id, type, queue, priority, payload, max_attempts, timeout_s,
              idempotency_key, request_hash, correlation_id, run_at, visibility_timeout_s,
              payload_key, region, trace_context)
    LEFT JOIN tenants tn ON tn.id = u.tenant_id
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING {task_columns}
), entries AS (
    SELECT ins.tenant_id, e.at, e.actor, 'task.submit'::text AS action, ins.id::text AS target,
           e.request_id, e.digest, e.ord
    FROM unnest($17::uuid[], $18::timestamptz[], $19::text[], $20::text[], $21::bytea[])
         WITH ORDINALITY AS e(id, at, actor, request_id, digest, ord)
    JOIN ins ON ins.id = e.id
), {audit_chain}
SELECT * FROM ins;

-- name: find_by_idempotency_keys
SELECT idempotency_key, request_hash, {task_columns}
FROM tasks
WHERE tenant_id = $1 AND idempotency_key = ANY($2::text[]);

-- name: expire_idempotency_keys
-- Keys older than the idempotency window are released so the key can name a new task.
UPDATE tasks SET idempotency_key = NULL, request_hash = NULL
WHERE tenant_id = $1 AND idempotency_key = ANY($2::text[])
  AND created_at < now() - make_interval(secs => $3)
RETURNING id;

-- name: mark_published
-- $2: when the entries were written (NULL: now), so published_at - run_at is the real lag.
-- Rows a worker is claiming right now are skipped, not waited for: a claimed task needs no
-- publish mark (it matters only while pending, and every way back to pending clears it).
UPDATE tasks t SET published_at = coalesce($2, now())
FROM (SELECT id AS cid FROM tasks JOIN unnest($1::uuid[]) AS u(uid) ON id = uid
      WHERE published_at IS NULL AND status = (SELECT 'pending')  -- [1]
      FOR UPDATE OF tasks SKIP LOCKED) AS fresh
WHERE t.id = fresh.cid;

-- name: count_waiting
-- A tenant's waiting tasks, counted up to $2 (the backlog bound + 1): the (tenant, status)
-- index is read no further than the bound.
SELECT count(*) FROM (
    SELECT 1 FROM tasks WHERE tenant_id = $1 AND status IN ('pending', 'scheduled') LIMIT $2
) AS waiting;

-- name: get_task
SELECT {task_columns} FROM tasks WHERE tenant_id = $1 AND id = $2;

-- name: list_tasks
-- Keyset pagination on the time-ordered id, newest first. {filters} is built from a fixed set of
-- clauses by which filters a request gives (never from request text), so every combination is a
-- statement of its own with a plan of its own: one "$n IS NULL OR col = $n" statement for all of
-- them got, once generic, a plan that scanned the table for every combination.
SELECT {task_columns} FROM tasks
WHERE tenant_id = $1 {filters}
ORDER BY id DESC
LIMIT $2;

-- name: list_finished
-- A type or queue filter over finished tasks: the predicate of migration 0007's partial indexes
-- is written out, so the planner can use them.
SELECT {task_columns} FROM tasks
WHERE tenant_id = $1 AND status IN ('completed', 'failed', 'cancelled') {filters}
ORDER BY id DESC
LIMIT $2;

-- name: list_unfinished
-- A type or queue filter over unfinished tasks: select them, then order. Asked for "newest first"
-- in one scan, the planner walked the tenant's whole history in id order looking for a rare
-- unfinished type (~300 ms on a million rows); OFFSET 0 keeps the order out of the scan, which
-- then reads only the tenant's unfinished rows (tasks_tenant_status_idx).
SELECT * FROM (
    SELECT {task_columns} FROM tasks
    WHERE tenant_id = $1 AND status IN ('pending', 'scheduled', 'processing') {filters}
    OFFSET 0
) AS unfinished
ORDER BY id DESC
LIMIT $2;

-- name: cancel_task
UPDATE tasks SET status = 'cancelled', finished_at = now(), published_at = coalesce(published_at, now())
WHERE tenant_id = $1 AND id = $2 AND status IN ('pending', 'scheduled')
RETURNING {task_columns};

-- name: claim_tasks
-- The fencing token is lease_epoch: every later write by this worker names the epoch it got here.
-- Driven by unnest + the primary key: with `id = ANY($1)` the generic plan scanned the whole
-- pending index per batch (status = 'pending' matches it), halving throughput under a backlog.
-- Rows are locked first so the prior status is known: taking over an expired lease logs the
-- lost attempt (worker_lost) in the same statement.
-- Tasks of a tenant with a concurrency cap (tenants.max_concurrency) are not claimed here: they
-- come back as rows with `capped` set (and nothing else but id and tenant_id), for
-- TaskStore.claim to take through claim_capped under the tenant's lock. Split here because a
-- stream entry names no tenant, and reading the caps here (not from a worker's cache) makes a
-- cap hold from the moment it is set. The capped tenants are read once per statement (an
-- InitPlan): a 500-id claim without capped tenants took ~0.5 ms (3%) longer, with 2 or 2,000
-- tenants; joining each task's tenant instead cost more (~4-5%).
WITH prior AS (
    SELECT p.id AS pid, p.tenant_id AS tid, p.status AS prior_status,
           p.tenant_id = ANY ((SELECT array_agg(id) FROM tenants
                               WHERE max_concurrency IS NOT NULL)::uuid[]) IS TRUE AS capped
    FROM tasks p JOIN unnest($1::uuid[]) AS c(cid) ON p.id = c.cid
    WHERE p.attempts < p.max_attempts
      AND (p.status = (SELECT 'pending')  -- [1]
           OR (p.status = (SELECT 'processing') AND p.lease_expires_at < now()))
    FOR UPDATE OF p
), claimed AS (
    UPDATE tasks t
    SET status = 'processing', lease_epoch = t.lease_epoch + 1, lease_owner = $2,
        last_error = CASE WHEN prior.prior_status = 'processing'
                          THEN 'worker_lost: lease expired during attempt ' || t.attempts
                          ELSE t.last_error END,
        lease_expires_at = now() + make_interval(secs => coalesce(t.visibility_timeout_s, $3)),
        attempts = t.attempts + 1,
        started_at = coalesce(t.started_at, now())
    FROM prior
    WHERE t.id = prior.pid AND NOT prior.capped
    RETURNING t.id, t.tenant_id, t.type, t.queue, t.payload, t.payload_key, t.attempts, t.max_attempts,
              t.timeout_s, t.lease_epoch, t.idempotency_key, t.correlation_id, t.trace_context,
              extract(epoch FROM t.created_at)::float8 AS created_unix,
              extract(epoch FROM t.run_at)::float8 AS run_unix,
              coalesce(t.visibility_timeout_s, $3)::float8 AS lease_s,
              t.last_error, prior.prior_status, false AS capped
), logged AS (
    INSERT INTO task_attempts (task_id, attempt, tenant_id, outcome, error)
    SELECT id, attempts - 1, tenant_id, 'worker_lost', last_error FROM claimed
    WHERE prior_status = 'processing'
)
SELECT * FROM claimed
UNION ALL
SELECT pid, tid, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, prior_status, true
FROM prior WHERE capped;

-- name: lock_tenants
-- Serializes the claims of capped tenants, across workers and hosts, for the rest of the
-- transaction: the claim that follows counts the tenant's running tasks in a statement of its
-- own (a snapshot taken after the lock, so it sees every claim committed before). Keys are
-- taken in one order, so two claims of overlapping tenants never deadlock; two tenants sharing
-- a hash only share a lock. 1953719139 ('tscc') keeps these apart from other advisory locks.
SELECT pg_advisory_xact_lock(1953719139, k)
FROM unnest(ARRAY(SELECT DISTINCT hashtext(u::text) FROM unnest($1::uuid[]) AS u ORDER BY 1))
     AS k;

-- name: claim_capped
-- After lock_tenants, in its transaction: claims capped tenants' tasks up to the room each
-- tenant has (its cap minus its tasks processing under a live lease; highest priority, oldest
-- first). The tasks left out go back to waiting as `scheduled`, run_at $4 s away (jittered
-- x0.5-1.5 so they do not all come back at once), published_at NULL: the promoter publishes
-- them again when due and the caller acks their entries. Why not leave them pending with their
-- entries unacked: nothing would redeliver them before the visibility timeout (30 s), and
-- re-adding them at once would loop them through Redis as fast as workers read. The delay and
-- promotion machinery already exist; the task stays waiting (it counts for max_pending) and no
-- attempt is spent (attempts and the lease epoch are untouched).
WITH prior AS (
    SELECT p.id AS pid, p.tenant_id AS tid, p.priority AS prio, p.status AS prior_status
    FROM tasks p JOIN unnest($1::uuid[]) AS c(cid) ON p.id = c.cid
    WHERE p.attempts < p.max_attempts
      AND (p.status = (SELECT 'pending')  -- [1]
           OR (p.status = (SELECT 'processing') AND p.lease_expires_at < now()))
    FOR UPDATE OF p
), room AS MATERIALIZED (
    -- Once per tenant (inlined, it ran once per task) and no further than the cap. Named by
    -- tenant, not by id, so the literal status lets (tenant_id, status) drive the count; a
    -- sub-select [1] got the tenant's whole history read. NULL if the cap was lifted: all fit.
    SELECT tn.id AS tid,
           tn.max_concurrency - (SELECT count(*) FROM (
               SELECT 1 FROM tasks r
               WHERE r.tenant_id = tn.id AND r.status = 'processing'
                 AND r.lease_expires_at >= now()
               LIMIT tn.max_concurrency) AS running) AS free
    FROM tenants tn WHERE tn.id IN (SELECT tid FROM prior)
), ranked AS (
    SELECT prior.pid, prior.prior_status,
           room.free IS NULL
           OR row_number() OVER (PARTITION BY prior.tid ORDER BY prior.prio, prior.pid)
              <= room.free AS fits
    FROM prior JOIN room ON room.tid = prior.tid
), claimed AS (
    UPDATE tasks t
    SET status = 'processing', lease_epoch = t.lease_epoch + 1, lease_owner = $2,
        last_error = CASE WHEN ranked.prior_status = 'processing'
                          THEN 'worker_lost: lease expired during attempt ' || t.attempts
                          ELSE t.last_error END,
        lease_expires_at = now() + make_interval(secs => coalesce(t.visibility_timeout_s, $3)),
        attempts = t.attempts + 1,
        started_at = coalesce(t.started_at, now())
    FROM ranked
    WHERE t.id = ranked.pid AND ranked.fits
    RETURNING t.id, t.tenant_id, t.type, t.queue, t.payload, t.payload_key, t.attempts, t.max_attempts,
              t.timeout_s, t.lease_epoch, t.idempotency_key, t.correlation_id, t.trace_context,
              extract(epoch FROM t.created_at)::float8 AS created_unix,
              extract(epoch FROM t.run_at)::float8 AS run_unix,
              coalesce(t.visibility_timeout_s, $3)::float8 AS lease_s,
              t.last_error, ranked.prior_status
), deferred AS (
    -- An expired lease left out is the dead worker's lost attempt: logged as the rescuer does.
    UPDATE tasks t
    SET status = 'scheduled', run_at = now() + make_interval(secs => $4 * (0.5 + random())),
        published_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
        last_error = CASE WHEN ranked.prior_status = 'processing'
                          THEN 'worker_lost: lease expired during attempt ' || t.attempts
                          ELSE t.last_error END
    FROM ranked
    WHERE t.id = ranked.pid AND NOT ranked.fits
    RETURNING t.id, t.tenant_id, t.attempts, t.last_error, ranked.prior_status
), logged AS (
    INSERT INTO task_attempts (task_id, attempt, tenant_id, outcome, error)
    SELECT id, attempts - 1, tenant_id, 'worker_lost', last_error FROM claimed
    WHERE prior_status = 'processing'
    UNION ALL
    SELECT id, attempts, tenant_id, 'worker_lost', last_error FROM deferred
    WHERE prior_status = 'processing'
)
SELECT *, false AS capped FROM claimed;

-- name: lock_capped_with_work
-- claim_from_table's lock_tenants: the capped tenants with tasks ready in these queues.
SELECT pg_advisory_xact_lock(1953719139, k)
FROM unnest(ARRAY(
    SELECT DISTINCT hashtext(tn.id::text) FROM tenants tn
    WHERE tn.max_concurrency IS NOT NULL
      AND EXISTS (SELECT 1 FROM tasks p
                  WHERE p.tenant_id = tn.id AND p.status = 'pending'
                    AND ($1::text[] IS NULL OR p.queue = ANY($1::text[])))
    ORDER BY 1)) AS k;

-- name: claim_from_table
-- Redis is down: claim ready tasks straight from PostgreSQL, highest priority and oldest first.
-- SKIP LOCKED lets many workers do this at once without waiting on each other. After
-- lock_capped_with_work, in its transaction: a capped tenant with tasks ready gets no more than
-- its room (as in claim_capped); a full one is not read at all, so its backlog cannot fill the
-- batch. What is left out stays pending for a later poll.
WITH room AS MATERIALIZED (
    SELECT tn.id AS tid,
           tn.max_concurrency - (SELECT count(*) FROM (
               SELECT 1 FROM tasks r
               WHERE r.tenant_id = tn.id AND r.status = 'processing'
                 AND r.lease_expires_at >= now()
               LIMIT tn.max_concurrency) AS running) AS free
    FROM tenants tn
    WHERE tn.max_concurrency IS NOT NULL
      AND EXISTS (SELECT 1 FROM tasks p
                  WHERE p.tenant_id = tn.id AND p.status = 'pending'
                    AND ($1::text[] IS NULL OR p.queue = ANY($1::text[])))
), ready AS (
    SELECT id AS cid, tenant_id AS tid, priority AS prio FROM tasks
    WHERE status = 'pending' AND ($1::text[] IS NULL OR queue = ANY($1::text[]))
      AND region IS NOT DISTINCT FROM $5::text  -- a worker's region only (NULL: no region)
      AND tenant_id NOT IN (SELECT tid FROM room WHERE free <= 0)
    ORDER BY priority, id LIMIT $2 FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT ready.cid, room.free,
           row_number() OVER (PARTITION BY ready.tid ORDER BY ready.prio, ready.cid) AS n
    FROM ready LEFT JOIN room ON room.tid = ready.tid
)
UPDATE tasks t
SET status = 'processing', lease_epoch = t.lease_epoch + 1, lease_owner = $3,
    lease_expires_at = now() + make_interval(secs => coalesce(t.visibility_timeout_s, $4)),
    attempts = t.attempts + 1,
    started_at = coalesce(t.started_at, now())
FROM ranked
WHERE t.id = ranked.cid AND (ranked.free IS NULL OR ranked.n <= ranked.free)
RETURNING t.id, t.tenant_id, t.type, t.queue, t.payload, t.payload_key, t.attempts, t.max_attempts, t.timeout_s,
          t.lease_epoch, t.idempotency_key, t.correlation_id, t.trace_context,
          extract(epoch FROM t.created_at)::float8 AS created_unix,
          extract(epoch FROM t.run_at)::float8 AS run_unix,
          coalesce(t.visibility_timeout_s, $4)::float8 AS lease_s;

-- name: confirm_finished
-- After a commit whose outcome is unknown (the connection died): which outcomes did land?
SELECT t.id FROM tasks t
JOIN unnest($1::uuid[], $2::int8[], $3::text[]) AS u(id, epoch, status)
  ON t.id = u.id AND t.lease_epoch = u.epoch AND t.status = u.status;

-- name: unpublish_pending
-- Redis lost its data (restart without persistence): every pending task needs a new entry.
UPDATE tasks SET published_at = NULL WHERE status = 'pending' AND published_at IS NOT NULL;

-- name: finish_tasks
-- Completion, retry and failure in one compare-and-set: only the lease holder's epoch matches.
-- The attempt is logged in the same statement. A postponement (outcome 'postponed', status
-- 'scheduled': a dependency's breaker is open, worker/executor.py) gives its attempt back: the
-- count the claim took is returned and nothing is logged, so waiting out an outage never spends
-- the task's attempts (as claim_capped's deferral, but through the lease's fencing epoch).
WITH done AS (
    UPDATE tasks t
    SET status = u.status, result = u.result::jsonb, result_key = u.result_key,
        attempts = CASE WHEN u.outcome = 'postponed' THEN greatest(t.attempts - 1, 0)
                        ELSE t.attempts END,
        last_error = coalesce(u.error, t.last_error),
        run_at = coalesce(u.run_at, t.run_at),
        -- The statement's time, not the transaction's: with ctx.transaction() the transaction
        -- began when the handler did.
        finished_at = CASE WHEN u.status IN ('completed', 'failed') THEN statement_timestamp() END,
        published_at = CASE WHEN u.status = 'scheduled' THEN NULL ELSE t.published_at END,
        lease_owner = NULL, lease_expires_at = NULL
    FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                $7::text[], $8::float8[], $10::text[])
         AS u(id, epoch, status, result, error, run_at, outcome, duration_s, result_key)
    WHERE t.id = u.id AND t.lease_epoch = u.epoch AND t.status = (SELECT 'processing')  -- [1]
      AND u.status IN ('completed', 'scheduled', 'failed')  -- an attempt can only end so
    RETURNING t.id, t.tenant_id, t.attempts, u.outcome, u.error, u.duration_s
), logged AS (
    INSERT INTO task_attempts (task_id, attempt, tenant_id, outcome, error, worker, duration_s)
    SELECT id, attempts, tenant_id, outcome, error, $9, duration_s FROM done
    WHERE outcome IS DISTINCT FROM 'postponed'
)
SELECT id FROM done;

-- name: heartbeat_tasks
UPDATE tasks t
SET lease_expires_at = now() + make_interval(secs => coalesce(t.visibility_timeout_s, $3))
FROM unnest($1::uuid[], $2::int8[]) AS u(id, epoch)
WHERE t.id = u.id AND t.lease_epoch = u.epoch AND t.status = (SELECT 'processing')  -- [1]
RETURNING t.id;

-- name: release_tasks
-- Graceful shutdown: hand unfinished tasks back at once; the interrupted attempt is not counted.
UPDATE tasks t
SET status = 'pending', attempts = greatest(t.attempts - 1, 0), published_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest($1::uuid[], $2::int8[]) AS u(id, epoch)
WHERE t.id = u.id AND t.lease_epoch = u.epoch AND t.status = (SELECT 'processing')  -- [1]
RETURNING t.id;

-- name: promote_due
-- Due delayed tasks and retries become pending (committed before they are published: a worker
-- must see 'pending' when it reads the entry). SKIP LOCKED: several schedulers share the work.
UPDATE tasks t SET status = 'pending', published_at = NULL
FROM (SELECT id FROM tasks WHERE status = 'scheduled' AND run_at <= now()
      ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) AS due
WHERE t.id = due.id
RETURNING t.id, t.tenant_id, t.queue, t.priority, t.region, t.correlation_id;

-- name: relay_unpublished
-- Pending rows whose stream entry was never written (Redis down at submit or promotion, a
-- crash between commit and XADD, tasks handed back at shutdown). The grace after run_at keeps
-- the relay out of the way of the API's and the promoter's own publish. Runs in the publishing
-- transaction: rows stay locked until their entries exist.
UPDATE tasks t SET published_at = now()
FROM (SELECT id FROM tasks WHERE status = 'pending' AND published_at IS NULL
        AND run_at < now() - make_interval(secs => $2)
      ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) AS lost
WHERE t.id = lost.id
RETURNING t.id, t.tenant_id, t.queue, t.priority, t.region;

-- name: rescue_expired
-- Leases that ran out long ago (the worker died and no other worker reclaimed the entry): back
-- to pending, or failed with worker_lost when the attempts are spent.
WITH lost AS (
    UPDATE tasks t
    SET status = CASE WHEN t.attempts >= t.max_attempts THEN 'failed' ELSE 'pending' END,
        last_error = 'worker_lost: lease expired during attempt ' || t.attempts,
        finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() END,
        published_at = NULL, lease_owner = NULL, lease_expires_at = NULL
    FROM (SELECT id FROM tasks WHERE status = 'processing'
            AND lease_expires_at < now() - make_interval(secs => $2)
          LIMIT $1 FOR UPDATE SKIP LOCKED) AS expired
    WHERE t.id = expired.id
    RETURNING t.id, t.tenant_id, t.attempts, t.status, t.last_error
), logged AS (
    INSERT INTO task_attempts (task_id, attempt, tenant_id, outcome, error)
    SELECT id, attempts, tenant_id, 'worker_lost', last_error FROM lost
)
SELECT id, status FROM lost;

-- name: fail_lost
-- Entries reclaimed for tasks whose lease ran out with no attempts left: the worker died on
-- every attempt (a poison task), so it ends failed instead of looping.
WITH lost AS (
    UPDATE tasks
    SET status = 'failed', finished_at = now(),
        last_error = 'worker_lost: lease expired during attempt ' || attempts,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ANY($1::uuid[]) AND status = (SELECT 'processing')  -- [1]
      AND lease_expires_at < now()
      AND attempts >= max_attempts
    RETURNING id, tenant_id, attempts, last_error
), logged AS (
    INSERT INTO task_attempts (task_id, attempt, tenant_id, outcome, error)
    SELECT id, attempts, tenant_id, 'worker_lost', last_error FROM lost
)
SELECT id FROM lost;

-- name: upsert_queue
INSERT INTO queues (tenant_id, name, region) VALUES ($1, $2, coalesce($3, ''))
ON CONFLICT DO NOTHING RETURNING name;

-- name: unpublish
-- Entries a stopping worker read but never claimed: let the relay publish them again.
-- [1] for the status.
UPDATE tasks SET published_at = NULL
WHERE id = ANY($1::uuid[]) AND status = (SELECT 'pending');

-- name: list_attempts
SELECT a.attempt, a.outcome, a.error, a.worker, a.duration_s, a.finished_at
FROM task_attempts a JOIN tasks t ON t.id = a.task_id
WHERE t.tenant_id = $1 AND a.task_id = $2
ORDER BY a.finished_at, a.attempt;

-- name: list_dead
-- As list_tasks, within the failed tasks (tasks_failed_idx).
SELECT {task_columns} FROM tasks
WHERE tenant_id = $1 AND status = 'failed' {filters}
ORDER BY id DESC
LIMIT $2;

-- name: replay_dead
-- Failed tasks back to pending with a fresh set of attempts; each replay is recorded.
WITH chosen AS (
    SELECT id AS cid FROM tasks
    WHERE tenant_id = $1 AND status = 'failed'
      AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))
      AND ($3::text IS NULL OR type = $3)
      AND ($4::text IS NULL OR queue = $4)
    ORDER BY id
    LIMIT $5
    FOR UPDATE SKIP LOCKED
), replayed AS (
    UPDATE tasks t
    SET status = 'pending', attempts = 0, finished_at = NULL, run_at = now(),
        published_at = NULL, result = NULL, result_key = NULL
    FROM chosen WHERE t.id = chosen.cid
    RETURNING {task_columns}
), logged AS (
    INSERT INTO task_replays (task_id, tenant_id, replayed_by, last_error)
    SELECT id, tenant_id, $6, last_error FROM replayed
)
SELECT * FROM replayed;
