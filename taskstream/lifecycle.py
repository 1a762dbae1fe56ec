"""The CLI's data-lifecycle verbs: ``migrate``, ``keygen``, ``reencrypt``, ``audit verify``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import uuid4

from .core.audit import Actor
from .core.config import Settings
from .runtime import run_async

Verb = Callable[[str, Callable[..., int], str], argparse.ArgumentParser]


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cli_actor() -> Actor:
    """Who runs this command, as the audit log records it: ``cli:<user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = f"uid{os.getuid()}"
    return Actor(name=f"cli:{user}", request_id=uuid4().hex, at=datetime.now(UTC))


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from .store.migrate import migrate

    applied = run_async(migrate(settings.database_url, progress=progress))
    progress(f"migrations applied: {len(applied)} new" if applied else "schema is up to date")
    return 0


def cmd_keygen(_: Settings, args: argparse.Namespace) -> int:
    from .core.crypto import KID, new_key

    if not KID.fullmatch(args.kid):
        print("taskstream: a key id is 1-32 letters, digits, '_', '.' or '-'", file=sys.stderr)
        return 2
    print(f"{args.kid}:{new_key()}")
    return 0


def cmd_reencrypt(settings: Settings, args: argparse.Namespace) -> int:
    from .core.crypto import keyring
    from .store.database import create_pool
    from .store.sealing import Resealer

    async def run() -> int:
        pool = await create_pool(settings.database_url, min_size=1, max_size=1)
        try:
            done = await Resealer(pool, keyring(settings.encryption_keys)).run(args.batch, progress)
        finally:
            await pool.close()
        progress(
            f"reencrypt: {done.moved:,} rows sealed with the first key in {done.passes} pass(es)"
            + (f"; {done.changed:,} changed meanwhile, run it again" if done.changed else "")
        )
        return 0 if not done.changed else 1

    code: int = run_async(run())
    return code


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from .store.audit import AuditStore
    from .store.database import create_pool
    from .store.tenants import TenantStore

    async def run() -> int:
        pool = await create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            tenant = None if args.tenant is None else await TenantStore(pool).tenant_id(args.tenant)
            tenants = rows = 0
            async for tenant_id, seq, broken in AuditStore(pool).verify(tenant):
                tenants, rows = tenants + 1, rows + seq
                if broken is not None:
                    print(f"BROKEN tenant {tenant_id} row {broken.seq}: {broken.reason}")
                    return 1
                progress(f"tenant {tenant_id}: {seq:,} rows, chain intact")
        finally:
            await pool.close()
        print(f"audit log intact: {rows:,} rows of {tenants} tenant(s)")
        return 0

    code: int = run_async(run())
    return code


def add_verbs(verb: Verb) -> None:
    keygen = verb("keygen", cmd_keygen, "print a new encryption key for TASKSTREAM_ENCRYPTION_KEYS")
    keygen.add_argument("kid", help="the key's id (stored with every row it seals)")
    reencrypt = verb(
        "reencrypt",
        cmd_reencrypt,
        "seal every stored payload and result with the first of TASKSTREAM_ENCRYPTION_KEYS",
    )
    reencrypt.add_argument("--batch", type=int, default=1000, help="rows per transaction")
    audit = verb("audit", lambda *_: 2, "the audit log")
    audit_verbs = audit.add_subparsers(dest="audit_verb", required=True)
    check = audit_verbs.add_parser(
        "verify", help="check every row and the hash chain; exit 1 naming the first broken row"
    )
    check.add_argument("--tenant", help="only this tenant's log (by name)")
    check.set_defaults(fn=cmd_audit_verify)
