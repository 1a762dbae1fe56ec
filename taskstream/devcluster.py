"""A private Redis Cluster of a few masters for tests and benchmarks, from ``redis-server``.

Each node is a child of this process on a free port of 127.0.0.1 with its own folder; the
cluster is formed with ``redis-cli --cluster create`` (no replicas) and is ready when every node
says ``cluster_state:ok``. Nodes keep no data on disk (no RDB, no AOF) but do keep their cluster
config (``nodes.conf``): a node restarted with :meth:`LocalCluster.restart` rejoins owning its
slots, empty, as a master that lost its data does.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .devservers import (
    HOST,
    RunningServer,
    ServiceNotFound,
    _env,
    _launch,
    _redis_binary,
    _redis_pong,
    _Runner,
    _to_stderr,
)

NODE_TIMEOUT_MS = 2000  # how long a silent master takes to be marked failing by the others
BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000 (so port <= 55535)


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    """A port whose bus port (+10000) is free too, below 55536."""
    for _ in range(200):
        port = random.randint(20_000, 45_000)  # noqa: S311 - not a secret
        if _is_free(port) and _is_free(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free pair of ports for a Redis Cluster node")


def _redis_cli() -> str:
    for name in ("redis-cli", "valkey-cli"):
        if found := shutil.which(name):
            return found
    raise ServiceNotFound("no redis-cli on PATH: install Debian's redis-tools package")


def _cli(*args: str, timeout_s: float = 30.0) -> str:
    done = subprocess.run(  # noqa: S603 - our own argv
        [_redis_cli(), *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode:
        raise RuntimeError(f"redis-cli {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


class LocalCluster:
    """``nodes`` Redis masters forming one cluster. ``url`` is the ``redis+cluster://`` URL."""

    def __init__(
        self, data_dir: Path, nodes: int = 3, *, progress: Callable[[str], None] = _to_stderr
    ) -> None:
        self.data_dir = data_dir
        self.count = nodes
        self.progress = progress
        self.nodes: list[RunningServer] = []
        self.ports: list[int] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.ports[0]}"

    def start(self) -> LocalCluster:
        t0 = time.monotonic()
        self.progress(f"starting a Redis Cluster of {self.count} masters…")
        try:
            _redis_cli()  # before any node starts: the message says what to install
            for i in range(self.count):
                server, port = self._start_node(i, None)
                self.nodes.append(server)
                self.ports.append(port)
            addresses = [f"{HOST}:{p}" for p in self.ports]
            _cli("--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes")
            self.wait_ok()
        except BaseException:
            self.stop()  # no node outlives a failed start
            raise
        addresses = [f"{HOST}:{p}" for p in self.ports]
        took = time.monotonic() - t0
        self.progress(f"Redis Cluster ready on {', '.join(addresses)} ({took:.1f} s)")
        return self

    def _start_node(self, i: int, port: int | None) -> tuple[RunningServer, int]:
        node_dir = self.data_dir / f"node{i}"
        node_dir.mkdir(parents=True, exist_ok=True)
        runner = _Runner(None, node_dir, _env())
        log = self.data_dir / f"node{i}.log"
        argv = [
            _redis_binary(), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(node_dir), "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--port",
        ]  # fmt: skip
        for attempt in range(1 if port else 3):
            try:
                server, chosen, _ = _launch(
                    "redis", f"redis://{HOST}:{{port}}/0", log,
                    lambda p: runner.spawn([*argv, str(p)], log, signal.SIGTERM),
                    _redis_pong, 15.0, port or _cluster_port(),
                )  # fmt: skip
            except RuntimeError:
                if port or attempt == 2:  # taken meanwhile by another process: another port
                    raise
                continue
            return server, chosen
        raise AssertionError("unreachable")

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every node reports ``cluster_state:ok`` (slots all covered, nodes agree)."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = [self._state(p) for p in self.ports]
            if all(s == "ok" for s in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster not ok in {timeout_s:.0f} s: {states}")
            time.sleep(0.1)

    @staticmethod
    def _state(port: int) -> str:
        try:
            info = _cli("-h", HOST, "-p", str(port), "cluster", "info", timeout_s=5)
        except (RuntimeError, subprocess.TimeoutExpired):
            return "down"
        for line in info.splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        return "unknown"

    def kill(self, i: int) -> None:
        """SIGKILL node ``i``: what it held in memory is gone."""
        proc = self.nodes[i].process
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, i: int) -> None:
        """Start node ``i`` again on its port, empty, with its cluster config."""
        self.nodes[i], _ = self._start_node(i, self.ports[i])
        self.wait_ok()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
