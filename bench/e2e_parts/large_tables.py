"""Phase: reads on a large ``tasks`` table. Fills it to ``rows`` rows (default 1,000,000) with a
realistic spread, then times ``GET /v1/tasks/{id}`` and the filtered, keyset-paginated lists
over HTTP, and shows PostgreSQL's plans for the same statements.

Targets (issue): get p95 < 5 ms, list p95 < 50 ms.

The fill is server-side (``INSERT ... SELECT generate_series``, in chunks with progress lines):
nothing crosses the network per row. The rows look like a month of a shared deployment:

* ids are UUIDv7 built from each row's ``created_at`` (time-ordered, as taskstream makes them),
  spread over the last 30 days, so the keyset order and the primary key's locality are real;
* eight tenants: the bench's own 25 %, seven others 3-25 % each (created in ``tenants``, so the
  foreign key holds). A list for one tenant has to skip the others' rows wherever an index
  does not lead with ``tenant_id``;
* six types in five queues with skewed shares, one of them rare (``billing.invoice``, 1 %): a
  filter on a rare type or queue has to walk many rows of the tenant unless an index serves it;
* mostly ``completed``, some ``failed``/``cancelled``; the other tenants also have ``pending``
  and ``scheduled`` rows.

The fake rows must not become work or block the other phases: every row has ``published_at``
set (the relay leaves it alone), ``scheduled`` rows are due days from now (the promoter leaves
them alone), there are no ``processing`` rows (the rescuer leaves them alone), and no
``queues`` rows are added for the made-up queues (workers do not read their streams). The
bench's own tenant gets end states only, so "wait until the tenant's backlog is empty" still
holds after this phase. The rows stay: run this phase after the ones that scan ``tasks``.

Rows already there count towards ``rows``. Earlier phases leave the bench's tenant many
``examples.noop`` tasks, all newer than the made-up ones: a list filtered on another type or
queue then reads past every one of them before it finds a match, as it would for a real tenant
whose recent work is all of one kind. The table facts in the result show the tenant's mix, and
each kind of request has a time budget, so such a filter shows up as slow and the phase still
ends.

Plans: each statement shape is run as a prepared statement, as asyncpg runs it in the API,
under ``EXPLAIN (ANALYZE, BUFFERS)`` three ways: a custom plan (parameters known), a generic
plan (parameters unknown, what PostgreSQL may switch to after 5 executions of a prepared
statement), and the plan the server picks on its own after 5 executions (``auto``). A filter
that only a custom plan can serve shows up here.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import statistics
import time
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import UUID

import asyncpg
import msgspec

from taskstream.core.ids import uuid7
from taskstream.store import queries
from taskstream.store.tasks import list_statement

from .console import BenchError, Progress, say

TARGET_GET_P95_MS = 5.0
TARGET_LIST_P95_MS = 50.0
CHUNK = 50_000
SPAN_S = 30 * 86400  # the fake rows' created_at: the last 30 days
PAGE = 50

# Shares in percent (100 slots each); the bench's tenant takes the first slot group.
OTHER_TENANTS = [("bench-peer-1", 25), ("bench-peer-2", 15), ("bench-peer-3", 12),
                 ("bench-peer-4", 10), ("bench-peer-5", 6), ("bench-peer-6", 4),
                 ("bench-peer-7", 3)]  # fmt: skip
OWN_SHARE = 100 - sum(share for _, share in OTHER_TENANTS)
TYPES = [  # (type, its queue, share)
    ("examples.noop", "default", 34),
    ("examples.echo", "default", 20),
    ("email.send", "email", 25),
    ("reports.build", "reports", 12),
    ("images.resize", "media", 8),
    ("billing.invoice", "billing", 1),
]
STATUSES = [("completed", 91), ("failed", 4), ("cancelled", 1), ("pending", 2), ("scheduled", 2)]
OWN_STATUSES = [("completed", 95), ("failed", 4), ("cancelled", 1)]  # end states only
PRIORITIES = [(0, 2), (1, 18), (2, 70), (3, 10)]
LIST_STATUSES = ["completed", "failed", "cancelled", "pending", "scheduled"]
QUEUES = sorted({q for _, q, _ in TYPES})

FILL_SQL = """
WITH src AS (
    SELECT g, $3::float8 + (g + random()) * $4::float8 AS created_ms,
           random() AS r_tenant, random() AS r_status, random() AS r_type,
           random() AS r_prio, random() AS r_more
    FROM generate_series($1::bigint, $2::bigint) AS g
), picked AS (
    SELECT g, r_more, r_status, created_ms::bigint AS ms,
           to_timestamp(created_ms / 1000.0) AS created,
           ($5::uuid[])[1 + floor(r_tenant * 100)::int] AS tenant_id,
           1 + floor(r_type * 100)::int AS ti,
           ($9::int2[])[1 + floor(r_prio * 100)::int] AS priority
    FROM src
), shaped AS (
    SELECT p.*, ($8::text[])[ti] AS type, ($11::text[])[ti] AS queue,
           CASE WHEN tenant_id = $10::uuid THEN ($7::text[])[1 + floor(r_status * 100)::int]
                ELSE ($6::text[])[1 + floor(r_status * 100)::int] END AS status
    FROM picked p
)
INSERT INTO tasks (id, tenant_id, type, queue, priority, status, payload, result, last_error,
                   attempts, max_attempts, timeout_s, run_at, created_at, started_at,
                   finished_at, published_at)
