"""N real agents in namespaces from one gossipha.toml: the cluster of the scale bench.

Nodes ``n0`` ... ``n<N-1>`` (hostname = node name), each with eth0 on the service network
(192.168.171.10+i/24) and eth1 on the heartbeat network (192.168.17.10+i/24), both
bridged in the lab's switch namespace; no ping node, no client. One resource group: the
VIP 192.168.171.250/24 on eth0 and a tiny resource.d script (`svc`: a marker file, no
daemon). Timings are the native defaults (no ``[timings]``). Voters: every node
(`VoterLayout.ALL`, ``voter = true`` on each) or the default rule (`VoterLayout.FIVE`:
the first 5 by name, the rest non-voting members).

Everything stays inside the lab's namespaces. Agents are stopped by PID (SIGKILL: a
graceful stop of N agents hands the group over N times and proves nothing here); the
lab's teardown kills whatever is left. Status reads go to each agent's /status on its own
namespace's 127.0.0.1:9694 through a socket made in that namespace by a short-lived
thread (setns), so polling N agents forks nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gossipha.lab.observe import http_get
from gossipha.lab.scenarios import child_env
from gossipha.lab.topology import HostSpec, IfaceSpec, Lab, LabError

SERVICE_BRIDGE = "br-svc"
HEARTBEAT_BRIDGE = "br-hb"
SVC_NET = ipaddress.IPv4Network("192.168.171.0/24")
HB_NET = ipaddress.IPv4Network("192.168.17.0/24")
FIRST_HOST = 10
MAX_NODES = 200  # .10 to .209; the VIP is .250
FLEET_VIP = ipaddress.IPv4Interface("192.168.171.250/24")
GROUP = "g"
CLUSTER = "fleet"
STATUS_PORT = 9694
DEFAULT_VOTERS = 5  # docs/configuration.md "Voters": the default rule's bound
STATUS_TIMEOUT_S = 2.0
STATUS_POLL_S = 0.1  # least pause between rounds of /status reads
MAX_STATUS_BYTES = 4 * 1024 * 1024
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")


class VoterLayout(enum.Enum):
    ALL = "all"  # voter = true on every node
    FIVE = "five"  # no voter keys: the default rule, at most 5 voters (first by name)


def node_name(i: int) -> str:
    return f"n{i}"


def fleet_hosts(n: int) -> tuple[HostSpec, ...]:
    """n hosts, each on the service (eth0) and heartbeat (eth1) networks."""
    if not 1 <= n <= MAX_NODES:
        raise ValueError(f"fleet size must be 1..{MAX_NODES}, got {n}")
    hosts: list[HostSpec] = []
    for i in range(n):
        svc = ipaddress.IPv4Interface(f"{SVC_NET.network_address + FIRST_HOST + i}/24")
        hb = ipaddress.IPv4Interface(f"{HB_NET.network_address + FIRST_HOST + i}/24")
        name = node_name(i)
        hosts.append(
            HostSpec(
                name,
                name,
                (IfaceSpec("eth0", svc, SERVICE_BRIDGE), IfaceSpec("eth1", hb, HEARTBEAT_BRIDGE)),
            )
        )
    return tuple(hosts)


def voter_count(n: int, layout: VoterLayout) -> int:
    """How many voters the configuration gives (docs/configuration.md, "Voters")."""
    if layout is VoterLayout.ALL:
        return n
    if n == 4:
        return 3
    return min(n, DEFAULT_VOTERS)


def render_fleet_toml(hosts: Sequence[HostSpec], layout: VoterLayout) -> str:
    """One gossipha.toml for every node: native default timings, two links, one group."""
    voter = "voter = true\n" if layout is VoterLayout.ALL else ""
    nodes = "\n".join(
        f"[nodes.{h.hostname}]\n{voter}"
        f'addresses = {{ hb = "{h.iface("eth1").address.ip}", '
        f'svc = "{h.iface("eth0").address.ip}" }}\n'
        for h in hosts
    )
    return f"""# gossipha scale lab: {len(hosts)} nodes, voters {layout.value}
# (written by gossipha.lab.fleet; every timing is a native default)

[cluster]
name = "{CLUSTER}"
auto_failback = false

[auth]
keyfile = "authkeys"

{nodes}
[[link]]
name = "hb"
kind = "ucast"
interface = "eth1"
port = 694

[[link]]
name = "svc"
kind = "ucast"
interface = "eth0"
port = 694

[[group]]
name = "{GROUP}"
resources = [
  {{ vip = "{FLEET_VIP}", interface = "eth0", label = "eth0:0" }},
  {{ service = "svc" }},    # resource.d/svc beside this file
]
"""


def render_service_script(root: Path) -> str:
    """resource.d/svc: start/stop/status of a marker file per node (by `uname -n`)."""
    return f"""#!/bin/sh
# gossipha scale lab: a service that runs nothing (written by gossipha.lab.fleet)
for action; do :; done  # the action comes last
mark="{root}/$(uname -n).running"
case "$action" in
    start) : > "$mark" ;;
    stop) rm -f "$mark" ;;
    status) if [ -e "$mark" ]; then echo running; else echo stopped; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
