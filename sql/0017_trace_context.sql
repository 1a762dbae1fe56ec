-- 0017: the W3C trace context of the submit that created a task (observability/tracing.py),
-- so each attempt's span joins the submit's trace. NULL when tracing is off. Adding a
-- nullable column rewrites nothing.
ALTER TABLE tasks ADD COLUMN trace_context text;
