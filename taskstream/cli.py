"""The `taskstream` command: builds Settings once and hands services to the runtime."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import msgspec

from .core.config import Settings
from .core.crypto import keyring
from .core.errors import ProblemError, TaskstreamError
from .lifecycle import add_verbs, cli_actor, cmd_migrate, progress
from .observability.logging import configure
from .runtime import run_async
from .tables import aligned, when

if TYPE_CHECKING:
    from .store.tenants import KeyInfo, TenantInfo, TenantLimits, TenantStore
    from .streams import StreamRow

T = TypeVar("T")


# -- verbs ------------------------------------------------------------------------------------


def _with_tenants(settings: Settings, fn: Callable[[TenantStore], Awaitable[T]]) -> T:
    """Run ``fn`` with a TenantStore on a one-connection pool (short admin verbs)."""
    from .store.database import create_pool
    from .store.tenants import TenantStore

    async def go() -> T:
        pool = await create_pool(settings.database_url, min_size=1, max_size=1)
        try:
            return await fn(TenantStore(pool))
        finally:
            await pool.close()

    result: T = run_async(go())
    return result


# The limit options of `tenant create|update`: (option, TenantLimits field, what it means).
_LIMIT_OPTIONS = (
    ("--rate-limit", "rate_limit",
     "requests per minute over every route; 'default': TASKSTREAM_TENANT_RATE_LIMIT"),
    ("--max-pending", "max_pending",
     "tasks waiting (pending + scheduled); 'default': TASKSTREAM_TENANT_MAX_PENDING"),
    ("--max-concurrency", "max_concurrency",
     "tasks processing at once across all workers; 'default': no cap"),
    ("--retention-days", "retention_days",
     "days finished tasks are kept; 'default': TASKSTREAM_RETENTION_DAYS"),
)  # fmt: skip


def _limit_type(field: str) -> Callable[[str], int | None]:
    """Parses an option of ``field``: a whole number in range, or ``default`` (None) except for
    the weight. The store's own check decides, so the CLI and the store agree on the bounds."""

    def parse(text: str) -> int | None:
        from .store.tenants import check_limit

        value = text.strip()
        if value.lower() == "default" and field != "weight":
            return None
        try:
            return check_limit(field, int(value) if value.lstrip("+-").isdecimal() else text)
        except ProblemError as exc:
            raise argparse.ArgumentTypeError(exc.detail) from None

    parse.__name__ = field  # argparse names the type in its "invalid ... value" message
    return parse


def _limit_changes(args: argparse.Namespace) -> dict[str, int | None]:
    """The limits given on the command line (options left out are absent)."""
    fields = [field for _, field, _ in _LIMIT_OPTIONS] + ["weight"]
    return {field: getattr(args, field) for field in fields if hasattr(args, field)}


def cmd_tenant_create(settings: Settings, args: argparse.Namespace) -> int:
    from .store.tenants import TenantLimits

    limits = msgspec.structs.replace(TenantLimits(), **_limit_changes(args))
    print(
        _with_tenants(
            settings, lambda tenants: tenants.create_tenant(args.name, limits, by=cli_actor())
        )
    )
    return 0


def cmd_tenant_update(settings: Settings, args: argparse.Namespace) -> int:
    changes = _limit_changes(args)
    if not changes:
        progress("taskstream: nothing to change: give --rate-limit, --max-pending, "
                  "--max-concurrency, --retention-days or --weight")  # fmt: skip
        return 2
    info = _with_tenants(
        settings, lambda tenants: tenants.update_tenant(args.name, changes, by=cli_actor())
    )
    print(tenant_table([info], settings))
    return 0


def cmd_tenant_list(settings: Settings, args: argparse.Namespace) -> int:
    found = _with_tenants(settings, lambda tenants: tenants.list_tenants())
    if args.output == "json":
        print(msgspec.json.encode([TenantOut.of(t, settings) for t in found]).decode())
    else:
        print(tenant_table(found, settings))
    return 0


