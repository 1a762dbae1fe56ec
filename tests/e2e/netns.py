"""Hosts in network namespaces, for tests that cut one off the network (needs root and `ip`).

A bridge on this machine holds the gateway address of a private /24; each "host" is a network
namespace (and, for its commands, a UTS namespace named after it, so its worker names say which
host they run on) joined to the bridge by a veth pair. Cutting a host off drops its packets on
the bridge, either with its link down (a pulled cable) or with its link up (a partition that the
host cannot see); see :meth:`Hosts.cut`.

Names carry the test process's pid (``ts-<pid>-h1``, ``tsbr<pid>``, ``tsv<pid>h1``), so parallel
runs do not clash, and leftovers of a run that died without cleaning up are recognised (their pid
is gone) and removed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

NETNS = re.compile(r"ts-(\d+)-h\d+")
LINK = re.compile(r"tsbr(\d+)|tsv(\d+)h\d+")


class Refused(Exception):
    """This machine cannot make namespaces here (not root, no `ip`, or the kernel says no)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _bridge_port_state(port: str, state: str) -> None:
    # `ip link set ... type bridge_slave state N` answers 0 and changes nothing (iproute2 6.1).
    done = subprocess.run(
        ["bridge", "link", "set", "dev", port, "state", state],
        capture_output=True, text=True, timeout=15, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bridge link set dev {port} state {state}: {done.stderr.strip()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()  # our own pid on an old name: a previous run's, before reuse


def kill_namespace_pids(netns: str) -> None:
    """SIGKILL whatever still runs in `netns`."""
    for pid in ip("netns", "pids", netns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_leftovers() -> list[str]:
    """Delete namespaces and links of earlier runs whose test process is gone."""
    removed = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if (m := NETNS.fullmatch(name)) and not _alive(int(m.group(1))):
            kill_namespace_pids(name)
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if (m := LINK.fullmatch(name)) and not _alive(int(m.group(1) or m.group(2))):
            ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no interface here is on (the pid spreads parallel runs)."""
    used = []
    for line in ip("-4", "-o", "addr", "show", check=False).stdout.splitlines():
        words = line.split()
        if "inet" in words:
            used.append(ipaddress.ip_interface(words[words.index("inet") + 1]).network)
    start = os.getpid() % 250
    for k in range(250):
        net = ipaddress.ip_network(f"10.213.{(start + k) % 250}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise Refused("no free /24 in 10.213.0.0/16")


class Hosts:
    """`count` namespaces on one bridge; :meth:`close` removes everything it made."""

    def __init__(self, count: int) -> None:
        tag = str(os.getpid())
        self.bridge = f"tsbr{tag}"
        self.names = [f"ts-{tag}-h{i}" for i in range(1, count + 1)]
        self.veths = [f"tsv{tag}h{i}" for i in range(1, count + 1)]
        self.subnet = _free_subnet()
        self.gateway = str(self.subnet.network_address + 1)
        self.addresses = [str(self.subnet.network_address + 10 + i) for i in range(count)]

    @staticmethod
    def check_allowed() -> None:
        """Raise :class:`Refused` (with the reason) unless namespaces can be made here."""
        if os.geteuid() != 0:
            raise Refused("network namespaces need root")
        for tool in ("ip", "bridge", "unshare"):
            if shutil.which(tool) is None:
                raise Refused(f"`{tool}` is not installed (iproute2 / util-linux)")
        probe = f"ts-{os.getpid()}-h0"
        made = ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            raise Refused(f"`ip netns add` refused: {made.stderr.strip()}")
        ip("netns", "del", probe, check=False)

    def open(self) -> Hosts:
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for name, veth, address in zip(self.names, self.veths, self.addresses, strict=True):
                ip("netns", "add", name)
                ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
                ip("link", "set", veth, "master", self.bridge, "up")
                ip("-n", name, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
                ip("-n", name, "link", "set", "lo", "up")
                ip("-n", name, "link", "set", "eth0", "up")
                ip("-n", name, "route", "add", "default", "via", self.gateway)
        except BaseException:
            self.close()
            raise
        return self

    def argv(self, host: int, command: Sequence[str]) -> list[str]:
        """`command` run on host `host` (0-based), under that host's name. Every step execs,
        so the process started with this argv is the command itself (same pid)."""
        name = self.names[host]
        return [
            "ip", "netns", "exec", name, "unshare", "--uts",
            "sh", "-c", 'hostname "$0" && exec "$@"', name, *command,
        ]  # fmt: skip

    def start(
        self, host: int, command: Sequence[str], env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Start `command` on host `host` in a session of its own, output to `log`."""
        with log.open("wb") as out:
            return subprocess.Popen(
                self.argv(host, command),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def cut(self, host: int, how: str) -> None:
        """Cut host `host` off; its packets (both ways) are dropped from now on. ``unplug``: the
        bridge side of its veth goes down, so the host sees its link lose carrier (new
        connections fail at once, open ones stall). ``partition``: the bridge stops forwarding
        its port and both ends keep carrier, so the host notices nothing (every connection,
        new or open, just hangs)."""
        if how == "unplug":
            ip("link", "set", self.veths[host], "down")
        elif how == "partition":
            _bridge_port_state(self.veths[host], "0")  # disabled
        else:
            raise ValueError(f"unknown way to cut a host off: {how!r}")

    def restore(self, host: int) -> None:
        """Plug host `host` back in, whichever way it was cut off."""
        ip("link", "set", self.veths[host], "up")
        _bridge_port_state(self.veths[host], "3")  # forwarding

    def close(self) -> None:
        """Kill every process in the namespaces, then delete them and the bridge. Idempotent."""
        for name in self.names:
            kill_namespace_pids(name)
        deadline = time.monotonic() + 5
        while any(ip("netns", "pids", n, check=False).stdout.strip() for n in self.names):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for name in self.names:
            ip("netns", "del", name, check=False)  # takes its veth pair with it
        ip("link", "del", self.bridge, check=False)