SELECT
    -- UUIDv7: 48-bit Unix milliseconds, then a v4's random bits with the version set to 7
    -- (bits 52 and 53 turn 0100 into 0111); the v4's variant bits are already 10.
    encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                                   PLACING substring(int8send(ms) FROM 3) FROM 1 FOR 6),
                           52, 1), 53, 1), 'hex')::uuid,
    tenant_id, type, queue, priority, status,
    CASE type
        WHEN 'email.send' THEN jsonb_build_object(
            'to', 'user' || (g % 50000) || '@example.com', 'subject', 'Your order #' || g,
            'template', 'order_confirmation')
        WHEN 'reports.build' THEN jsonb_build_object(
            'kind', (ARRAY['daily', 'weekly', 'monthly'])[(1 + g % 3)::int], 'account', g % 5000)
        WHEN 'images.resize' THEN jsonb_build_object(
            'url', 'https://cdn.example.com/img/' || md5(g::text) || '.jpg',
            'width', 640, 'height', 480)
        WHEN 'billing.invoice' THEN jsonb_build_object(
            'invoice', 'INV-' || g, 'amount_cents', g % 100000, 'currency', 'EUR')
        WHEN 'examples.echo' THEN jsonb_build_object('message', 'hello ' || g)
        ELSE '{}'::jsonb
    END,
    CASE WHEN status = 'completed' THEN '{"ok": true}'::jsonb END,
    CASE WHEN status = 'failed' THEN 'RuntimeError: upstream answered 503 (attempt 3 of 3)' END,
    CASE status WHEN 'completed' THEN CASE WHEN r_more < 0.03 THEN 2 ELSE 1 END
                WHEN 'failed' THEN 3 ELSE 0 END,
    3, 30,
    CASE WHEN status = 'scheduled' THEN now() + make_interval(secs => 86400 * (1 + r_more * 29))
         ELSE created END,
    created,
    CASE WHEN status IN ('completed', 'failed')
         THEN created + make_interval(secs => 0.005 + r_more * 0.5) END,
    CASE WHEN status IN ('completed', 'failed', 'cancelled')
         THEN created + make_interval(secs => 0.01 + r_more * 2) END,
    created