def effective_limits(limits: TenantLimits, settings: Settings) -> TenantLimits:
    """The limits that apply: the tenant's own, else the deployment's defaults."""
    return msgspec.structs.replace(
        limits,
        rate_limit=limits.rate_limit or settings.tenant_rate_limit,
        max_pending=limits.max_pending or settings.tenant_max_pending,
        retention_days=limits.retention_days or settings.retention_days,
    )


class TenantOut(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant in `tenant list --output json`: its own limits (null: the default, or no cap
    for max_concurrency) and the ones in effect with this deployment's settings."""

    id: str
    name: str
    created_at: datetime
    limits: TenantLimits
    effective: TenantLimits

    @classmethod
    def of(cls, info: TenantInfo, settings: Settings) -> TenantOut:
        return cls(
            id=str(info.id), name=info.name, created_at=info.created_at, limits=info.limits,
            effective=effective_limits(info.limits, settings),
        )  # fmt: skip


def _limit_cell(own: int | None, default: int | None) -> str:
    if own is not None:
        return str(own)
    return f"default ({default})" if default is not None else "no cap"


def tenant_table(tenants: Sequence[TenantInfo], settings: Settings) -> str:
    """Tenants and their limits as an aligned table; a default shows the value it stands for."""
    head = ("NAME", "ID", "RATE LIMIT", "MAX PENDING", "MAX CONCURRENCY", "WEIGHT", "RETENTION")
    rows = [head] + [
        (t.name, str(t.id), _limit_cell(t.limits.rate_limit, settings.tenant_rate_limit),
         _limit_cell(t.limits.max_pending, settings.tenant_max_pending),
         _limit_cell(t.limits.max_concurrency, None), str(t.limits.weight),
         _limit_cell(t.limits.retention_days, settings.retention_days))
        for t in tenants
    ]  # fmt: skip
    return aligned(rows)


def cmd_key_create(settings: Settings, args: argparse.Namespace) -> int:
    async def create(tenants: TenantStore) -> str:
        tenant_id = await tenants.tenant_id(args.tenant)
        return await tenants.create_key(
            tenant_id, args.role, expires_in_s=args.expires_in, by=cli_actor()
        )

    key = _with_tenants(settings, create)
    print(key, flush=True)  # alone on its line, shown once: only a hash is stored
    return 0


def cmd_key_list(settings: Settings, args: argparse.Namespace) -> int:
    async def keys(tenants: TenantStore) -> list[KeyInfo]:
        return await tenants.list_keys(await tenants.tenant_id(args.tenant))

    found = _with_tenants(settings, keys)
    if args.output == "json":
        print(msgspec.json.encode(found).decode())
    else:
        print(key_table(found))
    return 0


def cmd_key_revoke(settings: Settings, args: argparse.Namespace) -> int:
    prefix = args.prefix.split("_")[1] if args.prefix.startswith("tsk_") else args.prefix
    tenant, info = _with_tenants(
        settings, lambda tenants: tenants.revoke_any(prefix, by=cli_actor())
    )
    at = when(info.revoked_at)
    progress(f"revoked key {info.prefix} (tenant {tenant}, role {info.role}) at {at}")
    return 0


def key_table(keys: Sequence[KeyInfo]) -> str:
    """Keys as an aligned table (never the secret: it is not stored)."""
    head = ("PREFIX", "ROLE", "CREATED", "LAST USED", "EXPIRES", "REVOKED")
    rows = [head] + [
        (k.prefix, k.role, when(k.created_at), when(k.last_used_at), when(k.expires_at),
         when(k.revoked_at))
        for k in keys
    ]  # fmt: skip
    return aligned(rows)


_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_s(text: str) -> int:
    """``90d``, ``12h``, ``30m``, ``3600s`` or plain seconds, as seconds (> 0)."""
    match = _DURATION.fullmatch(text.strip().lower())
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)] if match else 0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: use e.g. 90d, 12h, 30m, 3600s or seconds"
        )
    return seconds


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    if args.processes > 1:
        from .supervisor import supervise

        argv = [sys.executable, "-m", "taskstream", "api", "--host", args.host]
        # Each process binds the port with SO_REUSEPORT; the kernel spreads connections.
        return supervise(args.processes, [*argv, "--port", str(args.port), "--reuse-port"], "api")
    from .runtime import serve
    from .services import api_service

    serve([api_service(settings, args.host, args.port, reuse_port=args.reuse_port)])
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    if args.processes > 1:
        from .supervisor import supervise

        return supervise(args.processes, _child_argv(args))
    from .runtime import serve
    from .services import worker_service

    service = worker_service(settings, args.app, _queues(args.queues), args.concurrency)
    serve([service], worker_gc=True)
    return 0


