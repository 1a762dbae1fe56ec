"""The `taskstream` command: builds Settings once and hands services to the runtime."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import msgspec

from . import __version__
from .core.config import Settings, region_names
from .core.crypto import keyring
from .core.errors import ProblemError, TaskstreamError
from .lifecycle import add_verbs, cli_actor, cmd_migrate, progress
from .observability import tracing
from .observability.logging import configure
from .runtime import run_async
from .tables import aligned, when
from .task_cli import add_task_verbs
from .tenant_cli import add_tenant_verbs, with_tenants

if TYPE_CHECKING:
    from .pool.arbiter import PoolOptions
    from .pool.policy import Bounds
    from .store.tenants import KeyInfo, TenantStore
    from .streams import StreamRow

T = TypeVar("T")


# -- verbs ------------------------------------------------------------------------------------


def cmd_key_create(settings: Settings, args: argparse.Namespace) -> int:
    async def create(tenants: TenantStore) -> str:
        tenant_id = await tenants.tenant_id(args.tenant)
        return await tenants.create_key(
            tenant_id, args.role, expires_in_s=args.expires_in, by=cli_actor()
        )

    key = with_tenants(settings, create)
    print(key, flush=True)  # alone on its line, shown once: only a hash is stored
    return 0


def cmd_key_list(settings: Settings, args: argparse.Namespace) -> int:
    async def keys(tenants: TenantStore) -> list[KeyInfo]:
        return await tenants.list_keys(await tenants.tenant_id(args.tenant))

    found = with_tenants(settings, keys)
    if args.output == "json":
        print(msgspec.json.encode(found).decode())
    else:
        print(key_table(found))
    return 0


def cmd_key_revoke(settings: Settings, args: argparse.Namespace) -> int:
    prefix = args.prefix.split("_")[1] if args.prefix.startswith("tsk_") else args.prefix
    tenant, info = with_tenants(
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
    if _pooled(args):
        from .supervisor import supervise

        return supervise(
            args.processes, _child_argv(args), metrics_port=args.metrics_port,
            pool=_pool_options(args),
        )  # fmt: skip
    from .runtime import serve
    from .services import worker_service

    if args.region is not None and args.region not in region_names(settings.regions):
        progress(f"taskstream: unknown region {args.region!r}: not in TASKSTREAM_REGIONS")
        return 2
    service = worker_service(
        settings, args.app, _queues(args.queues), args.concurrency, args.region,
        args.metrics_port,
    )  # fmt: skip
    serve([service], worker_gc=True)
    return 0


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from .runtime import serve
    from .services import scheduler_service

    serve([scheduler_service(settings, metrics_port=args.metrics_port)])
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


def _pooled(args: argparse.Namespace) -> bool:
    """A supervisor runs the workers: several, or one replaced past its limits or hung."""
    pool_flags = (args.autoscale, args.max_tasks_per_child, args.max_memory_mb,
                  args.child_timeout_s)  # fmt: skip
    return args.processes > 1 or any(flag is not None for flag in pool_flags)


def _pool_options(args: argparse.Namespace) -> PoolOptions:
    from .pool.arbiter import PoolOptions
    from .pool.policy import CHILD_TIMEOUT_S, Autoscale, Limits

    autoscale = None
    if args.autoscale is not None:
        autoscale = Autoscale(
            bounds=args.autoscale, up_after_s=args.scale_up_after_s,
            down_after_s=args.scale_down_after_s,
        )  # fmt: skip
    return PoolOptions(
        slots_per_child=args.concurrency,
        autoscale=autoscale,
        child_timeout_s=args.child_timeout_s or CHILD_TIMEOUT_S,
        limits=Limits(max_tasks=args.max_tasks_per_child, max_memory_mb=args.max_memory_mb),
    )


def _bounds(text: str) -> Bounds:
    """``--autoscale MIN,MAX`` (1 <= MIN <= MAX)."""
    from .pool.policy import Bounds

    low, _, high = text.partition(",")
    try:
        bounds = Bounds(int(low), int(high))
    except ValueError:
        bounds = Bounds(0, 0)
    if not 1 <= bounds.low <= bounds.high:
        raise argparse.ArgumentTypeError(f"{text!r}: use MIN,MAX with 1 <= MIN <= MAX, e.g. 2,8")
    return bounds


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(text: str) -> T:
        with contextlib.suppress(ValueError):
            if float(text) > 0:
                return kind(text)  # ValueError for e.g. 2.5 as an int
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")

    return parse


def _child_argv(args: argparse.Namespace) -> list[str]:
    """A child's command line: the plain worker's. The pool's options stay with the
    supervisor (the limits reach the children through their environment: pool/status.py)."""
    argv = [sys.executable, "-m", "taskstream", "worker", "--concurrency", str(args.concurrency)]
    for app in args.app:
        argv += ["--app", app]
    if args.queues:
        argv += ["--queues", args.queues]
    if args.region:
        argv += ["--region", args.region]
    return argv


# -- parser -----------------------------------------------------------------------------------


def _add_pool_options(worker: argparse.ArgumentParser) -> None:
    """The worker pool's options (pool/): any of them runs the workers under a supervisor."""
    pool = worker.add_argument_group("pool (a supervisor; SIGTTIN/SIGTTOU to it: one more/less)")
    pool.add_argument(
        "--autoscale", type=_bounds, metavar="MIN,MAX",
        help="grow on backlog and shrink when idle, between MIN and MAX processes",
    )  # fmt: skip
    pool.add_argument(
        "--scale-up-after-s", type=_positive(float), default=5.0, metavar="S",
        help="with --autoscale: grow once tasks have waited for free slots this long (5)",
    )  # fmt: skip
    pool.add_argument(
        "--scale-down-after-s", type=_positive(float), default=30.0, metavar="S",
        help="with --autoscale: shrink by one after this long idle (30)",
    )  # fmt: skip
    pool.add_argument(
        "--max-tasks-per-child", type=_positive(int), metavar="N",
        help="a process that ran N tasks finishes its running ones and is replaced",
    )  # fmt: skip
    pool.add_argument(
        "--max-memory-mb", type=_positive(int), metavar="MB",
        help="a process whose resident memory passes MB finishes its tasks and is replaced",
    )  # fmt: skip
    pool.add_argument(
        "--child-timeout-s", type=_positive(float), metavar="S",
        help="kill and replace a process whose event loop stopped beating this long (30)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskstream", description="Durable multi-tenant task queue (PostgreSQL + Redis)."
    )
    parser.add_argument("--version", action="version", version=f"taskstream {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, fn: Callable[..., int], help_: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    dev = verb("dev", cmd_dev, "run everything locally: Redis, PostgreSQL, API, scheduler, worker")
    dev.add_argument("--port", type=int, default=8000, help="API port (default 8000, or free)")
    dev.add_argument("--data-dir", default=".taskstream", help="where private servers keep data")
    dev.add_argument("--app", action="append", default=[], help="extra handler modules")
    dev.add_argument(
        "--redis-cluster", action="store_true",
        help="a private Redis Cluster of 3 masters in place of one Redis (redis+cluster://)",
    )  # fmt: skip

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
    worker.add_argument(
        "--processes", type=int, default=1,
        help="worker processes (supervised); with --autoscale, the size to start at",
    )  # fmt: skip
    worker.add_argument("--region", help="run only this region's tasks (one of TASKSTREAM_REGIONS)")
    worker.add_argument(
        "--metrics-port", type=int, help="serve /metrics on this port (with --processes: all)"
    )
    _add_pool_options(worker)

    scheduler = verb(
        "scheduler", cmd_scheduler, "promote delayed tasks and retries, relay, rescue leases"
    )
    scheduler.add_argument("--metrics-port", type=int, help="serve /metrics on this port")

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

    add_tenant_verbs(verb)
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
    add_task_verbs(verb)  # tasks, queues, workers, dlq, schedules: over the API (task_cli.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        keyring(settings.encryption_keys)  # checked once, here: errors name the key id
        region_names(settings.regions)
    except (msgspec.ValidationError, ValueError) as exc:
        print(f"taskstream: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure(settings.log_format, settings.log_level)
    try:  # OTEL_TRACES_EXPORTER: nothing of OpenTelemetry is imported without it
        tracing.configure(f"taskstream-{args.verb}")
    except ValueError as exc:
        print(f"taskstream: invalid configuration: {exc}", file=sys.stderr)
        return 2
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
