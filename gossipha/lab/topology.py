"""The tutorial's network, built in network namespaces: master, slave, ping node, client.

Each host is a namespace ``<prefix><node>`` whose interfaces are veth ends really named
``eth0``/``eth1``; the other ends sit in ``<prefix>sw``, a switch namespace holding one
bridge per network. Nothing is created in the root namespace. The prefix embeds the
owner's PID (``gha-p<pid>-<hex>-``) so `sweep_stale` removes only labs whose owner is gone.

Teardown kills every process still in a lab namespace by PID, then removes the namespace
(which takes its veths and bridges with it); it is safe to call twice or after a half build.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ParamSpec, Self, TypeVar

from pyroute2 import NetNS, netns

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000  # <sched.h>; os.setns is Python 3.12+
STALE_PREFIX = "gha-"
SWITCH = "sw"
SERVICE_BRIDGE = "br-svc"
HEARTBEAT_BRIDGE = "br-hb"
# Bound on how long teardown waits for killed processes to leave a namespace.
KILL_WAIT_S = 3.0
NUD_PERMANENT = 0x80  # <linux/neighbour.h>: a static entry, never resolved or collected
_OWNED_RE = re.compile(r"^gha-p(\d+)-")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def off_loop(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run `fn` in a worker thread when called from a thread running an event loop.

    pyroute2's synchronous NetNS cannot start inside a running loop. The lab's methods are
    short blocking calls (milliseconds); async callers that must not stall even that long
    wrap them in `asyncio.to_thread` themselves.
    """

    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(fn, *args, **kwargs).result()

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


class LabError(RuntimeError):
    """The lab could not be built or a lab command failed (message says which)."""


@dataclass(frozen=True, slots=True)
class IfaceSpec:
    """One host interface: its name inside the host, its address, the switch bridge."""

    ifname: str
    address: ipaddress.IPv4Interface
    bridge: str


@dataclass(frozen=True, slots=True)
class HostSpec:
    """A host namespace; `hostname` is what its spawned processes see from `uname -n`."""

    node: str
    hostname: str
    ifaces: tuple[IfaceSpec, ...]

    def iface(self, ifname: str) -> IfaceSpec:
        for spec in self.ifaces:
            if spec.ifname == ifname:
                return spec
        raise KeyError(f"{self.node} has no interface {ifname}")


def _if(name: str, cidr: str, bridge: str) -> IfaceSpec:
    return IfaceSpec(name, ipaddress.IPv4Interface(cidr), bridge)


# The tutorial's addresses: eth0 on the service network, eth1 on the heartbeat network.
TUTORIAL_HOSTS: tuple[HostSpec, ...] = (
    HostSpec(
        "master",
        "masternginx",
        (
            _if("eth0", "192.168.171.50/24", SERVICE_BRIDGE),
            _if("eth1", "192.168.17.50/24", HEARTBEAT_BRIDGE),
        ),
    ),
    HostSpec(
        "slave",
        "slavenginx",
        (
            _if("eth0", "192.168.171.51/24", SERVICE_BRIDGE),
            _if("eth1", "192.168.17.51/24", HEARTBEAT_BRIDGE),
        ),
    ),
    HostSpec("ping", "pingnode", (_if("eth0", "192.168.17.1/24", HEARTBEAT_BRIDGE),)),
    HostSpec("client", "client", (_if("eth0", "192.168.171.10/24", SERVICE_BRIDGE),)),
)
TUTORIAL_VIP = ipaddress.IPv4Interface("192.168.171.100/24")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespace_pids(name: str) -> list[int]:
    """PIDs whose network namespace is the named one (what `ip netns pids` prints)."""
    try:
        st = os.stat(NETNS_DIR / name)
    except FileNotFoundError:
        return []
    key = (st.st_dev, st.st_ino)
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            pst = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue  # gone, a zombie, or a kernel thread
        if (pst.st_dev, pst.st_ino) == key:
            pids.append(int(entry))
    return pids


