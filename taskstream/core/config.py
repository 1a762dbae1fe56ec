"""Settings, read once from the environment into a frozen object (built by the CLI)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Literal

import msgspec

# Positive and finite: a zero, negative or NaN timeout would stall or spin every loop.
Seconds = Annotated[float, msgspec.Meta(gt=0, le=365 * 86_400)]
Count = Annotated[int, msgspec.Meta(ge=1)]
REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every knob, its default and its unit. Environment: ``TASKSTREAM_<FIELD>`` upper-cased."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holding the work streams."""
    database_url: str = "postgresql://127.0.0.1:5432/taskstream"
    """PostgreSQL, the source of truth. `taskstream migrate` creates the database if missing."""
    db_pool_size: Count = 10
    """PostgreSQL connections per API or worker process. Work is batched, so a few suffice;
    handlers inside ``ctx.transaction()`` each hold one while they run."""
    redis_prefix: str = "ts"
    """Prefix of every Redis key; lets several deployments (or tests) share one Redis."""
    visibility_timeout_s: Seconds = 30.0
    """Lease length: a task whose worker stops heartbeating is handed out again after this."""
    default_max_attempts: Count = 3
    """Attempts for a task whose type and submission give none."""
    default_timeout_s: Seconds = 60.0
    """Handler timeout for a task whose type and submission give none."""
    retry_base_s: Seconds = 1.0
    """Backoff after the first failed attempt (before jitter); doubles per attempt."""
    retry_cap_s: Seconds = 300.0
    """Backoff ceiling."""
    idempotency_ttl_s: Seconds = 86_400.0
    """How long an idempotency key keeps naming its task (then it may be reused)."""
    max_payload_bytes: Count = 256 * 1024
    """Largest accepted payload (JSON bytes); larger gets 413."""
    max_result_bytes: Count = 64 * 1024
    """Largest stored result; a larger one is replaced by an error note."""
    max_request_bytes: Count = 8 * 1024 * 1024
    """Largest request body (a batch of 1,000 tasks)."""
    api_key_cache_ttl_s: Seconds = 10.0
    """How long the API trusts a verified key before checking it again (revocation delay)."""
    max_header_bytes: Count = 16 * 1024
    """Largest request head (request line and headers together); larger gets 431."""
    metrics_token: str | None = None
    """Bearer token that may read `/metrics` besides an admin key; unset: admin keys only."""
    auth_failures_per_minute: Count = 30
    """Wrong API keys one client address may send per minute before it gets 429 (valid keys
    are never slowed down)."""
    tenant_rate_limit: Count = 100
    """Requests per minute per tenant, over every route, for tenants created without their own
    `--rate-limit`; over it: 429 `rate_limited` with `Retry-After`."""
    tenant_max_pending: Count = 1_000_000
    """Tasks waiting (pending + scheduled) per tenant without its own `--max-pending`; a submit
    over it gets 503 `queue_full` and nothing is written."""
    max_schedules_per_tenant: Count = 100
    """Schedules one tenant may have; one more gets 409 `schedule_quota_exceeded`."""
    min_schedule_interval_s: Seconds = 10.0
    """Shortest interval between two fires of a schedule; a cron expression that fires more
    often gets 422 `schedule_too_frequent`."""
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=36_500)] = 30
    """Days a finished task (completed, failed, cancelled) is kept, with its attempts, for
    tenants without their own `--retention-days`; then the scheduler's leader deletes it."""
    retention_interval_s: Seconds = 300.0
    """How often the scheduler's leader deletes what retention let go."""
    audit_submissions: bool = True
    """Record every submission in the audit log (`task.submit`), in its group commit; false:
    only the state-changing calls (cancel, retry, replays, schedules, keys, tenants)."""
    regions: str | None = None
    """Regions tasks may be placed in, comma-separated (`eu,us`): `region` on submit, a
    tenant's `--region`, `taskstream worker --region R`. Unset: no regions (a task naming one
    gets 422 `unknown_region`)."""
    encryption_keys: str | None = None
    """`kid:base64-32-bytes,...`: payloads and results are stored AES-256-GCM sealed with the
    first key; every key listed opens what it sealed. Unset: stored clear. `taskstream keygen`
    makes a key; `taskstream reencrypt` moves stored rows to the first key."""
    breaker_failures: Count = 5
    """Consecutive failed attempts of the tasks using a dependency breaker (`@task(...,
    breakers=["smtp"])`, `ctx.breaker("smtp")`) that open it, for the tenant; a breaker's own
    `failures=` overrides it."""
    breaker_cooldown_s: Seconds = 30.0
    """How long an open breaker postpones the tasks that need it (no attempt spent) before one
    probe may go through; a breaker's own `cooldown_s=` overrides it."""
    promote_interval_s: Seconds = 0.05
    """How often the promoter looks for due delayed/retry tasks and unpublished rows."""
    publish_grace_s: Seconds = 2.0
    """Age after which a pending row with no stream entry is published by the relay."""
    shutdown_grace_s: Seconds = 10.0
    """How long a stopping worker lets running tasks finish before handing them back."""
    metrics: bool = True
    """Count every request and attempt for `/metrics` (`http_requests_total`,
    `tasks_completed_total`, ...). `false` leaves those out (depths and gauges are still
    served); for measuring what counting costs."""
    log_format: Literal["json", "console"] = "json"
    """`json` (one object per line) or `console`."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged: `debug`, `info`, `warning` or `error`."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for name in cls.__struct_fields__:
            raw = env.get(f"TASKSTREAM_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = raw
        return msgspec.convert(values, cls, strict=False)


@cache
def region_names(spec: str | None) -> frozenset[str]:
    """The regions of ``TASKSTREAM_REGIONS``; a malformed name is a ValueError."""
    names = frozenset(r.strip() for r in (spec or "").split(",") if r.strip())
    for name in sorted(names):
        if not REGION.fullmatch(name):
            raise ValueError(
                f"TASKSTREAM_REGIONS: {name[:40]!r} is not a region name (1-32 of a-z, 0-9, '-')"
            )
    return names