def cmd_scheduler(settings: Settings, _: argparse.Namespace) -> int:
    from .runtime import serve
    from .services import scheduler_service

    serve([scheduler_service(settings)])
    return 0


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from .dev import run_dev

    if not os.environ.get("TASKSTREAM_LOG_FORMAT"):  # a person is watching: readable logs
        settings = msgspec.structs.replace(settings, log_format="console")
        configure(settings.log_format, settings.log_level)

    return run_dev(settings, args, progress)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from .loadtest import main as bench_main

    key = args.key or os.environ.get("TASKSTREAM_API_KEY", "")
    if not key:
        print("taskstream: give --key or set TASKSTREAM_API_KEY", file=sys.stderr)
        return 2
    return bench_main(args.url, key, args.n, args.batch, args.type, args.payload, args.timeout)


def cmd_streams(settings: Settings, args: argparse.Namespace) -> int:
    from .streams import describe

    rows = run_async(describe(settings, args.tenant))
    if args.output == "json":
        print(msgspec.json.encode(rows).decode())
    else:
        print(stream_table(rows, settings.redis_prefix))
    return 0


def stream_table(rows: Sequence[StreamRow], prefix: str) -> str:
    from .streams import hints

    head = ("STREAM", "ENTRIES", "PENDING", "READY")
    cells = [(r.key, str(r.entries), str(r.pending), "yes" if r.ready else "") for r in rows]
    return "\n".join([aligned([head, *cells]), "", *hints(list(rows), prefix)])


def _queues(raw: str | None) -> list[str] | None:
    return [q.strip() for q in raw.split(",") if q.strip()] if raw else None


