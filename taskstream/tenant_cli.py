"""The CLI's tenant verbs: ``tenant create|update|list`` with limits, retention and region."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import msgspec

from .core.config import Settings, region_names
from .core.errors import ProblemError, Unprocessable
from .lifecycle import Verb, cli_actor, progress
from .runtime import run_async
from .tables import aligned

if TYPE_CHECKING:
    from .store.tenants import TenantInfo, TenantLimits, TenantStore

T = TypeVar("T")


def with_tenants(settings: Settings, fn: Callable[[TenantStore], Awaitable[T]]) -> T:
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
    region = _region(settings, getattr(args, "region", None))
    print(
        with_tenants(
            settings,
            lambda tenants: tenants.create_tenant(args.name, limits, by=cli_actor(), region=region),
        )
    )
    return 0


def _region(settings: Settings, given: str | None) -> str | None:
    """A region option: one of TASKSTREAM_REGIONS, or ``none`` (no home region)."""
    if given is None or given == "none":
        return None
    if given not in region_names(settings.regions):
        known = ", ".join(sorted(region_names(settings.regions))) or "none configured"
        raise Unprocessable(
            f"unknown region {given!r} (TASKSTREAM_REGIONS: {known})", code="unknown_region"
        )
    return given


def cmd_tenant_update(settings: Settings, args: argparse.Namespace) -> int:
    changes = _limit_changes(args)
    region = _region(settings, args.region) if hasattr(args, "region") else ...
    if not changes and region is ...:
        progress("taskstream: nothing to change: give --rate-limit, --max-pending, "
                  "--max-concurrency, --retention-days, --weight or --region")  # fmt: skip
        return 2
    info = with_tenants(
        settings,
        lambda tenants: tenants.update_tenant(args.name, changes, by=cli_actor(), region=region),
    )
    print(tenant_table([info], settings))
    return 0


def cmd_tenant_list(settings: Settings, args: argparse.Namespace) -> int:
    found = with_tenants(settings, lambda tenants: tenants.list_tenants())
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
    region: str | None

    @classmethod
    def of(cls, info: TenantInfo, settings: Settings) -> TenantOut:
        return cls(
            id=str(info.id), name=info.name, created_at=info.created_at, limits=info.limits,
            effective=effective_limits(info.limits, settings), region=info.region,
        )  # fmt: skip


def _limit_cell(own: int | None, default: int | None) -> str:
    if own is not None:
        return str(own)
    return f"default ({default})" if default is not None else "no cap"


def tenant_table(tenants: Sequence[TenantInfo], settings: Settings) -> str:
    """Tenants and their limits as an aligned table; a default shows the value it stands for."""
    head = ("NAME", "ID", "RATE LIMIT", "MAX PENDING", "MAX CONCURRENCY", "WEIGHT", "RETENTION",
            "REGION")  # fmt: skip
    rows = [head] + [
        (t.name, str(t.id), _limit_cell(t.limits.rate_limit, settings.tenant_rate_limit),
         _limit_cell(t.limits.max_pending, settings.tenant_max_pending),
         _limit_cell(t.limits.max_concurrency, None), str(t.limits.weight),
         _limit_cell(t.limits.retention_days, settings.retention_days), t.region or "-")
        for t in tenants
    ]  # fmt: skip
    return aligned(rows)


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
    parser.add_argument(
        "--region", default=argparse.SUPPRESS, metavar="R",
        help="home region (one of TASKSTREAM_REGIONS): where tasks that name none run; "
        "'none': no home region",
    )  # fmt: skip


def add_tenant_verbs(verb: Verb) -> None:
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