exit 0
"""


def write_fleet(dest: Path, hosts: Sequence[HostSpec], layout: VoterLayout) -> Path:
    """gossipha.toml, authkeys (``gossipha keygen``) and resource.d/svc; returns the config."""
    dest.mkdir(parents=True, exist_ok=True)
    config = dest / "gossipha.toml"
    config.write_text(render_fleet_toml(hosts, layout))
    keyfile = dest / "authkeys"
    if not keyfile.exists():
        subprocess.run(
            [sys.executable, "-m", "gossipha", "keygen", "-o", str(keyfile)],
            env=child_env(),
            capture_output=True,
            check=True,
            timeout=60.0,
        )
    script = dest / "resource.d" / "svc"
    script.parent.mkdir(exist_ok=True)
    marks = dest / "marks"
    marks.mkdir(exist_ok=True)
    script.write_text(render_service_script(marks))
    script.chmod(0o755)
    return config


# ---- sockets in a namespace without forking ----


def http_get_json(sock: socket.socket, host: str, port: int, path: str, timeout_s: float) -> Any:
    """GET `path` on an unconnected TCP socket (closed here); the JSON body, or None on any
    error, non-200 answer or timeout."""
    body = http_get(host, port, path, timeout_s, sock=sock, max_bytes=MAX_STATUS_BYTES)
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


# ---- the fleet ----


@dataclass(frozen=True, slots=True)
class Agreement:
    """Every agent named `holder` and only it held the VIP (`Fleet.wait_agreement`)."""

    holder: str
    at_s: float  # time.monotonic() at the end of the confirming round
    round_s: float  # that round's duration (the resolution of `at_s`)
    multi_holder_passes: int  # netlink passes meanwhile that saw 2+ nodes holding
    last_node: str  # the last agent to name the holder ("" if all did at once)


@dataclass(frozen=True, slots=True)
class StatusView:
    """What one agent's /status says about the group."""

    node: str
    holder: str | None
    epoch: int
    alive_peers: int  # peers it sees alive (or warn)


def status_view(node: str, doc: Mapping[str, Any]) -> StatusView:
    group = next((g for g in doc.get("groups", ()) if g.get("name") == GROUP), None)
    alive = sum(1 for n in doc.get("nodes", ()) if n.get("state") in ("alive", "warn"))
    if group is None:
        return StatusView(node, None, 0, alive)
    return StatusView(node, group.get("holder"), int(group.get("epoch") or 0), alive)