def _child_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "taskstream", "worker", "--concurrency", str(args.concurrency)]
    for app in args.app:
        argv += ["--app", app]
    if args.queues:
        argv += ["--queues", args.queues]
    return argv


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskstream", description="Durable multi-tenant task queue (PostgreSQL + Redis)."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, fn: Callable[..., int], help_: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    dev = verb("dev", cmd_dev, "run everything locally: Redis, PostgreSQL, API, scheduler, worker")
    dev.add_argument("--port", type=int, default=8000, help="API port (default 8000, or free)")
    dev.add_argument("--data-dir", default=".taskstream", help="where private servers keep data")
    dev.add_argument("--app", action="append", default=[], help="extra handler modules")

    verb("migrate", cmd_migrate, "create the database if needed and apply migrations")

    api = verb("api", cmd_api, "serve the REST API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument(
        "--processes", type=int, default=1, help="API processes sharing the port (supervised)"
    )
    api.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT")

    worker = verb("worker", cmd_worker, "run tasks")
    worker.add_argument(
        "--app",
        action="append",
        default=[],
        required=False,
        help="module whose @task handlers to load (repeatable)",
    )
    worker.add_argument("--queues", help="comma-separated queue names (default: all)")
    worker.add_argument("--concurrency", type=int, default=10, help="tasks at once per process")
    worker.add_argument("--processes", type=int, default=1, help="worker processes (supervised)")

    verb("scheduler", cmd_scheduler, "promote delayed tasks and retries, relay, rescue leases")

    bench = verb("bench", cmd_bench, "load test a running deployment through its API")
    bench.add_argument("--url", default="http://127.0.0.1:8000", help="API base URL")
    bench.add_argument("--key", help="API key (submitter or above); or TASKSTREAM_API_KEY")
    bench.add_argument("--n", type=int, default=10_000, help="tasks to submit")
    bench.add_argument("--batch", type=int, default=500, help="tasks per batch request")
    bench.add_argument("--type", default="examples.noop", help="task type to submit")
    bench.add_argument("--payload", default="{}", help="payload JSON for every task")
    bench.add_argument("--timeout", type=float, default=600, help="give up after (s)")

    add_verbs(verb)

    streams = verb("streams", cmd_streams, "each queue's Redis streams: entries, pending, ready")
    streams.add_argument("--tenant", help="only this tenant's queues")
    streams.add_argument("--output", choices=["table", "json"], default="table")

    tenant = verb("tenant", lambda *_: 2, "manage tenants and their limits")
    tenant_verbs = tenant.add_subparsers(dest="tenant_verb", required=True)
    create = tenant_verbs.add_parser("create", help="create a tenant; prints its id")
    create.add_argument("name")
    _limit_arguments(create)
    create.set_defaults(fn=cmd_tenant_create)
    update = tenant_verbs.add_parser("update", help="change a tenant's limits; the others stay")
    update.add_argument("name")
    _limit_arguments(update)
    update.set_defaults(fn=cmd_tenant_update)
    tl = tenant_verbs.add_parser("list", help="every tenant with its limits")
    tl.add_argument("--output", choices=["table", "json"], default="table")
    tl.set_defaults(fn=cmd_tenant_list)

    key = verb("key", lambda *_: 2, "manage API keys")
    key_verbs = key.add_subparsers(dest="key_verb", required=True)
    kc = key_verbs.add_parser("create", help="create an API key; prints it once")
    kc.add_argument("--tenant", required=True, help="tenant name")
    kc.add_argument("--role", required=True, choices=["admin", "operator", "submitter", "viewer"])
    kc.add_argument(
        "--expires-in", type=duration_s, metavar="DURATION", help="e.g. 90d, 12h, 30m, 3600s"
    )
    kc.set_defaults(fn=cmd_key_create)
    kl = key_verbs.add_parser("list", help="a tenant's keys (never the secrets)")
    kl.add_argument("--tenant", required=True, help="tenant name")
    kl.add_argument("--output", choices=["table", "json"], default="table")
    kl.set_defaults(fn=cmd_key_list)
    kr = key_verbs.add_parser("revoke", help="revoke a key: refused within the cache TTL")
    kr.add_argument("prefix", help="the key's prefix (the part after tsk_)")
    kr.set_defaults(fn=cmd_key_revoke)
    return parser


def _limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The limit options; one left out is absent from the namespace (kept, or the default)."""
    for option, field, meaning in _LIMIT_OPTIONS:
        parser.add_argument(
            option, dest=field, type=_limit_type(field), default=argparse.SUPPRESS, metavar="N",
            help=meaning,
        )  # fmt: skip
    parser.add_argument(
        "--weight", type=_limit_type("weight"), default=argparse.SUPPRESS, metavar="W",
        help="share of worker turns against other tenants with work waiting, 1-1000 (default 1)",
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        keyring(settings.encryption_keys)  # checked once, here: errors name the key id
    except (msgspec.ValidationError, ValueError) as exc:
        print(f"taskstream: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure(settings.log_format, settings.log_level)
    try:
        code: int = args.fn(settings, args)
    except ProblemError as exc:
        print(f"taskstream: {exc.detail}", file=sys.stderr)
        return 1
    except TaskstreamError as exc:
        print(f"taskstream: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
