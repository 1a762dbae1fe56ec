"""The CLI's data-lifecycle verbs: ``migrate``, ``keygen`` and ``reencrypt``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .core.config import Settings
from .runtime import run_async

Verb = Callable[[str, Callable[..., int], str], argparse.ArgumentParser]


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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

    return run_async(run())


def add_verbs(verb: Verb) -> None:
    keygen = verb("keygen", cmd_keygen, "print a new encryption key for TASKSTREAM_ENCRYPTION_KEYS")
    keygen.add_argument("kid", help="the key's id (stored with every row it seals)")
    reencrypt = verb(
        "reencrypt",
        cmd_reencrypt,
        "seal every stored payload and result with the first of TASKSTREAM_ENCRYPTION_KEYS",
    )
    reencrypt.add_argument("--batch", type=int, default=1000, help="rows per transaction")