class Fleet:
    """N agents of one layout in a built lab (hosts from `fleet_hosts`)."""

    def __init__(
        self,
        lab: Lab,
        layout: VoterLayout,
        *,
        memlock_unlimited: bool = False,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.lab = lab
        self.layout = layout
        self.nodes = tuple(sorted(lab.hosts, key=lambda n: int(n[1:])))
        self.memlock_unlimited = memlock_unlimited
        self.say = say or (lambda _msg: None)
        self.root = lab.workdir / f"fleet-{layout.value}"
        self.config_path = write_fleet(self.root, [lab.hosts[n] for n in self.nodes], layout)
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._handles: dict[str, Any] = {}

    # ---- agents ----

    def agent_log(self, node: str) -> Path:
        return self.root / node / "agent.log"

    def agent_argv(self, node: str) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "gossipha",
            "agent",
            "--config",
            str(self.config_path),
            "--node-name",
            node,
            "--admin-socket",
            str(self.root / node / "admin.sock"),
        ]
        if self.memlock_unlimited:
            # As deploy/systemd's LimitMEMLOCK=infinity: the agent then locks its memory.
            argv = ["prlimit", "--memlock=unlimited:unlimited", "--", *argv]
        return argv

    def start_agent(self, node: str) -> subprocess.Popen[bytes]:
        if self.alive(node):
            raise LabError(f"{node}: agent already running (pid {self.agents[node].pid})")
        (self.root / node).mkdir(parents=True, exist_ok=True)
        old = self._logs.pop(node, None)
        if old is not None:
            old.close()
        log = self.agent_log(node).open("ab")
        self._logs[node] = log
        env = child_env()
        env["GOSSIPHA_STATE_DIR"] = str(self.root / node / "state")
        proc = self.lab.spawn(
            node, self.agent_argv(node), stdout=log, stderr=subprocess.STDOUT, env=env
        )
        self.agents[node] = proc
        return proc

    def start_all(self) -> float:
        """Every agent, as fast as they can be spawned; returns time.monotonic() after."""
        for node in self.nodes:
            self.start_agent(node)
        return time.monotonic()

    def alive(self, node: str) -> bool:
        proc = self.agents.get(node)
        return proc is not None and proc.poll() is None

    def agent_pid(self, node: str) -> int | None:
        """The agent's Python process (the spawn wrappers exec into it; checked)."""
        proc = self.agents.get(node)
        if proc is None or proc.poll() is not None:
            return None
        try:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        except OSError:
            return None
        return proc.pid if b"gossipha" in cmdline and b"prlimit" not in cmdline else None

    def kill_agent(self, node: str) -> None:
        proc = self.agents.get(node)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5.0)
        if proc is not None:
            self.lab.stop(proc)  # reaps and forgets it

    def crash(self, node: str) -> None:
        """Power loss of the node (Lab.crash); its agent is gone."""
        self.lab.crash(node)
        proc = self.agents.get(node)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)

    def restore(self, node: str) -> None:
        """Links up again and the agent restarted (a reboot)."""
        self.lab.restore(node)
        self.lab.pin_neighbours([node])  # its links went down: their entries were flushed
        self.start_agent(node)

    def close(self) -> None:
        """Kill every agent by PID, close netlink handles and logs (idempotent)."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self.kill_agent(node)
        for handle in self._handles.values():
            with contextlib.suppress(Exception):
                handle.close()
        self._handles.clear()
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    # ---- what is true right now ----

    def _handle(self, node: str) -> Any:
        handle = self._handles.get(node)
        if handle is None:
            from pyroute2 import NetNS

            handle = NetNS(self.lab.ns(node), flags=0, groups=0)
            self._handles[node] = handle
        return handle

    def open_handles(self) -> None:
        """Netlink handles for every node now, so the first `holders()` is not slow; and
        static ARP entries between the nodes (`Lab.pin_neighbours`: without them N >= 24
        overflows the kernel's one neighbour table and pairs of nodes cannot talk)."""
        self.lab.pin_neighbours()
        for node in self.nodes:
            self._handle(node)

    def holds(self, node: str) -> bool:
        """Is the VIP on an up interface of `node`?"""
        ns = self._handle(node)
        for msg in ns.get_addr(family=socket.AF_INET):
            if msg.get("IFA_ADDRESS") != str(FLEET_VIP.ip):
                continue
            links = ns.get_links(msg["index"])
            if links and links[0]["flags"] & 0x1:  # IFF_UP
                return True
        return False

    def holders(self, nodes: Sequence[str] | None = None) -> tuple[str, ...]:
        """One pass over `nodes` (default all), one netlink dump each."""
        return tuple(n for n in (self.nodes if nodes is None else nodes) if self.holds(n))

    def status(self, node: str, timeout_s: float = STATUS_TIMEOUT_S) -> StatusView | None:
        """The agent's view of the group from its /status, or None if it does not answer."""
        sock = self.lab.socket(node, socket.AF_INET, socket.SOCK_STREAM)
        doc = http_get_json(sock, "127.0.0.1", STATUS_PORT, "/status", timeout_s)
        if not isinstance(doc, dict):
            return None
        return status_view(node, doc)

    def statuses(self, nodes: Sequence[str] | None = None) -> dict[str, StatusView | None]:
        return {n: self.status(n) for n in (self.nodes if nodes is None else nodes)}

    def wait_agreement(self, bound_s: float, stop: Callable[[], bool] = lambda: False) -> Agreement:
        """Until every agent names one holder and only it holds the VIP; TimeoutError
        after `bound_s` (or when `stop()`).

        Light on the agents, whose start-up it must not slow: each round reads only the
        agents that did not yet name the holder the VIP is on (rounds at least 20 ms per
        node apart); once all have, one round reads them all again to confirm.
        """
        deadline = time.monotonic() + bound_s
        pause_s = max(STATUS_POLL_S, 0.02 * len(self.nodes))
        multi = 0
        named: dict[str, str | None] = {}
        last = ""
        while True:
            held = self.holders()
            multi += len(held) > 1
            if len(held) == 1:
                pending = [n for n in self.nodes if named.get(n) != held[0]]
                began = time.monotonic()
                views = self.statuses(pending or self.nodes)
                ended = time.monotonic()
                for n, view in views.items():
                    named[n] = view.holder if view is not None else None
                    if n in pending and named[n] == held[0]:
                        last = n
                agreed = not pending and all(named[n] == held[0] for n in self.nodes)
                if agreed and self.holders() == held:
                    return Agreement(held[0], ended, ended - began, multi, last)
            if time.monotonic() > deadline or stop():
                names = sorted({str(x) for x in named.values()})
                raise TimeoutError(
                    f"no agreement within {bound_s:.0f} s (holders named {names}, VIP on {held})"
                )
            time.sleep(pause_s)

    def log_events(self, node: str, message_prefix: str, after_wall: float) -> list[float]:
        """Epoch times of the agent's log lines starting with `message_prefix`, from
        `after_wall` on (the log's millisecond timestamps)."""
        found: list[float] = []
        try:
            lines = self.agent_log(node).read_text(errors="replace").splitlines()
        except OSError:
            return found
        for line in lines[-20000:]:  # bounded
            m = _LOG_LINE.match(line)
            if m is None or not m.group(2).startswith(message_prefix):
                continue
            wall = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if wall >= after_wall - 0.002:
                found.append(wall)
        return found

    def log_tail(self, node: str, lines: int = 10) -> str:
        try:
            text = self.agent_log(node).read_text(errors="replace")
        except OSError:
            return "(no agent log)"
        return "\n".join(text.splitlines()[-lines:])