FROM shaped
"""


def slots(shares: list[tuple[Any, int]]) -> list[Any]:
    """100 slots, each value repeated by its share: a uniform pick in SQL is a weighted one."""
    out = [value for value, share in shares for _ in range(share)]
    assert len(out) == 100, shares
    return out


async def other_tenants(pool: asyncpg.Pool) -> list[tuple[UUID, int]]:
    """The made-up tenants (created once, found again on a rerun), with their shares."""
    names = [name for name, _ in OTHER_TENANTS]
    await pool.executemany(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        [(uuid7(), name) for name in names],
    )
    rows = await pool.fetch("SELECT name, id FROM tenants WHERE name = ANY($1::text[])", names)
    ids = {r["name"]: r["id"] for r in rows}
    return [(ids[name], share) for name, share in OTHER_TENANTS]


async def fill(pool: asyncpg.Pool, tenant_id: UUID, rows: int) -> dict[str, Any]:
    """Top the table up to `rows` rows; returns what it found and did."""
    existing = int(await pool.fetchval("SELECT count(*) FROM tasks"))
    need = rows - existing
    if need <= 0:
        say(f"large tables: tasks already holds {existing:,} rows; ANALYZE")
        started = time.perf_counter()
        await pool.execute("ANALYZE tasks")  # the rows of earlier phases: plans from fresh stats
        analyze_s = round(time.perf_counter() - started, 1)
        return {"rows_before": existing, "inserted": 0, "fill_s": 0.0, "analyze_s": analyze_s}
    tenants = [(tenant_id, OWN_SHARE), *await other_tenants(pool)]
    end_ms = (time.time() - 60) * 1000  # a minute back: the run's own tasks stay the newest
    start_ms = end_ms - SPAN_S * 1000
    args = (
        start_ms,
        SPAN_S * 1000 / need,  # ms between consecutive rows
        slots(tenants),
        slots(STATUSES),
        slots(OWN_STATUSES),
        slots([(t, share) for t, _, share in TYPES]),
        slots(PRIORITIES),
        tenant_id,
        slots([(q, share) for _, q, share in TYPES]),
    )
    say(f"large tables: tasks holds {existing:,} rows; inserting {need:,} in chunks of {CHUNK:,}")
    started = time.perf_counter()
    progress = Progress(3.0)
    for first in range(0, need, CHUNK):
        last = min(first + CHUNK, need) - 1
        await pool.execute(FILL_SQL, first, last, *args)
        done = last + 1
        elapsed = time.perf_counter() - started
        rate = done / elapsed
        progress.maybe(
            f"large tables: {existing + done:,}/{rows:,} rows ({rate:,.0f} rows/s, "
            f"~{(need - done) / rate:.0f} s left)"
        )
    fill_s = time.perf_counter() - started
    say(f"large tables: inserted {need:,} rows in {fill_s:.1f} s; ANALYZE")
    analyze_started = time.perf_counter()
    await pool.execute("ANALYZE tasks")
    return {
        "rows_before": existing,
        "inserted": need,
        "fill_s": round(fill_s, 1),
        "fill_rate": round(need / fill_s),
        "analyze_s": round(time.perf_counter() - analyze_started, 1),
    }


async def table_facts(pool: asyncpg.Pool, tenant_id: UUID) -> dict[str, Any]:
    """Size of the table and what the tenant's rows are: with rows from earlier phases (all
    one type, and the newest), a filter on another type reads past all of them."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM tasks) AS rows,
                  pg_total_relation_size('tasks') AS total_bytes,
                  pg_relation_size('tasks') AS heap_bytes,
                  pg_indexes_size('tasks') AS index_bytes"""
    )
    mix = await pool.fetch(
        "SELECT type, status, count(*) AS n FROM tasks WHERE tenant_id = $1 GROUP BY type, status",
        tenant_id,
    )
    types: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for r in mix:
        types[r["type"]] = types.get(r["type"], 0) + r["n"]
        statuses[r["status"]] = statuses.get(r["status"], 0) + r["n"]
    return {
        "rows": row["rows"],
        "tenant_rows": sum(types.values()),
        "tenant_types": dict(sorted(types.items(), key=lambda kv: -kv[1])),
        "tenant_statuses": dict(sorted(statuses.items(), key=lambda kv: -kv[1])),
        "total_mb": round(row["total_bytes"] / 2**20),
        "heap_mb": round(row["heap_bytes"] / 2**20),
        "indexes_mb": round(row["index_bytes"] / 2**20),
    }


# -- HTTP -----------------------------------------------------------------------------------------


class Getter:
    """Sequential GETs on one keep-alive HTTP/1.1 connection (asyncio streams).

    Not httpx: its ~2 ms of client CPU per request would be most of what is measured for a
    primary-key lookup. This costs tens of microseconds, so the figures are the server's."""

    MAX_IDLE_S = 2.0  # below uvicorn's 5 s keep-alive timeout

    def __init__(self, base_url: str, key: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.auth = f"authorization: Bearer {key}\r\n"
        self.conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.used = 0.0

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.conn is not None and (
            time.monotonic() - self.used > self.MAX_IDLE_S or self.conn[0].at_eof()
        ):
            self.close()
        if self.conn is None:
            self.conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.conn
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n{self.auth}\r\n".encode()
            )
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            status = int(head[9:12])
            at = head.find("\r\ncontent-length:")
            if at < 0:
                raise OSError(f"HTTP {status} without content-length")
            length = int(head[at + 17 : head.index("\r\n", at + 2)])
            body = await reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if "\r\nconnection: close" in head:
            self.close()
        self.used = time.monotonic()
        return status, body

    def close(self) -> None:
        if self.conn is not None:
            self.conn[1].close()
            self.conn = None