def kill_namespace(name: str, timeout_s: float = KILL_WAIT_S) -> list[int]:
    """SIGKILL every process in the namespace, by PID; wait (bounded) until none is left."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout_s
    while True:
        pids = [p for p in namespace_pids(name) if p != os.getpid()]
        if not pids:
            return killed
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if time.monotonic() > deadline:
            raise LabError(f"processes {pids} still in namespace {name} after SIGKILL")
        time.sleep(0.02)


def remove_namespace(name: str) -> None:
    """Kill what runs in the namespace, then remove it; a missing namespace is fine."""
    kill_namespace(name)
    if name in netns.listnetns():
        with contextlib.suppress(FileNotFoundError):
            netns.remove(name)


def sweep_stale(prefix: str = STALE_PREFIX) -> list[str]:
    """Remove namespaces left by earlier labs; returns their names.

    Only names starting with `prefix` (which must start with ``gha-``) are considered, and
    a lab whose owner process is still alive (``gha-p<pid>-``) is left alone, so labs of
    concurrent test runs survive. Switch namespaces go last so hosts lose their veths first.
    """
    if not prefix.startswith(STALE_PREFIX):
        raise ValueError(f"refusing to sweep namespaces outside {STALE_PREFIX!r}: {prefix!r}")
    stale: list[str] = []
    for name in sorted(netns.listnetns()):
        if not name.startswith(prefix):
            continue
        owned = _OWNED_RE.match(name)
        if owned is not None and _pid_alive(int(owned.group(1))):
            continue
        stale.append(name)
    stale.sort(key=lambda n: n.endswith("-" + SWITCH))
    for name in stale:
        remove_namespace(name)
    return stale


class Lab:
    """The tutorial topology in namespaces; a (sync or async) context manager.

    `build()` and `teardown()` may each be called more than once; a failed build tears
    down what it had made before raising. Processes started with `spawn` are tracked and
    stopped by PID; any other process left in a lab namespace is SIGKILLed by PID.
    """

    def __init__(
        self,
        hosts: Sequence[HostSpec] = TUTORIAL_HOSTS,
        *,
        prefix: str | None = None,
        workdir: Path | None = None,
        keep_workdir: bool = False,
    ) -> None:
        if prefix is None:
            prefix = f"{STALE_PREFIX}p{os.getpid()}-{secrets.token_hex(2)}-"
        if not prefix.startswith(STALE_PREFIX):
            raise ValueError(f"lab prefix must start with {STALE_PREFIX!r}: {prefix!r}")
        self.prefix = prefix
        self.hosts: dict[str, HostSpec] = {h.node: h for h in hosts}
        if SWITCH in self.hosts:
            raise ValueError(f"{SWITCH!r} is the switch namespace, not a host name")
        self._workdir = workdir
        self._own_workdir = workdir is None
        self._keep_workdir = keep_workdir
        self._procs: list[subprocess.Popen[bytes]] = []
        self._loss: dict[str, dict[tuple[str, int | None], int]] = {}
        self._macs: dict[tuple[str, str], str] = {}  # (node, ifname) -> MAC, for pinning
        self._built = False

    @classmethod
    def create(cls, hosts: Sequence[HostSpec] = TUTORIAL_HOSTS, **kwargs: Any) -> Lab:
        """For ``async with Lab.create() as lab``: builds on enter, tears down on exit."""
        return cls(hosts, **kwargs)

    # ---- names and facts ----

    def ns(self, node: str) -> str:
        """The namespace name of a host (or of the switch, ``sw``)."""
        if node != SWITCH and node not in self.hosts:
            raise KeyError(f"no host {node!r} in this lab")
        return self.prefix + node

    @property
    def workdir(self) -> Path:
        """Per-lab scratch directory (nginx configs, client logs)."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=self.prefix))
        return self._workdir

    def address(self, node: str, ifname: str) -> ipaddress.IPv4Interface:
        return self.hosts[node].iface(ifname).address

    @off_loop
    def mac(self, node: str, ifname: str) -> str:
        """The MAC address of a host interface, lower-case colon form."""
        with self._netns(node) as ns:
            links = ns.get_links(ifname=ifname)
            if not links:
                raise LabError(f"{node} has no interface {ifname}")
            return str(links[0].get("IFLA_ADDRESS")).lower()

    def namespaces(self) -> list[str]:
        """Lab namespaces that exist right now."""
        return sorted(n for n in netns.listnetns() if n.startswith(self.prefix))

    def pids(self, node: str) -> list[int]:
        return namespace_pids(self.ns(node))

    # ---- build and teardown ----

    @off_loop
    def build(self) -> None:
        if self._built:
            return
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        self._built = True

    def _build(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        sw_name = self.ns(SWITCH)
        netns.create(sw_name)
        with self._netns(SWITCH) as sw:
            _lo_up(sw)
            bridges = sorted({i.bridge for h in self.hosts.values() for i in h.ifaces})
            for bridge in bridges:
                sw.link("add", ifname=bridge, kind="bridge")
                sw.link("set", index=_index(sw, bridge), state="up")
            for host in self.hosts.values():
                netns.create(self.ns(host.node))
                with self._netns(host.node) as hns:
                    _lo_up(hns)
                    for iface in host.ifaces:
                        port = f"{host.node[:9]}-{iface.ifname}"[:15]
                        sw.link(
                            "add",
                            ifname=port,
                            kind="veth",
                            peer={"ifname": iface.ifname, "net_ns_fd": self.ns(host.node)},
                        )
                        sw.link(
                            "set",
                            index=_index(sw, port),
                            master=_index(sw, iface.bridge),
                            state="up",
                        )
                        idx = _index(hns, iface.ifname)
                        hns.addr(
                            "add",
                            index=idx,
                            address=str(iface.address.ip),
                            prefixlen=iface.address.network.prefixlen,
                            broadcast=str(iface.address.network.broadcast_address),
                        )
                        hns.link("set", index=idx, state="up")

    def teardown(self) -> None:
        """Stop spawned processes, kill the rest by PID, remove every lab namespace."""
        for proc in list(self._procs):
            self.stop(proc)
        names = self.namespaces()
        names.sort(key=lambda n: n == self.prefix + SWITCH)
        for name in names:
            remove_namespace(name)
        self._loss.clear()
        self._macs.clear()  # a rebuilt lab has new veths
        self._built = False
        if self._own_workdir and not self._keep_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Self:
        self.build()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.teardown()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.build)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.teardown)

    # ---- running things inside a host ----

    def command(self, node: str, argv: Sequence[str], *, uts: bool = True) -> list[str]:
        """`argv` wrapped to run in the node's namespace, with its own hostname if `uts`."""
        wrapped = ["ip", "netns", "exec", self.ns(node)]
        if uts and node in self.hosts:
            hostname = self.hosts[node].hostname
            script = 'hostname "$0" && exec "$@"'
            wrapped += ["unshare", "--uts", "--", "sh", "-c", script, hostname]
        return wrapped + list(argv)

    def run(
        self,
        node: str,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout_s: float = 10.0,
        uts: bool = True,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion in the node; raise LabError on failure if `check`."""
        result = subprocess.run(
            self.command(node, argv, uts=uts),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            input=input_text,
            check=False,
        )
        if check and result.returncode != 0:
            raise LabError(
                f"{node}: {' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def spawn(
        self,
        node: str,
        argv: Sequence[str],
        *,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stderr: int | IO[Any] | None = subprocess.DEVNULL,
        env: Mapping[str, str] | None = None,
        uts: bool = True,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process in the node; teardown stops it by PID."""
        proc = subprocess.Popen(
            self.command(node, argv, uts=uts),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout_s: float = 2.0) -> int | None:
        """SIGTERM then SIGKILL one spawned process by PID; reaps it; returns its status."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        if proc in self._procs:
            self._procs.remove(proc)
        return proc.returncode

    def _reap(self) -> None:
        for proc in list(self._procs):
            if proc.poll() is not None:
                self._procs.remove(proc)

    def socket(self, node: str, family: int, kind: int, proto: int = 0) -> socket.socket:
        """A socket created inside the node's namespace (it stays there when used here)."""
        return socket_in(NETNS_DIR / self.ns(node), family, kind, proto)

    # ---- faults ----

    @off_loop
    def set_link(self, node: str, ifname: str, up: bool) -> None:
        with self._netns(node) as ns:
            ns.link("set", index=_index(ns, ifname), state="up" if up else "down")

    @off_loop
    def crash(self, node: str) -> list[int]:
        """Power loss: SIGKILL every process in the node by PID, links down, and the
        addresses a reboot would not bring back (anything not in the topology) removed."""
        killed = kill_namespace(self.ns(node))
        self._reap()
        host = self.hosts[node]
        static = {(str(i.address.ip), i.ifname) for i in host.ifaces}
        with self._netns(node) as ns:
            for iface in host.ifaces:
                ns.link("set", index=_index(ns, iface.ifname), state="down")
            for addr in ns.get_addr(family=socket.AF_INET):
                ip = addr.get("IFA_ADDRESS")
                idx = addr["index"]
                names = [str(lk.get("IFLA_IFNAME")) for lk in ns.get_links(idx)]
                if not names or names[0] == "lo" or (ip, names[0]) in static:
                    continue
                ns.addr("del", index=idx, address=ip, prefixlen=addr["prefixlen"])
        return killed

    def restore(self, node: str) -> None:
        """Bring a crashed node's links back up (its processes must be started again)."""
        for iface in self.hosts[node].ifaces:
            self.set_link(node, iface.ifname, True)

    @off_loop
    def pin_neighbours(self, nodes: Sequence[str] | None = None) -> int:
        """Permanent ARP entries in `nodes` (default all) for every other host on the same
        bridge; returns how many were set.

        Real hosts each have their own neighbour table, but the kernel's IPv4 table is one
        for all namespaces, and gc_thresh3 (1,024 by default) caps its non-permanent
        entries: N hosts talking to all others on two networks need 2 N (N - 1), so from
        N = 24 resolution fails ("neighbor table overflow") and whole pairs of lab hosts
        cannot reach each other, as no pair of real hosts would. Permanent entries do not
        count towards that cap (nor need ARP). A link set down flushes its entries: pin a
        node again after `restore`.
        """
        macs = self._macs
        if not macs:  # read once: a veth keeps its MAC when its link goes down and up
            for host in self.hosts.values():
                with self._netns(host.node) as ns:
                    for iface in host.ifaces:
                        links = ns.get_links(ifname=iface.ifname)
                        if links:
                            macs[(host.node, iface.ifname)] = str(links[0].get("IFLA_ADDRESS"))
        pinned = 0
        for node in self.hosts if nodes is None else nodes:
            host = self.hosts[node]
            with self._netns(node) as ns:
                for iface in host.ifaces:
                    idx = _index(ns, iface.ifname)
                    for other in self.hosts.values():
                        if other.node == node:
                            continue
                        for theirs in other.ifaces:
                            mac = macs.get((other.node, theirs.ifname))
                            if theirs.bridge != iface.bridge or mac is None:
                                continue
                            ns.neigh(
                                "replace",
                                dst=str(theirs.address.ip),
                                lladdr=mac,
                                ifindex=idx,
                                state=NUD_PERMANENT,
                            )
                            pinned += 1
        return pinned

    def iptables(self, node: str, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run ``iptables -w ARGS`` in the node (e.g. ``-I INPUT -p icmp -j DROP``)."""
        return self.run(node, ["iptables", "-w", *args], uts=False)

    def nft_loss(
        self, node: str, ifname: str, percent: int | None, *, udp_port: int | None = None
    ) -> None:
        """Drop `percent`% of packets arriving on `ifname` (nft numgen), only UDP to
        `udp_port` if given; 0/None removes that rule."""
        if percent is not None and not 0 <= percent <= 100:
            raise ValueError(f"loss percent out of range: {percent}")
        rules = self._loss.setdefault(node, {})
        if percent:
            rules[(ifname, udp_port)] = percent
        else:
            rules.pop((ifname, udp_port), None)
        self.run(node, ["nft", "-f", "-"], uts=False, input_text=_loss_script(rules))

    def nft_loss_clear(self, node: str) -> None:
        """Remove every loss rule of `node`."""
        self._loss.pop(node, None)
        self.run(node, ["nft", "-f", "-"], uts=False, input_text=_loss_script({}))

    # ---- helpers ----

    def _netns(self, node: str) -> contextlib.closing[Any]:
        return contextlib.closing(NetNS(self.ns(node), flags=0))


def socket_in(
    netns_path: Path, family: int, kind: int, proto: int = 0, timeout_s: float = 5.0
) -> socket.socket:
    """A socket created inside the network namespace at `netns_path` by a short-lived thread
    that enters it: setns affects only the calling thread, which ends right after. No
    process is started (pyroute2's create_socket forks one per socket), so polling many
    namespaces stays cheap."""
    box: dict[str, Any] = {}

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(netns_path, os.O_RDONLY)
        except OSError as exc:
            os.close(own)
            box["error"] = exc
            return
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {netns_path} failed")
            try:
                box["sock"] = socket.socket(family, kind, proto)
            finally:
                libc.setns(own, _CLONE_NEWNET)  # best effort: the thread exits anyway
        except BaseException as exc:
            box["error"] = exc
        finally:
            os.close(target)
            os.close(own)

    thread = threading.Thread(target=work, name="gha-ns-socket", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "error" in box:
        raise LabError(f"no socket in {netns_path.name}: {box['error']}")
    if "sock" not in box:
        raise LabError(f"socket creation in {netns_path.name} did not finish within {timeout_s} s")
    sock: socket.socket = box["sock"]
    return sock


def _loss_script(rules: Mapping[tuple[str, int | None], int]) -> str:
    """An nft script replacing table inet gha_loss with one random-drop rule per
    (interface, UDP port or every packet)."""
    lines = ["table inet gha_loss", "delete table inet gha_loss"]
    if rules:
        body = "".join(
            f'    iifname "{ifname}"'
            + (f" udp dport {port}" if port is not None else "")
            + (" drop\n" if pct >= 100 else f" numgen random mod 100 < {pct} drop\n")
            for (ifname, port), pct in sorted(
                rules.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)
            )
        )
        lines.append(
            "table inet gha_loss {\n  chain input {\n"
            "    type filter hook input priority -150; policy accept;\n"
            f"{body}  }}\n}}"
        )
    return "\n".join(lines) + "\n"


def _index(ns: Any, ifname: str) -> int:
    found: Iterable[int] = ns.link_lookup(ifname=ifname)
    for idx in found:
        return int(idx)
    raise LabError(f"no interface {ifname}")


def _lo_up(ns: Any) -> None:
    ns.link("set", index=_index(ns, "lo"), state="up")
