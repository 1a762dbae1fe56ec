"""A scratch database for the benchmarks that run apart from the suite (`rls_cost.py`,
`purge.py`): made and migrated with progress on stderr, dropped afterwards."""

from __future__ import annotations

import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from taskstream.store.migrate import migrate


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def with_db(url: str, name: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{name}", p.query, p.fragment))


async def create_scratch(pg: str, prefix: str) -> tuple[str, str]:
    """A new database next to ``pg``'s, migrated: (its name, its URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    dsn = with_db(pg, name)
    say(f"database {name}: migrating")
    await migrate(dsn, progress=lambda line: say(f"  {line}"))
    return name, dsn


async def drop_scratch(pg: str, name: str) -> None:
    admin = await asyncpg.connect(pg)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