def summary(samples: list[float]) -> dict[str, float | None]:
    if len(samples) < 2:
        only = round(samples[0] * 1000, 2) if samples else None
        return {"p50": only, "p95": only, "p99": only, "max": only}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50": round(cuts[49] * 1000, 2),
        "p95": round(cuts[94] * 1000, 2),
        "p99": round(cuts[98] * 1000, 2),
        "max": round(max(samples) * 1000, 2),
    }


async def timed(
    getter: Getter,
    name: str,
    paths: list[tuple[str, str]],
    requests: int,
    warmup: int,
    budget_s: float,
) -> dict[str, Any]:
    """`requests` GETs cycling through `paths` ((label, path) pairs), after `warmup` unmeasured
    ones. Every status but 200 is an error. Stops early after `budget_s` (the warm-up after a
    tenth of it): a filter no index serves can take a second a request on a big table, and
    the phase must still end; `requests` then says how many were measured."""
    deadline = time.perf_counter() + budget_s / 10
    warmed = 0
    while warmed < warmup and time.perf_counter() < deadline:
        await getter.get(paths[warmed % len(paths)][1])
        warmed += 1
    times: list[float] = []
    by_label: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    sample_error = ""
    progress = Progress(5.0)
    deadline = time.perf_counter() + budget_s
    done = 0
    while done < requests and time.perf_counter() < deadline:
        label, path = paths[(done + warmed) % len(paths)]
        started = time.perf_counter()
        status, body = await getter.get(path)
        elapsed = time.perf_counter() - started
        done += 1
        progress.maybe(f"large tables: {name} {done:,}/{requests:,}")
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
            sample_error = sample_error or f"{path}: {body[:200].decode(errors='replace')}"
            continue
        times.append(elapsed)
        by_label.setdefault(label, []).append(elapsed)
    out: dict[str, Any] = {"requests": done, "errors": errors, **summary(times)}
    if done < requests:
        out["stopped_early"] = f"{budget_s:.0f} s budget spent after {done:,} requests"
    if sample_error:
        out["error_sample"] = sample_error
    if len(by_label) > 1:
        out["by_value"] = {k: summary(v) for k, v in sorted(by_label.items())}
    say(
        f"large tables: {name}: p50 {out['p50']} ms, p95 {out['p95']} ms, p99 {out['p99']} ms"
        + (f", errors {errors}" if errors else "")
        + (f" ({out['stopped_early']})" if done < requests else "")
    )
    return out


class Page(msgspec.Struct):
    next_cursor: str | None = None


