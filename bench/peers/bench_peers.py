#!/usr/bin/env python3
"""Benchmark harness for Python job-queue libraries + physical limits of Redis Streams / PostgreSQL.

This script is the orchestrator: it needs only python3 (>= 3.8, standard library). The libraries
live in two virtual environments under PEERS_HOME, built by setup.sh from the pinned requirement
files; when they are missing or out of date this script runs setup.sh itself. Clients and workers
are started as subprocesses with those environments' interpreters.

  python3 bench_peers.py --lib arq                 # one library (repeatable)
  python3 bench_peers.py --all                     # all libraries, then physical limits
  python3 bench_peers.py --physical                # physical limits only
  python3 bench_peers.py --report                  # markdown tables from the results file
  python3 bench_peers.py --report --results baseline-2026-11-28.jsonl

Environment:
  PEERS_REDIS_URL  default redis://127.0.0.1:6379/5. Loopback only; the URL must name a database
                   number, and that database is FLUSHed before and after every run.
  PEERS_PG_DSN     default postgresql://127.0.0.1:5432/postgres. Loopback only; the role needs
                   CREATEDB. The harness creates and drops its own databases (bench_peers,
                   bench_phys) on that server; the DSN's own database is only used to connect.
  PEERS_HOME       default ${XDG_CACHE_HOME:-~/.cache}/taskstream-peers: .venv, .venv-taskiq,
                   results/, logs/ (built once per machine and reused; --log-dir moves logs/).
  PEERS_PYTHON     interpreter setup.sh builds the venvs with (default: the one running this script).

Results are appended to PEERS_HOME/results/results.jsonl (or --results FILE), one JSON object per
measurement, and also to every --json-out FILE. Worker logs go to PEERS_HOME/logs/ (or --log-dir).
A --drain-modes / --lat-modes entry may list alternatives, e.g. tuned2p/tuned: the first mode the
library has is run (dramatiq and rq have no tuned2p). Every loop is
bounded in count and time. Worker subprocesses run in their own session and carry a marker env
var; they are stopped with SIGTERM/SIGKILL to their own process group and then, by PID, any
process that still carries the marker.
"""
from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent


def _peers_home() -> Path:
    # A per-user cache folder, not a temporary one: the venvs are ~220 MB and worth keeping.
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    home = os.environ.get("PEERS_HOME") or os.path.join(cache, "taskstream-peers")
    return Path(home).expanduser().absolute()


HOME = _peers_home()
RESULTS = HOME / "results"
LOGS = HOME / "logs"  # replaced from --log-dir in main()
# taskiq-redis >= 1.1 needs redis-py >= 6 while arq pins redis < 6: two environments
VENVS = {"peers": (HOME / ".venv", ROOT / "requirements-peers.txt"),
         "taskiq": (HOME / ".venv-taskiq", ROOT / "requirements-taskiq.txt")}
STAMP = ".requirements.sha256"  # written by setup.sh: sha256 of the requirements file installed
V = VENVS["peers"][0] / "bin"
VT = VENVS["taskiq"][0] / "bin"

REDIS_URL = os.environ.get("PEERS_REDIS_URL") or "redis://127.0.0.1:6379/5"
PG_ADMIN_DSN = os.environ.get("PEERS_PG_DSN") or "postgresql://127.0.0.1:5432/postgres"
PG_DB, PG_PHYS_DB = "bench_peers", "bench_phys"
K_DONE, K_BITS, K_LAT = "bench:done", "bench:bits", "bench:lat"
CLK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- server locations
def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_redis_url(url: str) -> dict:
    u = urlsplit(url)
    if u.scheme != "redis":
        raise SystemExit(f"PEERS_REDIS_URL: only redis:// URLs are supported (got {u.scheme}://)")
    host = u.hostname or ""
    if not _is_loopback(host):
        raise SystemExit(f"PEERS_REDIS_URL: host {host!r} is not a loopback address")
    db = u.path.strip("/")
    if not db.isdigit():
        raise SystemExit("PEERS_REDIS_URL must name a database number, e.g. redis://127.0.0.1:6379/5 "
                         "(the harness FLUSHes that database)")
    return {"host": host, "port": u.port or 6379, "db": int(db),
            "user": unquote(u.username) if u.username else None,
            "password": unquote(u.password) if u.password is not None else None}


def parse_pg_dsn(dsn: str) -> dict:
    u = urlsplit(dsn)
    if u.scheme not in ("postgresql", "postgres"):
        raise SystemExit("PEERS_PG_DSN: only postgresql:// URLs are supported")
    q = parse_qs(u.query)
    host = q["host"][-1] if "host" in q else (u.hostname or "")
    if not _is_loopback(host):
        raise SystemExit(f"PEERS_PG_DSN: host {host!r} is not a loopback address (Unix sockets are not used)")
    db = unquote(u.path.lstrip("/"))
    if db in (PG_DB, PG_PHYS_DB):
        raise SystemExit(f"PEERS_PG_DSN must name another database (e.g. postgres): {db} is dropped and "
                         "recreated by the harness")
    return {"host": host, "port": u.port or 5432}


def pg_dsn(db: str) -> str:
    """PEERS_PG_DSN with its database replaced by `db` (same user, password, host, port, options)."""
    u = urlsplit(PG_ADMIN_DSN)
    return urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))


REDIS: dict = {}  # parsed PEERS_REDIS_URL, filled by check_config()


def check_config() -> None:
    REDIS.update(parse_redis_url(REDIS_URL))
    parse_pg_dsn(PG_ADMIN_DSN)


