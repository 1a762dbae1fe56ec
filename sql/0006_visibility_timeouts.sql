-- 0006: visibility timeout per task type and per task (NULL: the deployment's default).
ALTER TABLE task_types ADD COLUMN visibility_timeout_s double precision
    CHECK (visibility_timeout_s > 0);
ALTER TABLE tasks ADD COLUMN visibility_timeout_s double precision
    CHECK (visibility_timeout_s > 0);
