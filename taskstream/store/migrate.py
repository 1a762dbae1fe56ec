"""Forward-only migrations from ``sql/NNNN_name.sql``, applied under an advisory lock and
recorded in ``schema_migrations``. Safe to run from several processes at once."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from .database import translate_errors

_LOCK_KEY = 0x7461736B73747265  # "tasks tre": one lock id for every taskstream deployment
_FILE = re.compile(r"^(\d{4})_[\w-]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_dir() -> Path:
    """`sql/` inside the wheel (taskstream/sql), or beside the package in a source checkout."""
    packaged = Path(str(resources.files("taskstream"))) / "sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "sql"


def discover(directory: Path | None = None) -> list[Migration]:
    folder = directory or migrations_dir()
    found = []
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.stem, path.read_text("utf-8")))
    return found


def database_name(dsn: str) -> str:
    """The database a ``postgresql://`` URL names (libpq's default: the user name)."""
    parts = urlsplit(dsn)
    name = unquote(parts.path.lstrip("/"))
    return name or unquote(parts.username or "") or getpass.getuser()


async def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` if it does not exist. Returns True if created."""
    name = database_name(dsn)
    with translate_errors():
        try:
            conn = await asyncpg.connect(dsn)
        except asyncpg.InvalidCatalogNameError:
            pass
        else:
            await conn.close()
            return False
        admin = await asyncpg.connect(dsn, database="postgres")
        try:
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                await admin.execute(f"CREATE DATABASE {quoted}")
            except asyncpg.DuplicateDatabaseError:
                return False
            return True
        finally:
            await admin.close()


async def migrate(
    dsn: str, *, progress: Callable[[str], None] = lambda _: None, create: bool = True
) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    if create and await ensure_database(dsn):
        progress("created database")
    applied_now: list[int] = []
    with translate_errors():
        conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for m in discover():
                if m.version in done:
                    continue
                progress(f"applying {m.name}")
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        m.version,
                        m.name,
                    )
                applied_now.append(m.version)
        finally:
            await conn.close()
    return applied_now