# --------------------------------------------------------------------------- library specs
LIBS: dict[str, dict] = {
    "arq": {
        "pkg": "arq", "venv": "peers", "store": "redis", "bulk": "concurrent x100 (no bulk API)",
        "workers": {
            "default": ([str(V / "arq"), "peerlibs.arq_app.WorkerSettings"],
                        "arq CLI: 1 proc, max_jobs=10, poll_delay=0.5s, INFO log per job"),
            "tuned": ([str(V / "python"), "-m", "peerlibs.arq_app", "tuned"],
                      "run_worker(): 1 proc, max_jobs=100, poll_delay=0.05s, log WARNING"),
            "tuned2p": ([[str(V / "python"), "-m", "peerlibs.arq_app", "tuned"]] * 2,
                        "2 x run_worker() procs, each max_jobs=100, poll_delay=0.05s"),
        },
    },
    "saq": {
        "pkg": "saq", "venv": "peers", "store": "redis",
        "bulk": "concurrent x100 (no bulk API; Queue.map = gather of enqueue)",
        "workers": {
            "default": ([str(V / "saq"), "peerlibs.saq_app.settings"],
                        "saq CLI: 1 proc, concurrency=10"),
            "tuned": ([str(V / "saq"), "peerlibs.saq_app.settings_tuned"],
                      "saq CLI: 1 proc, concurrency=100"),
            "tuned2p": ([str(V / "saq"), "peerlibs.saq_app.settings_tuned", "--workers", "2"],
                        "saq CLI --workers 2, concurrency=100 each"),
        },
    },
    "taskiq_stream": {
        "pkg": "taskiq-redis", "pkg2": "taskiq", "venv": "taskiq", "store": "redis",
        "bulk": "concurrent x100 (no bulk API)",
        "workers": {
            "default": ([str(VT / "taskiq"), "worker", "peerlibs.taskiq_stream_app:broker"],
                        "taskiq worker: 2 procs x max_async_tasks=100, RedisStreamBroker xread_count=100"),
            "tuned": ([str(VT / "taskiq"), "worker", "peerlibs.taskiq_stream_app:broker", "--workers", "1",
                       "--max-async-tasks", "500", "--log-level", "WARNING"],
                      "taskiq worker: 1 proc x max_async_tasks=500, log WARNING"),
            "tuned2p": ([str(VT / "taskiq"), "worker", "peerlibs.taskiq_stream_app:broker", "--workers", "2",
                         "--max-async-tasks", "500", "--log-level", "WARNING"],
                        "taskiq worker: 2 procs x max_async_tasks=500, log WARNING"),
        },
    },
    "taskiq_list": {
        "pkg": "taskiq-redis", "pkg2": "taskiq", "venv": "taskiq", "store": "redis",
        "bulk": "concurrent x100 (no bulk API)",
        "workers": {
            "default": ([str(VT / "taskiq"), "worker", "peerlibs.taskiq_list_app:broker"],
                        "taskiq worker: 2 procs x max_async_tasks=100, ListQueueBroker (BRPOP)"),
            "tuned": ([str(VT / "taskiq"), "worker", "peerlibs.taskiq_list_app:broker", "--workers", "1",
                       "--max-async-tasks", "500", "--log-level", "WARNING"],
                      "taskiq worker: 1 proc x max_async_tasks=500, log WARNING"),
            "tuned2p": ([str(VT / "taskiq"), "worker", "peerlibs.taskiq_list_app:broker", "--workers", "2",
                         "--max-async-tasks", "500", "--log-level", "WARNING"],
                        "taskiq worker: 2 procs x max_async_tasks=500, log WARNING"),
        },
    },
    "dramatiq": {
        "pkg": "dramatiq", "venv": "peers", "store": "redis", "bulk": None,  # no bulk API: pre-fill sends singles
        "workers": {
            "default": ([str(V / "dramatiq"), "peerlibs.dramatiq_app"],
                        "dramatiq CLI: 2 procs (CPUs) x 8 threads"),
            "tuned": ([str(V / "dramatiq"), "peerlibs.dramatiq_app", "--processes", "2", "--threads", "16"],
                      "dramatiq CLI: 2 procs x 16 threads"),
        },
    },
    "celery": {
        "pkg": "celery", "venv": "peers", "store": "redis", "bulk": "group(...).apply_async() chunks of 1000",
        "workers": {
            "default": ([str(V / "celery"), "-A", "peerlibs.celery_app", "worker"],
                        "celery worker: prefork, concurrency=2 (CPUs), prefetch x4, loglevel WARNING"),
            "tuned": ([str(V / "celery"), "-A", "peerlibs.celery_app", "worker", "-c", "2",
                       "--prefetch-multiplier", "64", "--without-gossip", "--without-mingle",
                       "--without-heartbeat"],
                      "celery worker: prefork 2, prefetch x64, no gossip/mingle/heartbeat"),
            "tuned2p": ([[str(V / "celery"), "-A", "peerlibs.celery_app", "worker", "--pool", "solo",
                          "--prefetch-multiplier", "256", "--without-gossip", "--without-mingle",
                          "--without-heartbeat", "-n", f"solo{k}@%h"] for k in (1, 2)],
                        "2 x celery worker --pool solo, prefetch x256, no gossip/mingle/heartbeat"),
        },
    },
    "rq": {
        "pkg": "rq", "venv": "peers", "store": "redis", "bulk": "Queue.enqueue_many (pipeline) chunks of 1000",
        "workers": {
            "default": ([str(V / "rq"), "worker", "-u", REDIS_URL, "default"],
                        "rq worker: 1 proc, default Worker (fork per job), INFO log per job"),
            "tuned": ([str(V / "rq"), "worker-pool", "-u", REDIS_URL, "-n", "2", "-w", "rq.worker.SimpleWorker",
                       "--logging-level", "WARNING", "default"],
                      "rq worker-pool -n 2, SimpleWorker (no fork), log WARNING"),
        },
    },
    "procrastinate": {
        "pkg": "procrastinate", "venv": "peers", "store": "pg", "bulk": "Task.batch_defer_async chunks of 1000",
        "workers": {
            "default": ([str(V / "procrastinate"), "--app=peerlibs.procrastinate_app.app", "worker"],
                        "procrastinate worker: concurrency=1, psycopg pool 4, LISTEN/NOTIFY"),
            "tuned": ([str(V / "procrastinate"), "--app=peerlibs.procrastinate_app.app_tuned",
                       "--log-level", "warning", "worker", "--concurrency", "50"],
                      "procrastinate worker: concurrency=50, psycopg pool 20, log warning"),
            "tuned2p": ([[str(V / "procrastinate"), "--app=peerlibs.procrastinate_app.app_tuned",
                          "--log-level", "warning", "worker", "--concurrency", "50"]] * 2,
                        "2 x procrastinate worker, concurrency=50 each, pool 20 each"),
        },
    },
    "pgqueuer": {
        "pkg": "pgqueuer", "venv": "peers", "store": "pg", "bulk": "Queries.enqueue(lists) chunks of 1000",
        "workers": {
            # `pgq run` crashes in pgqueuer 1.6.0 (log-level str vs enum); pgqueuer.run() is the same code path
            "default": ([str(V / "python"), "-m", "peerlibs.pgqueuer_app"],
                        "pgqueuer.run() (= pgq run): batch_size=10, 1 proc, asyncpg, uvloop, log INFO"),
            "tuned": ([str(V / "python"), "-m", "peerlibs.pgqueuer_app", "tuned"],
                      "pgqueuer.run(): batch_size=100, log WARNING"),
            "tuned2p": ([[str(V / "python"), "-m", "peerlibs.pgqueuer_app", "tuned"]] * 2,
                        "2 x pgqueuer.run() procs, batch_size=100"),
        },
    },
}
ALL_LIBS = list(LIBS)
PHYS_REDIS_TESTS = ["xadd_single", "xadd_pipe100", "xadd_pipe1000", "xreadgroup100_xack"]
PHYS_TESTS = PHYS_REDIS_TESTS + [
    "pg_insert_single_pool10", "pg_insert_single_conn1", "pg_insert_single_pool10_synccommit_off",
    "pg_executemany500", "pg_copy1000", "pg_update_any500", "combined_copy1000_xadd1000",
    "combined_single_pool10", "combined_consume_xread100_update_xack"]


