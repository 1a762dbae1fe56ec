"""What the numbers belong to: the machine, the package and server versions, the settings."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

HERE = Path(__file__).resolve().parent
PACKAGES = (
    "taskstream", "redis", "hiredis", "asyncpg", "litestar", "uvicorn", "uvloop", "msgspec",
    "httpx",
)  # fmt: skip


def hardware() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "loadavg_at_start": _loadavg(),
    }


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _ram_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    return None


def _loadavg() -> str | None:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return None


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["git"] = _git_revision()
    return found


def _git_revision() -> str | None:
    """The checkout's commit (``+dirty`` with local changes): numbers belong to a code state."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}+dirty" if dirty else rev


# PostgreSQL settings that change what a durable task costs: flushes, WAL, cache, checkpoints.
PG_SETTINGS = (
    "fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers",
    "max_wal_size", "checkpoint_timeout", "max_connections",
)  # fmt: skip
REDIS_SETTINGS = ("appendonly", "appendfsync", "save", "maxmemory")


async def server_settings(redis_url: str, pg_url: str) -> dict[str, Any]:
    """Versions of both servers and the settings that change the figures."""
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        info = await redis.info("server")
        config: dict[str, str] = {}
        for name in REDIS_SETTINGS:
            with contextlib.suppress(aioredis.ResponseError):  # CONFIG may be renamed away
                config.update(await redis.config_get(name))
    finally:
        await redis.aclose()
    conn = await asyncpg.connect(pg_url, timeout=10)
    try:
        version = await conn.fetchval("SHOW server_version")
        rows = await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
            list(PG_SETTINGS),
        )
    finally:
        await conn.close()
    settings = {r["name"]: _with_unit(r["setting"], r["unit"]) for r in rows}
    return {
        "redis_server": str(info.get("redis_version")),
        "redis_settings": {k: config.get(k) for k in REDIS_SETTINGS},
        "postgresql": version,
        "postgresql_settings": {k: settings.get(k) for k in PG_SETTINGS},
    }


def _with_unit(setting: str, unit: str | None) -> str:
    """shared_buffers is 16384 of unit 8kB: say 128MB, as SHOW would."""
    if unit == "8kB" and setting.isdigit():
        return f"{int(setting) * 8 // 1024}MB"
    if unit and setting.isdigit():
        return f"{setting}{unit}"
    return setting


SECRET_SETTINGS = {"TASKSTREAM_ENCRYPTION_KEYS", "TASKSTREAM_METRICS_TOKEN"}


def inherited_settings() -> dict[str, str]:
    """TASKSTREAM_* knobs from the caller's environment: they change what is measured."""
    ours = {"TASKSTREAM_DATABASE_URL", "TASKSTREAM_REDIS_URL", "TASKSTREAM_REDIS_PREFIX"}
    return {
        k: v for k, v in sorted(os.environ.items()) if k.startswith("TASKSTREAM_") and k not in ours
    }


def shown_settings() -> dict[str, str]:
    """``inherited_settings`` as the report may show them: secrets by their key ids or as set."""
    shown = {}
    for k, v in inherited_settings().items():
        if k == "TASKSTREAM_ENCRYPTION_KEYS":
            v = ",".join(f"{item.partition(':')[0]}:<key>" for item in v.split(","))
        elif k in SECRET_SETTINGS:
            v = "<set>"
        shown[k] = v
    return shown