async def second_pages(getter: Getter, firsts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Page 2 of each listed first page, through the cursor the first page returned."""
    out = []
    for label, path in firsts:
        status, body = await getter.get(path)
        if status != 200:
            raise BenchError(f"GET {path}: HTTP {status} {body[:300]!r}")
        cursor = msgspec.json.decode(body, type=Page).next_cursor
        if cursor:  # a filter with a single page has no second one
            out.append((label, f"{path}&cursor={quote(cursor)}"))
    return out


# -- plans --------------------------------------------------------------------------------------


def _literal(value: Any) -> str:
    """A SQL literal for EXECUTE. Only our own values get here (ids, fixed filter names)."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def plan_summary(doc: list[dict[str, Any]]) -> dict[str, Any]:
    """The plan's node chain (with index names), time, buffers and rows thrown away."""
    top = doc[0]["Plan"]
    chain: list[str] = []
    indexes: list[str] = []
    removed = 0

    def walk(node: dict[str, Any], depth: int) -> None:
        nonlocal removed
        label = node["Node Type"]
        if node.get("Scan Direction") == "Backward":
            label += " Backward"
        if "Index Name" in node:
            label += f" using {node['Index Name']}"
            indexes.append(node["Index Name"])
        if depth <= 3:
            chain.append(label)
        loops = int(node.get("Actual Loops", 1) or 1)
        removed += int(node.get("Rows Removed by Filter", 0)) * loops
        removed += int(node.get("Rows Removed by Index Recheck", 0)) * loops
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    walk(top, 0)
    text = msgspec.json.encode(top).decode()
    return {
        "plan": " > ".join(chain),
        "indexes": sorted(set(indexes)),
        "generic": "$1" in text,  # a generic plan's conditions name the parameters
        "execution_ms": round(doc[0]["Execution Time"], 3),
        "planning_ms": round(doc[0]["Planning Time"], 3),
        "rows": top.get("Actual Rows"),
        "rows_removed_by_filter": removed,
        "shared_hit": top.get("Shared Hit Blocks"),
        "shared_read": top.get("Shared Read Blocks"),
    }


async def explain(pool: asyncpg.Pool, sql: str, params: list[Any]) -> dict[str, Any]:
    """The statement as a prepared statement (as asyncpg runs it), EXPLAIN (ANALYZE, BUFFERS)
    with a custom plan, a generic one, and whatever the server picks after 5 executions. A
    failure is reported in place of the plan: the timings above matter more than one plan."""
    args = ", ".join(_literal(p) for p in params)
    out: dict[str, Any] = {}
    async with pool.acquire() as conn:
        for mode in ("force_custom_plan", "force_generic_plan", "auto"):
            key = mode.removeprefix("force_").removesuffix("_plan")
            name = f"bench_explain_{secrets.token_hex(4)}"
            try:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
                    await conn.execute(f"PREPARE {name} AS {sql}")
                    if mode == "auto":  # 5 custom plans first, as a pooled connection has had
                        for _ in range(5):
                            await conn.execute(f"EXECUTE {name}({args})")
                    raw = await conn.fetchval(
                        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({args})"
                    )
            except asyncpg.PostgresError as exc:
                out[key] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            finally:
                # PREPARE outlives its transaction; a name that is not there is fine too.
                with contextlib.suppress(asyncpg.PostgresError):
                    await conn.execute(f"DEALLOCATE {name}")
            doc = msgspec.json.decode(raw) if isinstance(raw, str | bytes) else raw
            out[key] = plan_summary(doc)
    return out


async def plans(pool: asyncpg.Pool, tenant_id: UUID, some_id: UUID) -> dict[str, Any]:
    q = queries.load("tasks")
    cursor = await pool.fetchval(
        "SELECT id FROM tasks WHERE tenant_id = $1 AND status = 'completed'"
        " ORDER BY id DESC OFFSET $2 LIMIT 1",
        tenant_id,
        PAGE - 1,
    )
    t = str(tenant_id)

    def listing(
        status: str | None = None,
        type: str | None = None,  # noqa: A002 - the API's filter name
        queue: str | None = None,
        before: Any = None,  # a cursor id, as text or UUID
    ) -> tuple[str, list[Any]]:
        # The statement the API runs for these filters.
        sql, args = list_statement(status=status, type=type, queue=queue, before=before)
        return sql, [t, PAGE, *args]

    shapes: dict[str, tuple[str, list[Any]]] = {
        "get": (q["get_task"], [t, str(some_id)]),
        "list": listing(),
        "list_status_completed": listing(status="completed"),
        "list_status_failed": listing(status="failed"),
        "list_type_email.send": listing(type="email.send"),
        "list_type_billing.invoice": listing(type="billing.invoice"),
        "list_queue_reports": listing(queue="reports"),
        "list_page2_status_completed": listing(
            status="completed", before=str(cursor) if cursor else None
        ),
    }
    out: dict[str, Any] = {}
    for name, (sql, params) in shapes.items():
        out[name] = await explain(pool, sql, params)
        auto = out[name]["auto"]
        say(
            f"large tables: plan {name}: {auto['plan']} "
            f"({'generic' if auto['generic'] else 'custom'}, {auto['execution_ms']} ms)"
            if "error" not in auto
            else f"large tables: plan {name}: {auto['error']}"
        )
    return out


# -- the phase --------------------------------------------------------------------------------


async def phase_large_tables(
    api_url: str,
    api_key: str,
    pool: asyncpg.Pool,
    tenant_id: str,
    rows: int = 1_000_000,
    *,
    requests: int = 2000,
    warmup: int = 100,
    budget_s: float = 60.0,
) -> dict[str, Any]:
    """Fill `tasks` to `rows` rows, then time get and list requests (`requests` each, after
    `warmup`, within `budget_s` each) and explain their statements."""
    tenant = UUID(str(tenant_id))
    filled = await fill(pool, tenant, rows)
    facts = await table_facts(pool, tenant)
    say(
        f"large tables: {facts['rows']:,} rows ({facts['tenant_rows']:,} of this tenant), "
        f"{facts['total_mb']:,} MB with indexes"
    )
    ids = [
        str(r["id"])
        for r in await pool.fetch(
            "SELECT id FROM tasks WHERE tenant_id = $1 ORDER BY random() LIMIT $2",
            tenant,
            requests + warmup,
        )
    ]
    if not ids:
        raise BenchError("the tenant has no tasks to read")
    random.Random(5).shuffle(ids)
    types = [t for t, _, _ in TYPES]
    lim = f"limit={PAGE}"
    getter = Getter(api_url, api_key)
    measured: dict[str, Any] = {}
    try:
        firsts = [
            ("newest", f"/v1/tasks?{lim}"),
            *[(f"status={s}", f"/v1/tasks?status={s}&{lim}") for s in ("completed", "failed")],
            *[(f"type={t}", f"/v1/tasks?type={t}&{lim}") for t in ("email.send", types[-1])],
            ("queue=reports", f"/v1/tasks?queue=reports&{lim}"),
        ]
        kinds: list[tuple[str, str, list[tuple[str, str]]]] = [
            ("get", "get", [("id", f"/v1/tasks/{i}") for i in ids]),
            ("list", "list", [("newest", f"/v1/tasks?{lim}")]),
            ("list_status", "list by status",
             [(s, f"/v1/tasks?status={s}&{lim}") for s in LIST_STATUSES]),
            ("list_type", "list by type", [(t, f"/v1/tasks?type={t}&{lim}") for t in types]),
            ("list_queue", "list by queue", [(q, f"/v1/tasks?queue={q}&{lim}") for q in QUEUES]),
            ("list_page2", "list page 2", await second_pages(getter, firsts)),
        ]  # fmt: skip
        say(f"large tables: timing {requests:,} requests of each kind, one connection")
        for key, name, paths in kinds:
            measured[key] = await timed(getter, name, paths, requests, warmup, budget_s)
    finally:
        getter.close()
    explained = await plans(pool, tenant, UUID(ids[0]))
    lists = [v for k, v in measured.items() if k.startswith("list")]
    worst_list = max((m["p95"] or 0.0) for m in lists)
    return {
        "table": facts,
        "fill": filled,
        "requests_each": requests,
        "http": measured,
        "plans": explained,
        "targets": {
            "get_p95_ms": TARGET_GET_P95_MS,
            "get_met": (measured["get"]["p95"] or 1e9) < TARGET_GET_P95_MS
            and not measured["get"]["errors"],
            "list_p95_ms": TARGET_LIST_P95_MS,
            "worst_list_p95_ms": worst_list,
            "list_met": worst_list < TARGET_LIST_P95_MS and not any(m["errors"] for m in lists),
        },
    }