def venv_python(venv: str) -> str:
    return str(VENVS[venv][0] / "bin" / "python")


def lib_python(lib: str) -> str:
    return venv_python(LIBS[lib]["venv"])


def lib_version(lib: str) -> str:
    spec = LIBS[lib]
    pk = [spec["pkg"]] + ([spec["pkg2"]] if "pkg2" in spec else [])
    code = "import importlib.metadata as m;print(' '.join(p+'=='+m.version(p) for p in %r))" % (pk,)
    try:
        return subprocess.run([lib_python(lib), "-c", code], capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


# --------------------------------------------------------------------------- virtual environments
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def venv_ready(name: str) -> bool:
    d, req = VENVS[name]
    stamp = d / STAMP
    return (d / "bin" / "python").exists() and stamp.exists() and stamp.read_text().strip() == _sha256(req)


def ensure_venvs(names) -> None:
    """Run setup.sh when a needed venv is missing or was built from other requirements."""
    todo = sorted(n for n in names if not venv_ready(n))
    if not todo:
        return
    log(f"virtual environment(s) {', '.join(todo)} missing or out of date under {HOME}: running setup.sh")
    env = os.environ.copy()
    env["PEERS_HOME"] = str(HOME)
    env.setdefault("PEERS_PYTHON", sys.executable)
    p = subprocess.run(["bash", str(ROOT / "setup.sh")], env=env)
    if p.returncode != 0 or not all(venv_ready(n) for n in todo):
        raise SystemExit(f"setup.sh failed (exit {p.returncode}); see its output above")
    log("setup.sh done")


# --------------------------------------------------------------------------- helpers
def sub_env(marker: str | None = None, pg_db: str = PG_DB) -> dict:
    env = os.environ.copy()
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep the harness folder clean (it may be read-only)
    env["PYTHONUNBUFFERED"] = "1"
    env["BENCH_REDIS_URL"] = REDIS_URL
    env["BENCH_PG_DSN"] = pg_dsn(pg_db)
    if marker:
        env["BENCH_MARK"] = marker
    return env


def log(msg: str) -> None:
    sys.stderr.write(time.strftime("%H:%M:%S ") + msg + "\n")
    sys.stderr.flush()


OUT_PATHS: list[Path] = [RESULTS / "results.jsonl"]  # replaced from --results / --json-out in main()


def append_result(obj: dict) -> None:
    obj["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    line = json.dumps(obj) + "\n"
    for path in OUT_PATHS:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(line)


def pct(vals, p):
    if not vals:
        return None
    s = sorted(vals)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


class RedisError(Exception):
    pass


class RedisLite:
    """Just enough RESP2 for the orchestrator's bookkeeping (counters, FLUSHDB, INFO), so the
    orchestrator needs no third-party package. Connects to PEERS_REDIS_URL and SELECTs its db."""

    def __init__(self, cfg: dict, timeout: float = 120.0) -> None:
        try:
            self.sock = socket.create_connection((cfg["host"], cfg["port"]), timeout=timeout)
        except OSError as e:
            raise SystemExit(f"cannot connect to Redis at {cfg['host']}:{cfg['port']} ({e}); "
                             "start it or set PEERS_REDIS_URL") from e
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb")
        if cfg["password"] is not None:
            self.cmd("AUTH", *([cfg["user"]] if cfg["user"] else []), cfg["password"])
        self.cmd("SELECT", cfg["db"])

    def cmd(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _reply(self):
        line = self.rf.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.rf.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError(f"unexpected reply {line[:40]!r}")

    def flushdb(self):
        return self.cmd("FLUSHDB")

    def get(self, key):
        return self.cmd("GET", key)

    def delete(self, *keys):
        return self.cmd("DEL", *keys)

    def bitcount(self, key) -> int:
        return self.cmd("BITCOUNT", key)

    def lrange(self, key, start, stop) -> list:
        return self.cmd("LRANGE", key, start, stop)

    def xlen(self, key) -> int:
        return self.cmd("XLEN", key)

    def info(self, section: str) -> dict:
        raw = self.cmd("INFO", section).decode()
        return dict(ln.split(":", 1) for ln in raw.splitlines() if ":" in ln and not ln.startswith("#"))

    def close(self) -> None:
        self.rf.close()
        self.sock.close()


def rconn() -> RedisLite:
    return RedisLite(REDIS)


# ---- CPU accounting from /proc (read-only)
def _stat_fields(pid: str):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return s[s.rfind(")") + 2:].split()
    except OSError:
        return None


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def marker_pids(marker: str) -> list[int]:
    out = []
    needle = f"BENCH_MARK={marker}".encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if needle in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


def cpu_of_pids(pids) -> float:
    tot = 0
    for p in pids:
        f = _stat_fields(str(p))
        if f:  # utime stime cutime cstime = fields 14..17 (1-based) -> idx 11..14 after comm
            tot += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return tot / CLK


_POSTMASTER: dict = {}


def postmaster_pid() -> int | None:
    """PID of the postmaster serving PEERS_PG_DSN: the parent of that server's checkpointer, whose
    PID pg_stat_activity reports. None when the server is unreachable or its processes are not
    visible in this /proc (e.g. another PID namespace); PG CPU is then reported as null."""
    pm = _POSTMASTER.get("pid")
    if pm is not None and _stat_fields(str(pm)):
        return pm
    if "pid" in _POSTMASTER and pm is None:
        return None
    pm = None
    try:
        aux = psql("SELECT pid FROM pg_stat_activity WHERE backend_type IN "
                   "('checkpointer', 'background writer', 'walwriter') ORDER BY pid LIMIT 1")
        f = _stat_fields(aux) if aux.isdigit() else None
        if f and _comm(f[1]).startswith(("postgres", "postmaster")):
            pm = int(f[1])
    except Exception as e:  # noqa: BLE001
        log(f"  PostgreSQL not reachable for CPU accounting: {str(e)[-200:]}")
    if pm is None:
        log("  warning: PostgreSQL server processes not found in /proc; pg_cpu_s will be null")
    _POSTMASTER["pid"] = pm
    return pm


def pg_cpu() -> float | None:
    """The postmaster's live children (utime+stime) + the postmaster itself incl. its reaped children
    (cutime+cstime). The postmaster is read last so a backend that exits between reads is not lost
    (it may be double-counted instead)."""
    pm = postmaster_pid()
    if pm is None:
        return None
    spm = str(pm)
    tot = 0
    for d in os.listdir("/proc"):
        if d.isdigit() and d != spm:
            f = _stat_fields(d)
            if f and f[1] == spm:
                tot += int(f[11]) + int(f[12])
    f = _stat_fields(spm)
    if f:
        tot += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return tot / CLK


def sys_cpu():
    with open("/proc/stat") as f:
        p = [int(x) for x in f.readline().split()[1:]]
    idle = p[3] + p[4]
    return sum(p[:8]), idle


def redis_cpu(r) -> float:
    """CPU seconds of the redis-server at PEERS_REDIS_URL (INFO cpu: all its threads)."""
    i = r.info("cpu")
    return float(i["used_cpu_sys"]) + float(i["used_cpu_user"])


def snap(r, marker: str | None):
    tot, idle = sys_cpu()
    return {"t": time.perf_counter(), "tot": tot, "idle": idle, "redis": redis_cpu(r), "pg": pg_cpu(),
            "worker": cpu_of_pids(marker_pids(marker)) if marker else 0.0}


def cpu_delta(a, b, client_cpu: float = 0.0) -> dict:
    wall = b["t"] - a["t"]
    busy = ((b["tot"] - a["tot"]) - (b["idle"] - a["idle"])) / CLK
    pg = None if a["pg"] is None or b["pg"] is None else round(b["pg"] - a["pg"], 2)
    d = {"wall_s": round(wall, 3), "sys_busy_cores": round(busy / wall, 2) if wall > 0 else None,
         "worker_cpu_s": round(b["worker"] - a["worker"], 2), "redis_cpu_s": round(b["redis"] - a["redis"], 2),
         "pg_cpu_s": pg, "client_cpu_s": round(client_cpu, 2)}
    d["other_cpu_s"] = round(busy - d["worker_cpu_s"] - d["redis_cpu_s"] - (pg or 0.0) - client_cpu, 2)
    return d


# ---- state reset
def psql(sql: str, db: str | None = None) -> str:
    """Run SQL with psql against the PEERS_PG_DSN server (its own database unless `db` is given)."""
    if shutil.which("psql") is None:
        raise RuntimeError("psql not found (Debian: apt-get install postgresql-client)")
    dsn = pg_dsn(db) if db else PG_ADMIN_DSN
    p = subprocess.run(["psql", "-X", "-d", dsn, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"psql failed: {p.stderr.strip()[-400:]}")
    return p.stdout.strip()


def recreate_pg(db: str = PG_DB) -> None:
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    psql(f"CREATE DATABASE {db}")


def drop_pg(db: str = PG_DB) -> None:
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def reset_state(lib: str, r) -> None:
    r.flushdb()  # the PEERS_REDIS_URL database only
    if LIBS[lib]["store"] == "pg":
        recreate_pg()
        if lib == "procrastinate":
            cmd = [str(V / "procrastinate"), "--app=peerlibs.procrastinate_app.app", "schema", "--apply"]
        else:
            cmd = [str(V / "pgq"), "--pg-dsn", pg_dsn(PG_DB), "install"]
        p = subprocess.run(cmd, cwd=HOME, env=sub_env(), capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"schema install failed: {p.stdout[-500:]} {p.stderr[-500:]}")


def run_client(lib: str, op: str, timeout: float, **kw) -> dict:
    cmd = [lib_python(lib), "-m", "peerlibs.client", lib, op]
    for k, v in kw.items():
        cmd += [f"--{k}", str(v)]
    try:
        p = subprocess.run(cmd, cwd=HOME, env=sub_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"client timeout after {timeout}s"}
    lines = [ln for ln in p.stdout.strip().splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": (p.stderr or p.stdout)[-800:]}
    return json.loads(lines[-1])


class Worker:
    """One or more worker processes (each in its own session, all carrying one marker env var)."""

    def __init__(self, lib: str, mode: str, tag: str, cmd=None):
        self.lib, self.mode = lib, mode
        self.marker = uuid.uuid4().hex
        cmd = cmd or LIBS[lib]["workers"][mode][0]
        self.cmds = cmd if isinstance(cmd[0], list) else [cmd]
        LOGS.mkdir(parents=True, exist_ok=True)
        self.logpath = LOGS / f"{lib}_{mode}_{tag}.log"
        self.logf = open(self.logpath, "wb")
        self.ps = [subprocess.Popen(c, cwd=HOME, env=sub_env(self.marker), stdout=self.logf,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
                   for c in self.cmds]
        self.t_spawn = time.perf_counter()

    @property
    def logname(self) -> str:
        try:
            return str(self.logpath.relative_to(HOME))
        except ValueError:  # --log-dir outside PEERS_HOME
            return str(self.logpath)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.ps)

    def stop(self) -> None:
        try:
            for p in self.ps:  # SIGTERM to each worker main process (as a supervisor would)
                if p.poll() is None:
                    try:
                        p.send_signal(signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            deadline = time.time() + 12
            for p in self.ps:
                try:
                    p.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    log(f"  {self.lib}/{self.mode}: SIGTERM not enough after 12s, SIGKILL pgid {p.pid}")
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait(timeout=10)
            # stragglers that left the process group (e.g. setsid'd children): by PID
            for _ in range(3):
                if not marker_pids(self.marker):
                    break
                time.sleep(1.0)
            for pid in marker_pids(self.marker):
                log(f"  killing straggler pid {pid} ({_comm(str(pid))})")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        finally:
            self.logf.close()


def wait_counter(r, target: int, timeout: float, w: Worker | None, t_start: float, poll: float = 0.01) -> dict:
    t_first = c_first = None
    done = 0
    deadline = t_start + timeout
    while time.perf_counter() < deadline:
        v = r.get(K_DONE)
        done = int(v) if v else 0
        now = time.perf_counter()
        if done > 0 and t_first is None:
            t_first, c_first = now, done
        if done >= target:
            return {"done": done, "t_first": t_first, "c_first": c_first, "t_done": now, "timeout": False}
        if w is not None and not w.alive():
            return {"done": done, "t_first": t_first, "c_first": c_first, "t_done": now, "timeout": False,
                    "worker_died": True}
        time.sleep(poll)
    return {"done": done, "t_first": t_first, "c_first": c_first, "t_done": time.perf_counter(), "timeout": True}


# --------------------------------------------------------------------------- phases
def phase_single(lib: str, rep: int, a, r, ver: str) -> None:
    reset_state(lib, r)
    res = run_client(lib, "single", timeout=a.timeout + 60, n=a.n)
    row = {"kind": "enqueue", "lib": lib, "version": ver, "mode": "single", "rep": rep, "N": a.n}
    row.update(res)
    append_result(row)
    log(f"  enqueue single: {res.get('rate', res.get('error'))}")


def drain_rates(wc: dict, t_spawn: float) -> dict:
    """rate = steady state (first completion seen -> last), excluding worker start-up. Always numeric:
    rate_basis says 'wall' when everything finished within one 10 ms poll, 'none' when nothing ran."""
    if wc["t_first"] is None:
        return {"rate": 0.0, "rate_basis": "none"}
    out = {"startup_s": round(wc["t_first"] - t_spawn, 3), "wall_s": round(wc["t_done"] - t_spawn, 3),
           "rate_incl_startup": wc["done"] / (wc["t_done"] - t_spawn)}
    span = wc["t_done"] - wc["t_first"]
    if span > 0 and wc["done"] > wc["c_first"]:
        out.update(rate=(wc["done"] - wc["c_first"]) / span, rate_basis="steady")
    else:
        out.update(rate=out["rate_incl_startup"], rate_basis="wall")
    return out


def phase_drain(lib: str, mode: str, rep: int, a, r, ver: str) -> None:
    reset_state(lib, r)
    # 1) pre-fill with the fastest documented API (this is also an enqueue-bulk sample)
    if LIBS[lib]["bulk"] is None:  # no bulk API: pre-fill with single sends
        enq = run_client(lib, "single", timeout=a.timeout + 60, n=a.n)
        bulk_mode = "single (no bulk API)"
    else:
        enq = run_client(lib, "bulk", timeout=a.timeout + 60, n=a.n)
        bulk_mode = "bulk"
    erow = {"kind": "enqueue", "lib": lib, "version": ver, "mode": bulk_mode, "rep": rep, "N": a.n,
            "prefill_for": mode}
    erow.update(enq)
    append_result(erow)
    if "error" in enq:
        log(f"  prefill failed: {enq['error'][-300:]}")
        append_result({"kind": "drain", "lib": lib, "version": ver, "mode": mode, "rep": rep, "N": a.n,
                       "rate": 0.0, "rate_basis": "none", "error": "prefill failed"})
        return
    log(f"  prefill ({bulk_mode}): {enq['rate']:.0f}/s")
    time.sleep(0.5)
    # 2) start worker, time until counter == N
    s0 = snap(r, None)
    w = Worker(lib, mode, f"drain_r{rep}")
    try:
        wc = wait_counter(r, a.n, a.timeout, w, w.t_spawn)
        s1 = snap(r, w.marker)
        s0["worker"] = 0.0  # worker did not exist at s0
        cpu = cpu_delta(s0, s1)
        time.sleep(2.0)  # let stragglers/duplicates show
        done_final = int(r.get(K_DONE) or 0)
        unique = int(r.bitcount(K_BITS))
    finally:
        w.stop()
    row = {"kind": "drain", "lib": lib, "version": ver, "mode": mode, "desc": LIBS[lib]["workers"][mode][1],
           "rep": rep, "N": a.n, "done_at_stop": wc["done"], "done_final": done_final, "unique": unique,
           "timeout": wc["timeout"], "worker_died": wc.get("worker_died", False), "cpu": cpu, "log": w.logname}
    row.update(drain_rates(wc, w.t_spawn))
    append_result(row)
    log(f"  drain {mode}: rate={row['rate']:.0f}/s done={done_final} unique={unique} "
        f"timeout={wc['timeout']} cpu={cpu}")


def phase_latency(lib: str, mode: str, rep: int, a, r, ver: str) -> None:
    reset_state(lib, r)
    w = Worker(lib, mode, f"lat_r{rep}")
    row = {"kind": "latency", "lib": lib, "version": ver, "mode": mode, "desc": LIBS[lib]["workers"][mode][1],
           "rep": rep, "rate_target": a.rate, "duration_s": a.duration, "log": w.logname}
    try:
        wu = run_client(lib, "warmup", timeout=60)
        if "error" in wu:
            row["error"] = "warmup enqueue failed: " + wu["error"][-300:]
            return
        wc = wait_counter(r, 5, 60, w, time.perf_counter())
        if wc["done"] < 5:
            row["error"] = f"worker not ready (warmup done={wc['done']})"
            return
        r.delete(K_DONE, K_BITS, K_LAT)
        time.sleep(1.0)  # idle worker
        s0 = snap(r, w.marker)
        res = run_client(lib, "latency", timeout=a.duration + 60, rate=a.rate, duration=a.duration)
        if "error" in res:
            row["error"] = "latency client failed: " + res["error"][-300:]
            return
        sent = res["n"]
        wc = wait_counter(r, sent, 30, w, time.perf_counter())
        s1 = snap(r, w.marker)
        lat = [float(x) for x in r.lrange(K_LAT, 0, -1)]
        time.sleep(1.0)
        row.update({
            "sent": sent, "achieved_rate": res["achieved_rate"], "done": int(r.get(K_DONE) or 0),
            "unique": int(r.bitcount(K_BITS)), "drain_timeout": wc["timeout"],
            "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99), "max": max(lat) if lat else None,
            "mean": statistics.fmean(lat) if lat else None, "n_lat": len(lat),
            "enq_call_ms_p50": res.get("enq_call_ms_p50"), "enq_call_ms_p99": res.get("enq_call_ms_p99"),
            "cpu": cpu_delta(s0, s1, res.get("client_cpu_s", 0.0)),
        })
    finally:
        w.stop()
        append_result(row)
        if "error" in row:
            log(f"  latency {mode}: ERROR {row['error']}")
        elif row["p50"] is None:
            log(f"  latency {mode}: no samples (sent={row['sent']} done={row['done']})")
        else:
            log(f"  latency {mode}: p50={row['p50']:.1f} p95={row['p95']:.1f} p99={row['p99']:.1f} ms "
                f"sent={row['sent']} done={row['done']} cpu={row['cpu']}")


def pick_modes(lib: str, spec: str) -> list[str]:
    """Modes of a comma list the library has; an entry `a/b` means the first of a, b that it has."""
    out = []
    for entry in spec.split(","):
        m = next((m for m in entry.split("/") if m in LIBS[lib]["workers"]), None)
        if m is not None and m not in out:
            out.append(m)
    return out


def bench_lib(lib: str, a) -> None:
    r = rconn()
    ver = lib_version(lib)
    log(f"=== {lib} ({ver})")
    phases = a.phases.split(",")
    dmodes = pick_modes(lib, a.drain_modes)
    lmodes = pick_modes(lib, a.lat_modes)
    try:
        for rep in range(1, a.reps + 1):
            log(f"-- {lib} rep {rep}/{a.reps}")
            if "single" in phases:
                phase_single(lib, rep, a, r, ver)
            if "drain" in phases:
                for m in dmodes:
                    phase_drain(lib, m, rep, a, r, ver)
            if "latency" in phases:
                for m in lmodes:
                    phase_latency(lib, m, rep, a, r, ver)
    finally:
        r.flushdb()
        if LIBS[lib]["store"] == "pg":
            drop_pg()
        r.close()


def rq_backlog_check(a, seconds: float = 30.0) -> None:
    """rq's default (fork-per-job) worker: are jobs it did not reach in time still queued (not lost)?
    Pre-fill N, run `rq worker` for 30 s, stop it (SIGTERM = warm shutdown), count done + queued."""
    r = rconn()
    try:
        reset_state("rq", r)
        enq = run_client("rq", "bulk", timeout=a.timeout + 60, n=a.n)
        if "error" in enq:
            raise RuntimeError(f"prefill failed: {enq['error'][-300:]}")
        w = Worker("rq", "default", "backlog_check")
        try:
            wait_counter(r, a.n, seconds, w, w.t_spawn)
        finally:
            w.stop()
        time.sleep(1.0)
        row = {"kind": "rq_backlog", "lib": "rq", "version": lib_version("rq"), "N": a.n, "run_s": seconds,
               "done": int(r.get(K_DONE) or 0), "unique": int(r.bitcount(K_BITS)),
               "queued": r.cmd("LLEN", "rq:queue:default"),
               "started_reg": r.cmd("ZCARD", "rq:wip:default") + r.cmd("ZCARD", "rq:started:default"),
               "failed_reg": r.cmd("ZCARD", "rq:failed:default"),
               "finished_reg": r.cmd("ZCARD", "rq:finished:default"), "log": w.logname}
        row["done_plus_queued"] = row["done"] + row["queued"]
        append_result(row)
        log(f"  rq backlog check: {row}")
    finally:
        r.flushdb()
        r.close()


# --------------------------------------------------------------------------- physical limits
def parse_rb(out: str) -> dict:
    # e.g. "XADD benchstream * f v: 123456.79 requests per second, p50=0.215 msec"
    line = [ln for ln in out.replace("\r", "\n").splitlines() if "requests per second" in ln][-1]
    rps = float(line.split(":")[1].split("requests")[0].strip())
    p50 = float(line.split("p50=")[1].split()[0]) if "p50=" in line else None
    return {"rate": rps, "p50_ms": p50}


def redis_benchmark_runs(a, r) -> None:
    """redis-benchmark XADD against the PEERS_REDIS_URL server and database, without and with -P 50."""
    if shutil.which("redis-benchmark") is None:
        log("  redis-benchmark not found (Debian: apt-get install redis-tools); skipped")
        append_result({"kind": "phys", "test": "redis-benchmark", "error": "redis-benchmark not found"})
        return
    rb_ver = subprocess.run(["redis-benchmark", "--version"], capture_output=True, text=True).stdout.strip()
    rb_num = rb_ver.split()[1] if len(rb_ver.split()) > 1 else rb_ver
    auth = []
    if REDIS["password"] is not None:
        auth = ["-a", REDIS["password"], "--no-auth-warning"] + (["--user", REDIS["user"]] if REDIS["user"] else [])
    for rep in range(1, a.reps + 1):
        for label, extra in (("redis-benchmark XADD -c50", []), ("redis-benchmark XADD -c50 -P50", ["-P", "50"])):
            r.flushdb()
            s0 = snap(r, None)
            args = ["-h", REDIS["host"], "-p", str(REDIS["port"]), "--dbnum", str(REDIS["db"]), "-n", "200000",
                    "-q", *extra, "XADD", "benchstream", "*", "f", "v"]
            p = subprocess.run(["redis-benchmark", *auth, *args], capture_output=True, text=True, timeout=300)
            s1 = snap(r, None)
            row = {"kind": "phys", "test": label, "rep": rep, "N": 200000, "redis_benchmark": rb_num,
                   "cmd": " ".join(["redis-benchmark", *(["-a", "***"] if auth else []), *args]),
                   "cpu": cpu_delta(s0, s1), "xlen": r.xlen("benchstream")}
            try:
                row.update(parse_rb(p.stdout))
            except Exception:  # noqa: BLE001
                row["error"] = (p.stdout + p.stderr)[-400:]
            append_result(row)
            log(f"  {label}: {row.get('rate')} xlen={row['xlen']}")
            r.flushdb()


def bench_physical(a) -> None:
    r = rconn()
    py = venv_python(a.phys_venv)
    tests = a.phys_tests.split(",") if a.phys_tests else \
        (["redis-benchmark"] + PHYS_TESTS if a.phys_venv == "peers" else list(PHYS_REDIS_TESTS))
    py_tests = [t for t in tests if t != "redis-benchmark"]
    need_pg = any(t.startswith(("pg_", "combined")) for t in py_tests)
    env = sub_env(pg_db=PG_PHYS_DB)
    log(f"=== physical ({a.phys_venv} venv): {', '.join(tests)}")
    try:
        if "redis-benchmark" in tests:
            redis_benchmark_runs(a, r)
        if need_pg:
            recreate_pg(PG_PHYS_DB)
            subprocess.run([py, "-m", "peerlibs.physical", "pg_setup"], cwd=HOME, env=env, check=True,
                           capture_output=True, timeout=60)
        for rep in range(1, a.reps + 1):
            for t in py_tests:
                r.flushdb()
                s0 = snap(r, None)
                cmd = [py, "-m", "peerlibs.physical", t] + (["--n", str(a.phys_n)] if a.phys_n else [])
                try:
                    p = subprocess.run(cmd, cwd=HOME, env=env, capture_output=True, text=True, timeout=300)
                    res = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else \
                        {"error": p.stderr[-500:]}
                except Exception as e:  # noqa: BLE001
                    res = {"error": repr(e)}
                s1 = snap(r, None)
                row = {"kind": "phys", "test": t, "rep": rep, "cpu": cpu_delta(s0, s1, res.get("client_cpu_s", 0))}
                row.update(res)
                append_result(row)
                log(f"  {t}: {row.get('rate', row.get('error'))}")
    finally:
        if need_pg:
            drop_pg(PG_PHYS_DB)
        r.flushdb()
        r.close()


# --------------------------------------------------------------------------- report
def _stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, None, 0
    return statistics.median(vals), min(vals), max(vals), len(vals)


def _f(v, d=0):
    if v is None:
        return "-"
    return f"{v:,.{d}f}"


def _bulk_mode(lib: str) -> str:
    return LIBS.get(lib, {}).get("bulk") or "-"


def report_enqueue(rows, libs) -> list[str]:
    out = ["### Enqueue throughput (one client process, jobs/s)\n",
           "| library | version | mode | N | median | min | max | samples | client CPU s (median) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for lib in libs:
        for mode in ("single", "bulk", "single (no bulk API)"):
            rs = [r for r in rows if r["kind"] == "enqueue" and r["lib"] == lib and r["mode"] == mode and "rate" in r]
            if mode == "single (no bulk API)":
                rs = [r for r in rs if r.get("prefill_for")]
            if not rs:
                continue
            med, mn, mx, k = _stats([r["rate"] for r in rs])
            cc = statistics.median([r.get("client_cpu_s", 0) for r in rs])
            label = mode if mode != "bulk" else "bulk: " + _bulk_mode(lib)
            if mode == "single (no bulk API)":
                label = "single (prefill runs)"
            out.append(f"| {lib} | {rs[0]['version']} | {label} | {rs[0]['N']} | {_f(med)} | {_f(mn)} | {_f(mx)} "
                       f"| {k} | {cc:.2f} |")
    for r in rows:
        if r["kind"] == "enqueue" and "error" in r:
            out.append(f"\n(enqueue error {r['lib']} {r['mode']} rep {r['rep']}: {r['error'][-200:]!r})")
    return out


def report_drain(rows, libs) -> list[str]:
    out = ["\n### Drain throughput (queue pre-filled with N, worker started as subprocess; jobs/s)\n",
           "rate = steady-state (first completion -> N-th completion); wall = spawn -> N-th completion.\n",
           "| library | version | mode | worker config | N | median | min | max | wall jobs/s (median) | startup s | "
           "completed (min/max of done, unique) | timeouts | CPU cores busy | worker/redis/pg CPU s (median) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for lib in libs:
        for mode in ("default", "tuned", "tuned2p"):
            rs = [r for r in rows if r["kind"] == "drain" and r["lib"] == lib and r["mode"] == mode]
            if not rs:
                continue
            med, mn, mx, k = _stats([r.get("rate") for r in rs])
            wmed = _stats([r.get("rate_incl_startup") for r in rs])[0]
            st = _stats([r.get("startup_s") for r in rs])[0]
            dones = [r.get("done_final", 0) for r in rs]
            uniq = [r.get("unique", 0) for r in rs]
            tos = sum(1 for r in rs if r.get("timeout"))
            cpu = [r["cpu"] for r in rs if "cpu" in r]
            busy = _stats([c.get("sys_busy_cores") for c in cpu])[0]
            wcpu = _stats([c.get("worker_cpu_s") for c in cpu])[0]
            rcpu = _stats([c.get("redis_cpu_s") for c in cpu])[0]
            pcpu = _stats([c.get("pg_cpu_s") for c in cpu])[0]
            out.append(
                f"| {lib} | {rs[0]['version']} | {mode} | {rs[0].get('desc', '')} | {rs[0]['N']} | {_f(med)} | "
                f"{_f(mn)} | {_f(mx)} | {_f(wmed)} | {_f(st, 2)} | done {min(dones)}/{max(dones)}, unique "
                f"{min(uniq)}/{max(uniq)} | {tos}/{len(rs)} | {_f(busy, 2)} | {_f(wcpu, 1)}/{_f(rcpu, 1)}/{_f(pcpu, 1)} |")
    return out


def report_latency(rows, libs) -> list[str]:
    load = sorted({(r.get("rate_target"), r.get("duration_s")) for r in rows if r["kind"] == "latency"},
                  key=str)
    what = f"{load[0][0]:.0f} jobs/s for {load[0][1]:.0f} s" if len(load) == 1 else "steady enqueue rate"
    out = [f"\n### Pickup latency ({what} into an idle running worker; ms)\n",
           "| library | version | mode | N per run | p50 median | p50 min-max | p95 median | p95 min-max | p99 median | "
           "p99 min-max | max (worst run) | sent/done/unique (per run) | CPU cores busy | worker/client/redis/pg CPU s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for lib in libs:
        for mode in ("default", "tuned"):
            rs = [r for r in rows if r["kind"] == "latency" and r["lib"] == lib and r["mode"] == mode]
            ok = [r for r in rs if r.get("p50") is not None]
            if not rs:
                continue
            if not ok:
                out.append(f"| {lib} | {rs[0]['version']} | {mode} | ERROR: {rs[0].get('error', '')[:120]} |||||||||||")
                continue
            p50 = _stats([r["p50"] for r in ok])
            p95 = _stats([r["p95"] for r in ok])
            p99 = _stats([r["p99"] for r in ok])
            mx = max(r["max"] for r in ok)
            sdu = ", ".join(f"{r['sent']}/{r['done']}/{r['unique']}" for r in ok)
            cpu = [r["cpu"] for r in ok]
            busy = _stats([c.get("sys_busy_cores") for c in cpu])[0]
            wc = _stats([c.get("worker_cpu_s") for c in cpu])[0]
            cc = _stats([c.get("client_cpu_s") for c in cpu])[0]
            rc = _stats([c.get("redis_cpu_s") for c in cpu])[0]
            pc = _stats([c.get("pg_cpu_s") for c in cpu])[0]
            out.append(f"| {lib} | {ok[0]['version']} | {mode} | {int(ok[0]['rate_target'] * ok[0]['duration_s'])} | "
                       f"{_f(p50[0], 1)} | {_f(p50[1], 1)}-{_f(p50[2], 1)} | {_f(p95[0], 1)} | "
                       f"{_f(p95[1], 1)}-{_f(p95[2], 1)} | {_f(p99[0], 1)} | {_f(p99[1], 1)}-{_f(p99[2], 1)} | "
                       f"{_f(mx, 1)} | {sdu} | {_f(busy, 2)} | {_f(wc, 1)}/{_f(cc, 1)}/{_f(rc, 1)}/{_f(pc, 1)} |")
    return out


def _phys_client(r: dict) -> str:
    t = r["test"]
    if t.startswith("redis-benchmark"):
        return f"redis-benchmark {r.get('redis_benchmark', '')} (-c 50)".replace("  ", " ")
    pg = f"asyncpg {r.get('asyncpg', '')}".strip()
    if t.startswith("pg_"):
        return pg + ", uvloop"
    if t.startswith("combined"):
        return f"{pg} + redis-py {r.get('redis_py')}, uvloop"
    return f"redis-py {r.get('redis_py')} + hiredis, uvloop"


def report_physical(rows) -> list[str]:
    ph = [r for r in rows if r["kind"] == "phys"]
    if not ph:
        return []
    out = ["\n### Physical limits (ops or rows per second)\n",
           "client CPU/wall = client process CPU seconds / elapsed seconds inside the timed window "
           "(1.0 = the Python client saturates one core). redis-benchmark: Redis CPU s for the whole run.\n",
           "| test | client lib | N | median | min | max | samples | client CPU/wall (median) | "
           "redis-server CPU s (redis-benchmark only) |",
           "|---|---|---|---|---|---|---|---|---|"]
    seen = []
    for r in ph:
        key = (r["test"], r.get("redis_py"))
        if key not in seen:
            seen.append(key)
    for t, rp in seen:
        rs = [r for r in ph if r["test"] == t and r.get("redis_py") == rp and "rate" in r]
        if not rs:
            out.append(f"| {t} | ERROR {[r.get('error') for r in ph if r['test'] == t][:1]} ||||||||")
            continue
        med, mn, mx, k = _stats([r["rate"] for r in rs])
        if t.startswith("redis-benchmark"):
            share = "-"
            rcpu = _f(_stats([r["cpu"]["redis_cpu_s"] for r in rs])[0], 2)
        else:
            share = _f(_stats([r["client_cpu_s"] / r["elapsed"] for r in rs])[0], 2)
            rcpu = "-"
        out.append(f"| {t} | {_phys_client(rs[0])} | {rs[0].get('N', rs[0].get('n'))} | {_f(med)} | {_f(mn)} | "
                   f"{_f(mx)} | {k} | {share} | {rcpu} |")
    return out


def report(path: Path) -> str:
    if not path.exists():
        raise SystemExit(f"no results file {path} (run a benchmark first, or pass --results FILE, "
                         "e.g. --results baseline-2026-11-28.jsonl)")
    rows = [json.loads(ln) for ln in open(path) if ln.strip()]
    libs = [lib for lib in ALL_LIBS if any(r.get("lib") == lib for r in rows)]
    out = report_enqueue(rows, libs) + report_drain(rows, libs) + report_latency(rows, libs) + report_physical(rows)
    for r in rows:
        if r["kind"] == "rq_backlog":
            out.append(f"\nrq backlog check ({r['version']}, N={r['N']}, worker ran {r['run_s']:.0f} s): done "
                       f"{r['done']} + still queued {r['queued']} = {r['done_plus_queued']}; failed registry "
                       f"{r['failed_reg']}")
        elif r["kind"] == "error":
            out.append(f"\n(error {r.get('lib', '')}: {r.get('error', '')[-200:]})")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- main
def _stop_on_sigterm(signum, frame) -> None:
    """SIGTERM (a supervisor, or bench/e2e_parts/peers.py when its run is cancelled) stops the run
    the way Ctrl-C does: the finally blocks stop the workers, flush Redis and drop the database.
    SIGINT alone is not enough: a process started in the background inherits it ignored."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean-up, not one per signal
    raise KeyboardInterrupt


def main() -> None:
    global OUT_PATHS, LOGS
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", action="append", choices=ALL_LIBS, help="library to benchmark (repeatable)")
    ap.add_argument("--all", action="store_true", help="all libraries, then physical limits")
    ap.add_argument("--physical", action="store_true", help="physical-limit benchmarks only")
    ap.add_argument("--phys-tests", default="",
                    help="comma list of peerlibs.physical tests and/or 'redis-benchmark' (default: all)")
    ap.add_argument("--phys-venv", choices=sorted(VENVS), default="peers",
                    help="venv for the physical tests: peers (redis-py 5.3.1, default) or taskiq "
                         "(redis-py 8.1.0; Redis tests only)")
    ap.add_argument("--phys-n", type=int, default=0, help="N for every physical test (default: each test's own)")
    ap.add_argument("--rq-backlog-check", action="store_true",
                    help="rq default worker: run 30 s on N jobs, then count done + still queued")
    ap.add_argument("--report", action="store_true", help="print markdown tables from the results file")
    ap.add_argument("--results", default=str(RESULTS / "results.jsonl"),
                    help="results file to append to / to report on (default: %(default)s)")
    ap.add_argument("--json-out", action="append", default=[], metavar="FILE",
                    help="also append every measurement's JSON object to FILE (repeatable)")
    ap.add_argument("--log-dir", default=str(LOGS), help="worker logs (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--timeout", type=float, default=120.0, help="per drain/enqueue run")
    ap.add_argument("--rate", type=float, default=200.0, help="latency test: jobs/s")
    ap.add_argument("--duration", type=float, default=15.0, help="latency test: seconds")
    ap.add_argument("--phases", default="single,drain,latency")
    ap.add_argument("--drain-modes", default="default,tuned,tuned2p",
                    help="comma list; a/b = the first of a, b the library has (e.g. tuned2p/tuned)")
    ap.add_argument("--lat-modes", default="default,tuned", help="as --drain-modes")
    a = ap.parse_args()
    if a.report:
        sys.stdout.write(report(Path(a.results)))
        return
    libs = ALL_LIBS if a.all else (a.lib or [])
    physical = a.physical or a.all
    if not libs and not physical and not a.rq_backlog_check:
        ap.error("give --lib NAME, --all, --physical, --rq-backlog-check or --report")
    if a.phys_venv == "taskiq" and any(t.startswith(("pg_", "combined")) for t in a.phys_tests.split(",")):
        ap.error("--phys-venv taskiq has no asyncpg: use it for the Redis tests only")
    check_config()
    OUT_PATHS = [Path(a.results).absolute()] + [Path(p).absolute() for p in a.json_out]
    LOGS = Path(a.log_dir).expanduser().absolute()
    need = {LIBS[lib]["venv"] for lib in libs} | ({a.phys_venv} if physical else set()) | \
        ({"peers"} if a.rq_backlog_check else set())
    HOME.mkdir(parents=True, exist_ok=True)
    ensure_venvs(need)
    log(f"Redis {REDIS['host']}:{REDIS['port']} db {REDIS['db']}, PostgreSQL {urlsplit(PG_ADMIN_DSN).hostname}:"
        f"{urlsplit(PG_ADMIN_DSN).port or 5432}; results -> {', '.join(map(str, OUT_PATHS))}")
    t0 = time.time()
    for lib in libs:
        try:
            bench_lib(lib, a)
        except Exception as e:  # noqa: BLE001  one broken library must not stop the rest
            log(f"!!! {lib} failed: {e!r}")
            append_result({"kind": "error", "lib": lib, "error": repr(e)})
    if a.rq_backlog_check:
        rq_backlog_check(a)
    if physical:
        bench_physical(a)
    log(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted: workers stopped, Redis database flushed, PostgreSQL database dropped")
        sys.exit(130)
