"""The tutorial's failure tests (and a few harsher ones) run against real agents in the lab.

A `Cluster` puts the tutorial's /etc/ha.d on master and slave (timings from a `Profile`,
logs in the lab's workdir, a resource.d/nginx script driving the lab's nginx) and runs
``gossipha agent`` in each namespace. A `Scenario` is a list of steps against it; the runner
watches every scenario with the lab's client (one request per 20 ms to the VIP) and holder
sampler (both nodes' addresses every 20 ms) and reports the longest outage, the instants when
two nodes held the VIP, and who served before and after. Each step asserts who serves.

Every wait is bounded by a deadline derived from the profile; every fault is undone in a
`finally`; after a scenario the runner brings the cluster back to its baseline (both agents
running, master serving), restarting it from scratch if that fails.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import IO, Any

from gossipha.config.durations import parse_duration
from gossipha.config.model import DEFAULT_PORT
from gossipha.config.native import NATIVE_DEFAULTS
from gossipha.lab.nginx import TUTORIAL_PAGES, prepare
from gossipha.lab.observe import (
    Client,
    ClientSample,
    HolderSample,
    HolderSampler,
    Summary,
    fetch,
    read_client_log,
    summarize,
)
from gossipha.lab.topology import TUTORIAL_VIP, Lab, LabError

NODES = ("master", "slave")
HOSTNAMES = {"master": "masternginx", "slave": "slavenginx"}
PEER = {"master": "slave", "slave": "master"}
VIP = str(TUTORIAL_VIP.ip)
VIP_LABEL = "eth0:0"
# The tutorial's /etc/ha.d per node is package data (gossipha/examples/tutorial), not read
# from a checkout, so an installed `gossipha demo` has it; docs/examples/tutorial holds the
# same bytes for readers (tests/unit/test_packaging.py keeps the two equal).
TUTORIAL_FILES = ("ha.cf", "authkeys", "haresources")
# The core's defaults for what ha.cf cannot set (config/model.py Timings).
LEASE_S = 2.0
FAILBACK_DELAY_S = 5.0
# Poll period of the step checks (each poll is one `ip addr` and one HTTP request).
POLL_S = 0.05
# A scenario that must not interrupt service may still lose one client request to
# scheduling noise on a loaded CI machine; anything longer is an outage.
NO_OUTAGE_S = 0.2
# An outage counts against a step when its last answer came at most this long before the
# step started (the client's period plus scheduling noise).
OUTAGE_SLACK_S = 0.1
# How long the client may take to get its first answer before a scenario's fault.
CLIENT_START_S = 10.0
# How long a graceful stop may take: the agent exits once its successor holds.
STOP_TIMEOUT_S = 20.0


class StepFailed(AssertionError):
    """A step's expectation did not hold within its bound (the message says what was seen)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """ha.cf timings for a run; the bounds every wait uses derive from them.

    These decide when a step gives up waiting, with room for a slow run to finish and
    report; they are not the outages the tests assert (gossipha/lab/claims.py).
    """

    name: str
    keepalive: str
    warntime: str
    deadtime: str
    initdead: str
    loss_s: float = 20.0  # how long the heartbeat-loss scenarios keep the loss on

    @property
    def deadtime_s(self) -> float:
        return parse_duration(self.deadtime)

    @property
    def initdead_s(self) -> float:
        return parse_duration(self.initdead)

    @property
    def keepalive_s(self) -> float:
        return parse_duration(self.keepalive)

    @property
    def failover_bound_s(self) -> float:
        """Peer (or ping node) declared dead, old promises run out, a probe, a start."""
        return self.deadtime_s + 3 * LEASE_S + 5.0

    @property
    def failback_bound_s(self) -> float:
        """A restarted preferred node: start-up grace, failback delay, a handover."""
        return self.initdead_s + FAILBACK_DELAY_S + self.failover_bound_s

    @property
    def startup_bound_s(self) -> float:
        return self.initdead_s + 3 * LEASE_S + 10.0

    @property
    def quiet_s(self) -> float:
        """How long to watch that nothing moves: past every timeout that could move it."""
        return self.deadtime_s + 3 * LEASE_S + 2.0


TUTORIAL = Profile("tutorial", keepalive="2", warntime="10", deadtime="30", initdead="60")
FAST = Profile("fast", keepalive="200ms", warntime="500ms", deadtime="2", initdead="3")
# gossipha.toml with no [timings]: the native defaults (config/native.py NATIVE_DEFAULTS).
# These strings only size the runner's waits; the agents read nothing from them.
NATIVE = Profile(
    "native",
    keepalive=f"{NATIVE_DEFAULTS.keepalive_s}s",
    warntime=f"{NATIVE_DEFAULTS.warntime_s}s",
    deadtime=f"{NATIVE_DEFAULTS.deadtime_s}s",
    initdead=f"{NATIVE_DEFAULTS.initdead_s}s",
)
PROFILES = {p.name: p for p in (TUTORIAL, FAST, NATIVE)}


# ---- configuration on disk ----


def render_hacf(text: str, node: str, profile: Profile, node_dir: Path, second_link: bool) -> str:
    """The tutorial's ha.cf with the profile's timings, logs under `node_dir`, and optionally
    a second heartbeat link over eth0 (to the peer's service address)."""
    from gossipha.lab.topology import TUTORIAL_HOSTS

    peer_eth0 = next(h for h in TUTORIAL_HOSTS if h.node == PEER[node]).iface("eth0").address.ip
    values = {
        "keepalive": profile.keepalive,
        "warntime": profile.warntime,
        "deadtime": profile.deadtime,
        "initdead": profile.initdead,
        "logfile": str(node_dir / "ha-log"),
        "debugfile": str(node_dir / "ha-debug"),
    }
    out: list[str] = [f"# gossipha lab: the tutorial's ha.cf, profile {profile.name}"]
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] in values:
            out.append(f"{words[0]} {values[words[0]]}")
            continue
        out.append(line)
        if second_link and words[:2] == ["ucast", "eth1"]:
            out.append(f"ucast eth0 {peer_eth0}")
    return "\n".join(out) + "\n"


NGINX_ACTIONS = """# alive: exists and not a zombie (a container's PID 1 may never reap the daemon)
alive() {
    state=$(sed -n 's/^.*) \\(.\\).*/\\1/p' "/proc/$1/stat" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}
pid=$(cat "$root/nginx.pid" 2>/dev/null)
case "$action" in
    start)
        [ -n "$pid" ] && alive "$pid" && exit 0
        exec nginx -p "$root" -c "$root/nginx.conf" -e "$root/error.log" ;;
    stop)
        [ -n "$pid" ] && alive "$pid" || exit 0
        kill -TERM "$pid" 2>/dev/null || exit 0
        for _ in $(seq 250); do alive "$pid" || exit 0; sleep 0.02; done
        kill -KILL "$pid" 2>/dev/null; exit 0 ;;
    status)
        if [ -n "$pid" ] && alive "$pid"; then echo running; else echo stopped; fi
        exit 0 ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
"""


def render_nginx_script(node: str, nginx_root: Path) -> str:
    """resource.d/nginx: Heartbeat's `nginx start|stop|status` for the lab's nginx, in plain
    sh like a distribution's init script (a Python start-up here would add a second of
    outage that no real deployment has)."""
    return f"""#!/bin/sh
# gossipha lab: the tutorial's nginx on {node} (written by gossipha.lab.scenarios)
for action; do :; done  # Heartbeat passes the action last
root="{nginx_root}"
{NGINX_ACTIONS}"""


def tutorial_source(node: str) -> Traversable:
    """The tutorial's files for `node` as installed with the package; a broken install
    (files left out of the wheel) is a LabError naming them, not a traceback mid-run."""
    source = files("gossipha") / "examples" / "tutorial" / node
    missing = [name for name in TUTORIAL_FILES if not (source / name).is_file()]
    if missing:
        names = ", ".join(f"gossipha/examples/tutorial/{node}/{name}" for name in missing)
        raise LabError(f"the tutorial's files are missing from the gossipha package: {names}")
    return source


def write_ha_d(
    node: str, dest: Path, profile: Profile, *, second_link: bool = False
) -> tuple[Path, Path]:
    """/etc/ha.d for `node` under `dest`; returns (its directory, its nginx root)."""
    source = tutorial_source(node)
    ha_d = dest / node / "ha.d"
    nginx_root = dest / node / "nginx"
    ha_d.mkdir(parents=True, exist_ok=True)
    nginx_root.mkdir(parents=True, exist_ok=True)
    hacf = render_hacf(
        (source / "ha.cf").read_text(encoding="utf-8"), node, profile, dest / node, second_link
    )
    (ha_d / "ha.cf").write_text(hacf, encoding="utf-8")
    for name in ("authkeys", "haresources"):
        (ha_d / name).write_bytes((source / name).read_bytes())
    (ha_d / "authkeys").chmod(0o600)
    prepare(nginx_root, TUTORIAL_PAGES[node], daemon=True)
    script = ha_d / "resource.d" / "nginx"
    script.parent.mkdir(exist_ok=True)
    script.write_text(render_nginx_script(node, nginx_root))
    script.chmod(0o755)
    return ha_d, nginx_root


def child_env() -> dict[str, str]:
    """Our environment with this package importable (the agent runs `python -m gossipha`)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# ---- the cluster ----


class Cluster:
    """Two agents in a built lab, their configuration, and probes of who serves."""

    def __init__(
        self,
        lab: Lab,
        profile: Profile,
        *,
        say: Callable[[str], None] | None = None,
        root: Path | None = None,
    ):
        self.lab = lab
        self.profile = profile
        self.say = say or (lambda _msg: None)
        self.root = root or lab.workdir / f"cluster-{profile.name}"
        self.second_link = False
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self.ha_d: dict[str, Path] = {}
        self.nginx_root: dict[str, Path] = {}
        self.configure(second_link=False)

    # ---- configuration and agents ----

    def configure(self, *, second_link: bool) -> None:
        for node in NODES:
            self.ha_d[node], self.nginx_root[node] = write_ha_d(
                node, self.root, self.profile, second_link=second_link
            )
        self.second_link = second_link

    def agent_args(self, node: str) -> list[str]:
        """``gossipha agent`` options for `node` (its configuration, its admin socket)."""
        return [
            "--config",
            str(self.ha_d[node]),
            "--node-name",
            HOSTNAMES[node],
            # Both agents share one filesystem: each its own admin socket.
            "--admin-socket",
            str(self.root / node / "admin.sock"),
        ]

    def nginx_script(self, node: str) -> Path:
        """The script the agent drives nginx with (``start|stop|status``)."""
        return self.ha_d[node] / "resource.d" / "nginx"

    def agent_log(self, node: str) -> Path:
        return self.root / node / "agent.log"

    def agent_alive(self, node: str) -> bool:
        proc = self.agents.get(node)
        return proc is not None and proc.poll() is None

    def start_agent(self, node: str) -> subprocess.Popen[bytes]:
        """``gossipha agent --config DIR --node-name NAME`` in the node's namespace."""
        if self.agent_alive(node):
            raise LabError(f"{node}: agent already running (pid {self.agents[node].pid})")
        old = self._logs.pop(node, None)
        if old is not None:
            old.close()
        log = self.agent_log(node).open("ab")
        log.write(f"---- gossipha lab: agent started at {time.monotonic():.3f}\n".encode())
        log.flush()
        self._logs[node] = log
        argv = [sys.executable, "-m", "gossipha", "agent", *self.agent_args(node)]
        env = child_env()
        # Incarnation numbers etc. per node, in the lab (both agents share one filesystem).
        env["GOSSIPHA_STATE_DIR"] = str(self.root / node / "state")
        proc = self.lab.spawn(node, argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.agents[node] = proc
        return proc

    def stop_agent(self, node: str, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (Heartbeat's `service heartbeat stop`): releases and exits; SIGKILL after
        the bound. Returns the exit status."""
        proc = self.agents.get(node)
        if proc is None:
            return None
        return self.lab.stop(proc, timeout_s=timeout_s)

    def signal_agent(self, node: str, sig: signal.Signals) -> None:
        proc = self.agents.get(node)
        if proc is None or proc.poll() is not None:
            raise LabError(f"{node}: no running agent to send {sig.name}")
        os.kill(proc.pid, sig)

    def kill_agent(self, node: str) -> None:
        """kill -9 of the agent alone: what it started (VIP, nginx) stays."""
        self.signal_agent(node, signal.SIGKILL)
        self.agents[node].wait(timeout=5.0)

    def _stop_order(self) -> list[str]:
        """Non-holders first: a stopping holder waits to hand over to a live peer."""
        held = self.holders()
        return sorted(NODES, key=lambda n: n in held)

    def close(self) -> None:
        """Stop both agents (bounded) and close their logs; the lab removes the rest."""
        for node in NODES:
            with contextlib.suppress(Exception):
                self.signal_agent(node, signal.SIGCONT)
        for node in self._stop_order():
            with contextlib.suppress(Exception):
                self.stop_agent(node, timeout_s=5.0)
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def log_tail(self, node: str, lines: int = 15) -> str:
        try:
            text = self.agent_log(node).read_text(errors="replace")
        except OSError:
            return "(no agent log)"
        return "\n".join(text.splitlines()[-lines:])

    # ---- what is true right now ----

    def vip_line(self, node: str) -> str:
        """`ip -o addr` line of the VIP on an up interface of `node` ('' when absent)."""
        result = self.lab.run(
            node,
            ["ip", "-o", "-4", "addr", "show", "up", "to", f"{VIP}/32"],
            uts=False,
            check=False,
            timeout_s=5.0,
        )
        return result.stdout.strip()

    def holders(self) -> tuple[str, ...]:
        return tuple(n for n in NODES if self.vip_line(n))

    def nginx_pid(self, node: str) -> int | None:
        """The lab nginx master of `node`, if its pid file names a live nginx."""
        try:
            pid = int((self.nginx_root[node] / "nginx.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"nginx" in cmdline else None

    def served_by(self) -> str | None:
        return fetch(self.lab, "client", VIP, timeout_s=0.3)

    def state(self) -> str:
        held = self.holders()
        nginx = [n for n in NODES if self.nginx_pid(n) is not None]
        return (
            f"VIP on {'+'.join(held) or 'nobody'}, nginx on {'+'.join(nginx) or 'nobody'}, "
            f"client sees {self.served_by() or 'nothing'}, agents alive: "
            f"{'+'.join(n for n in NODES if self.agent_alive(n)) or 'none'}"
        )

    # ---- waits ----

    def wait_serving(self, node: str, bound_s: float, what: str) -> float:
        """Until `node` alone holds the VIP and answers the client; seconds taken."""
        start = time.monotonic()
        deadline = start + bound_s
        seen = ""
        while True:
            held = self.holders()
            who = self.served_by()
            if held == (node,) and who == node:
                return time.monotonic() - start
            seen = f"VIP on {held or 'nobody'}, client saw {who}"
            if time.monotonic() > deadline:
                raise StepFailed(f"{what}: {node} not serving after {bound_s:.1f}s ({seen})")
            time.sleep(POLL_S)

    def hold(self, node: str, duration_s: float, what: str) -> None:
        """For `duration_s`, `node` alone holds the VIP and answers, at every poll."""
        start = time.monotonic()
        while time.monotonic() - start < duration_s:
            held = self.holders()
            who = self.served_by()
            if held != (node,) or who != node:
                raise StepFailed(
                    f"{what}: at +{time.monotonic() - start:.2f}s VIP on "
                    f"{held or 'nobody'}, client saw {who} (expected {node} throughout)"
                )
            time.sleep(POLL_S)

    # ---- baseline ----

    @property
    def startup_bound_s(self) -> float:
        """How long `start` waits for master to serve (the profile's bound)."""
        return self.profile.startup_bound_s

    def start(self) -> float:
        """The tutorial's start-up: master first, then slave; until master serves."""
        self.start_agent("master")
        time.sleep(0.5)
        self.start_agent("slave")
        return self.wait_serving("master", self.startup_bound_s, "start-up")

    def stop_all(self) -> None:
        """Both agents stopped; any VIP or nginx they left behind removed by hand."""
        for node in NODES:
            with contextlib.suppress(Exception):
                self.signal_agent(node, signal.SIGCONT)
        for node in self._stop_order():
            self.stop_agent(node, timeout_s=5.0)
        for node in NODES:
            if self.vip_line(node):
                self.lab.run(
                    node,
                    ["ip", "addr", "del", f"{VIP}/{TUTORIAL_VIP.network.prefixlen}", "dev", "eth0"],
                    uts=False,
                    check=False,
                )
            script = self.nginx_script(node)
            # With the node's hostname: the native profile's one script dispatches on it.
            self.lab.run(node, [str(script), "stop"], check=False, timeout_s=15.0)

    def heal(self) -> None:
        """Undo every fault a scenario may have left (idempotent)."""
        for node in NODES:
            with contextlib.suppress(Exception):
                self.signal_agent(node, signal.SIGCONT)
            self.lab.restore(node)
            self.lab.iptables(node, ["-F", "INPUT"])
            self.lab.nft_loss_clear(node)
        self.lab.restore("ping")

    def ensure_baseline(self, *, second_link: bool = False) -> None:
        """Both agents running with the wanted configuration and master serving; a full
        restart of the cluster when anything else fails."""
        self.heal()
        if second_link != self.second_link or not any(self.agent_alive(n) for n in NODES):
            self.stop_all()
            self.configure(second_link=second_link)
            self.start()
            return
        for node in NODES:
            if not self.agent_alive(node):
                self.start_agent(node)
        try:
            self.wait_serving("master", self.profile.failback_bound_s, "baseline")
        except StepFailed as exc:
            self.say(f"  baseline not reached ({exc}); restarting the cluster")
            self.stop_all()
            self.start()


# ---- the native profile: one gossipha.toml for both nodes ----


def render_native_toml() -> str:
    """docs/examples/native/gossipha.toml for the lab: the tutorial's cluster, no [timings]
    (native defaults), the authkeys and resource.d/nginx beside it, no logfile or hooks (the
    agents log to stderr, captured per node; both share one filesystem)."""
    from gossipha.lab.topology import TUTORIAL_HOSTS

    hosts = {h.node: h for h in TUTORIAL_HOSTS}
    ping = hosts["ping"].iface("eth0").address.ip
    nodes = "\n".join(
        f"[nodes.{HOSTNAMES[n]}]\n"
        f'addresses = {{ hb = "{hosts[n].iface("eth1").address.ip}", '
        f'svc = "{hosts[n].iface("eth0").address.ip}" }}\n'
        for n in NODES
    )
    return f"""# gossipha lab, profile native: the same file on masternginx and slavenginx
# (docs/examples/native/gossipha.toml; every timing is a native default).

[cluster]
name = "web"
auto_failback = true
ping_failover = true

[auth]
keyfile = "authkeys"      # made by `gossipha keygen`

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

[[ping]]
name = "gw"
addresses = ["{ping}"]
interface = "eth1"

[[group]]
name = "web"
preferred = "{HOSTNAMES["master"]}"
resources = [
  {{ vip = "{TUTORIAL_VIP}", interface = "eth0", label = "{VIP_LABEL}" }},
  {{ service = "nginx" }},    # found as resource.d/nginx beside this file
]

[[group.check]]
name = "nginx-http"
kind = "http"
url = "http://127.0.0.1/"
expect_status = 200
interval = "1s"
timeout = "1s"
"""


def render_native_nginx_script(nginx_roots: dict[str, Path]) -> str:
    """resource.d/nginx shared by both nodes (one filesystem): it picks the node's nginx
    by `uname -n`, as the same script path on two real hosts would find its own nginx."""
    cases = "\n".join(f'    {HOSTNAMES[n]}) root="{nginx_roots[n]}" ;;' for n in NODES)
    return f"""#!/bin/sh
# gossipha lab: the tutorial's nginx, profile native (written by gossipha.lab.scenarios)
for action; do :; done  # the action comes last
case "$(uname -n)" in
{cases}
    *) echo "nginx: unknown node $(uname -n)" >&2; exit 2 ;;
esac
{NGINX_ACTIONS}"""


def write_native(dest: Path) -> tuple[Path, dict[str, Path]]:
    """gossipha.toml, authkeys (``gossipha keygen``) and resource.d/nginx under `dest`;
    returns (the config path, each node's nginx root)."""
    dest.mkdir(parents=True, exist_ok=True)
    roots = {n: dest / n / "nginx" for n in NODES}
    for node, root in roots.items():
        root.mkdir(parents=True, exist_ok=True)
        prepare(root, TUTORIAL_PAGES[node], daemon=True)
    config = dest / "gossipha.toml"
    config.write_text(render_native_toml())
    keyfile = dest / "authkeys"
    if not keyfile.exists():
        subprocess.run(
            [sys.executable, "-m", "gossipha", "keygen", "-o", str(keyfile)],
            env=child_env(),
            capture_output=True,
            check=True,
            timeout=30.0,
        )
    script = dest / "resource.d" / "nginx"
    script.parent.mkdir(exist_ok=True)
    script.write_text(render_native_nginx_script(roots))
    script.chmod(0o755)
    return config, roots


class NativeCluster(Cluster):
    """The same two agents run from one native gossipha.toml at native default timings.

    The file always has both links (eth1 and eth0), as docs/examples/native does:
    `second_link` is recorded but changes nothing. Agents find themselves by `uname -n`.
    """

    def __init__(self, lab: Lab, *, say: Callable[[str], None] | None = None):
        self.config_path = lab.workdir / "cluster-native" / "gossipha.toml"
        super().__init__(lab, NATIVE, say=say)

    def configure(self, *, second_link: bool) -> None:
        self.config_path, self.nginx_root = write_native(self.root)
        self.second_link = second_link

    def agent_args(self, node: str) -> list[str]:
        return [
            "--config",
            str(self.config_path),
            "--admin-socket",
            str(self.root / node / "admin.sock"),
        ]

    def nginx_script(self, node: str) -> Path:
        return self.root / "resource.d" / "nginx"


def make_cluster(
    lab: Lab, profile: Profile, *, say: Callable[[str], None] | None = None
) -> Cluster:
    """A cluster of the profile's kind: ha.d for fast/tutorial, gossipha.toml for native."""
    if profile is NATIVE:
        return NativeCluster(lab, say=say)
    return Cluster(lab, profile, say=say)


# ---- scenarios ----


@dataclass(slots=True)
class StepResult:
    name: str
    ok: bool
    elapsed_s: float
    detail: str = ""
    started_s: float = 0.0  # time.monotonic() at the step's start (the clients' clock)


class Run:
    """What a scenario's body works with: the cluster and a step recorder."""

    def __init__(self, cluster: Cluster, say: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.profile = cluster.profile
        self.lab = cluster.lab
        self.say = say
        self.steps: list[StepResult] = []
        self.started_s = time.monotonic()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.say(f"  step: {name}")
        start = time.monotonic()
        try:
            yield
        except StepFailed as exc:
            self.steps.append(
                StepResult(name, False, time.monotonic() - start, str(exc), started_s=start)
            )
            self.say(f"  FAILED: {exc}")
            raise
        elapsed = time.monotonic() - start
        self.steps.append(StepResult(name, True, elapsed, started_s=start))
        self.say(f"  ok ({elapsed:.2f}s): {name}")


Body = Callable[[Run], None]


class Start(enum.Enum):
    """What a scenario needs before it starts."""

    BASELINE = "baseline"  # cluster running, master serving
    BASELINE_TWO_LINKS = "baseline-two-links"  # the same, with a second heartbeat link on eth0
    STOPPED = "stopped"  # no agent running, no VIP, no nginx


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    body: Body
    start: Start = Start.BASELINE
    # Longest client outage the runner's verdict allows (None: reported, not judged). For
    # failovers it is the step's wait bound, a sanity check that also judges the peers; the
    # tests assert each step against gossipha/lab/claims.py, about 2x the measured median.
    max_outage_s: Callable[[Profile], float] | None = None
    # Why it cannot be run yet (reported as skipped, never as a pass).
    pending: str | None = None


def _startup(run: Run) -> None:
    c = run.cluster
    with run.step("start master's agent, then slave's: VIP on master's eth0:0"):
        c.start_agent("master")
        time.sleep(0.5)
        c.start_agent("slave")
        c.wait_serving("master", run.profile.startup_bound_s, "start-up")
    with run.step("master has eth0:0 and nginx; slave has neither"):
        line = c.vip_line("master")
        if VIP_LABEL not in line:
            raise StepFailed(f"VIP on master without label {VIP_LABEL}: {line!r}")
        if c.nginx_pid("master") is None:
            raise StepFailed("nginx not running on master")
        if c.vip_line("slave") or c.nginx_pid("slave") is not None:
            raise StepFailed(f"slave runs something: {c.state()}")
        c.hold("master", 1.0, "after start-up")


def _ping_lost(run: Run) -> None:
    c, lab = run.cluster, run.lab
    rule = ["INPUT", "-p", "icmp", "-j", "DROP"]
    try:
        with run.step("iptables -I INPUT -p icmp -j DROP on master: slave serves"):
            lab.iptables("master", ["-I", *rule])
            c.wait_serving("slave", run.profile.failover_bound_s, "ping node lost")
        with run.step("iptables -D INPUT -p icmp -j DROP: back to master (auto_failback)"):
            lab.iptables("master", ["-D", *rule])
            c.wait_serving("master", run.profile.failback_bound_s, "ping node back")
    finally:
        lab.run("master", ["iptables", "-w", "-D", *rule], uts=False, check=False)


def _graceful_stop(run: Run) -> None:
    c = run.cluster
    with run.step("stop master's agent (SIGTERM): slave serves"):
        c.signal_agent("master", signal.SIGTERM)
        c.wait_serving("slave", run.profile.failover_bound_s, "master stopped")
        code = c.stop_agent("master")
        if code not in (0, -signal.SIGTERM):
            raise StepFailed(f"master's agent exited {code} on SIGTERM")
        if c.nginx_pid("master") is not None:
            raise StepFailed("nginx still running on the stopped master")
    with run.step("start master's agent again: back to master"):
        c.start_agent("master")
        c.wait_serving("master", run.profile.failback_bound_s, "master restarted")


def _link_cut(run: Run) -> None:
    c, lab = run.cluster, run.lab
    try:
        with run.step("ip link set eth1 down on both: master keeps serving, slave never claims"):
            lab.set_link("master", "eth1", False)
            lab.set_link("slave", "eth1", False)
            c.hold("master", run.profile.quiet_s, "heartbeat link cut")
        with run.step("eth1 up again on both: nothing moves"):
            lab.set_link("master", "eth1", True)
            lab.set_link("slave", "eth1", True)
            c.hold("master", run.profile.quiet_s, "heartbeat link back")
    finally:
        lab.set_link("master", "eth1", True)
        lab.set_link("slave", "eth1", True)


def _crash(run: Run) -> None:
    c, lab = run.cluster, run.lab
    try:
        with run.step("master crashes (every process killed, links down): slave serves"):
            lab.crash("master")
            c.wait_serving("slave", run.profile.failover_bound_s, "master crashed")
    finally:
        lab.restore("master")
    with run.step("master back (links up, agent started): back to master"):
        c.start_agent("master")
        c.wait_serving("master", run.profile.failback_bound_s, "master rebooted")


def _kill_agent(run: Run) -> None:
    c = run.cluster
    nginx_before = c.nginx_pid("master")
    with run.step("kill -9 master's agent: VIP and nginx stay on master, slave does not claim"):
        c.kill_agent("master")
        c.hold("master", run.profile.quiet_s, "agent killed")
    with run.step("start master's agent again: it adopts VIP and nginx"):
        c.start_agent("master")
        c.hold("master", run.profile.quiet_s, "agent restarted")
        nginx_after = c.nginx_pid("master")
        if nginx_after is None or nginx_after != nginx_before:
            raise StepFailed(f"nginx not adopted: pid {nginx_before} before, {nginx_after} after")


def _pause_agent(run: Run) -> None:
    c = run.cluster
    pause_s = run.profile.deadtime_s + 2 * LEASE_S + 1.0
    try:
        with run.step(f"SIGSTOP master's agent for {pause_s:.0f}s (past its lease)"):
            c.signal_agent("master", signal.SIGSTOP)
            time.sleep(pause_s)
            run.say(f"    after the pause: {c.state()}")
    finally:
        c.signal_agent("master", signal.SIGCONT)
    with run.step("SIGCONT: master serves again (never two holders meanwhile)"):
        c.wait_serving("master", run.profile.failback_bound_s, "agent resumed")


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (from /proc; processes gone meanwhile are skipped)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def _nginx_killed(run: Run) -> None:
    c = run.cluster
    with run.step("kill -9 nginx on master: the agent's status check restarts it there"):
        pid = c.nginx_pid("master")
        if pid is None:
            raise StepFailed("no nginx on master to kill")
        # Workers outlive a killed master and keep serving: kill the whole instance.
        for victim in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        c.wait_serving("master", run.profile.failover_bound_s, "nginx killed")
        again = c.nginx_pid("master")
        if again is None or again == pid:
            raise StepFailed(f"nginx on master not restarted (pid {pid} before, {again} after)")
        if c.nginx_pid("slave") is not None:
            raise StepFailed(f"nginx started on the slave too: {c.state()}")


def _hold_under_loss(run: Run, where: str, rules: tuple[tuple[str, int | None], ...]) -> None:
    """20% loss on each (interface, UDP port or every packet) of both nodes for the
    profile's `loss_s`: master must serve alone throughout."""
    c, lab = run.cluster, run.lab
    try:
        with run.step(f"20% loss {where} for {run.profile.loss_s:.0f}s: no failover"):
            for node in NODES:
                for ifname, port in rules:
                    lab.nft_loss(node, ifname, 20, udp_port=port)
            c.hold("master", run.profile.loss_s, f"20% loss {where}")
    finally:
        for node in NODES:
            lab.nft_loss_clear(node)


def _heartbeat_loss(run: Run) -> None:
    _hold_under_loss(run, "on eth1 of both", (("eth1", None),))


def _heartbeat_loss_all(run: Run) -> None:
    _hold_under_loss(
        run,
        f"of UDP {DEFAULT_PORT} on eth0 and eth1 of both",
        (("eth0", DEFAULT_PORT), ("eth1", DEFAULT_PORT)),
    )


def _no_outage(_profile: Profile) -> float:
    return NO_OUTAGE_S


def _failover(profile: Profile) -> float:
    return profile.failover_bound_s


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "startup",
        "start-up: master first, then slave; VIP and nginx on master only",
        _startup,
        start=Start.STOPPED,
    ),
    Scenario(
        "ping-lost",
        "test 1: master loses its ping node (ICMP dropped), then gets it back",
        _ping_lost,
        max_outage_s=_failover,
    ),
    Scenario(
        "graceful-stop",
        "test 2: master's agent stopped (service heartbeat stop), then started",
        _graceful_stop,
        max_outage_s=_failover,
    ),
    Scenario(
        "link-cut",
        "test 3: heartbeat link (eth1) down on both, the tutorial's single link",
        _link_cut,
        max_outage_s=_no_outage,
    ),
    Scenario(
        "crash",
        "master node crashes (power loss), then boots",
        _crash,
        max_outage_s=_failover,
    ),
    Scenario(
        "kill-agent",
        "kill -9 of master's agent alone, then restarted",
        _kill_agent,
        max_outage_s=_no_outage,
    ),
    Scenario(
        "pause-agent",
        "SIGSTOP of master's agent past its lease, then SIGCONT",
        _pause_agent,
    ),
    Scenario(
        "nginx-killed",
        "nginx killed on master",
        _nginx_killed,
        max_outage_s=_failover,
    ),
    Scenario(
        "heartbeat-loss",
        "20% random loss on the heartbeat link for a while: no failover",
        _heartbeat_loss,
        max_outage_s=_no_outage,
    ),
    Scenario(
        "heartbeat-loss-all",
        "20% random loss of heartbeat packets on every link (eth0 too): no failover",
        _heartbeat_loss_all,
        max_outage_s=_no_outage,
    ),
    Scenario(
        "link-cut-redundant",
        "test 3 with a second heartbeat link over eth0: a non-event",
        _link_cut,
        start=Start.BASELINE_TWO_LINKS,
        max_outage_s=_no_outage,
    ),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


def scenario(name: str) -> Scenario:
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise KeyError(f"no scenario {name!r}; expected one of {', '.join(SCENARIO_NAMES)}")


# ---- the runner ----


@dataclass(slots=True)
class Result:
    name: str
    title: str
    profile: str
    passed: bool | None  # None: skipped (pending)
    outage_s: float = 0.0
    dual_holder_instants: int = 0
    holder_before: str | None = None
    holder_after: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    requests: int = 0
    answered: int = 0
    switches: list[tuple[float, str | None, str | None]] = field(default_factory=list)
    duration_s: float = 0.0
    # Every client outage as (last answer before, first answer after), monotonic seconds.
    outages: list[tuple[float, float]] = field(default_factory=list)
    # Who held the VIP, at the first sample and at every change after it (monotonic s).
    holder_changes: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    holder_samples: int = 0
    # Why the lab could not measure the run (a lab command raised, the sampler died, the
    # client made no request), as opposed to what the cluster did: None when it measured.
    lab_error: str | None = None

    def step_outages_s(self) -> list[float]:
        """Longest client outage that began during each step, in step order (0.0: none).

        An outage belongs to the last step started no later than its last answer plus
        OUTAGE_SLACK_S (the request before a fault may precede the step's start slightly).
        """
        longest = [0.0] * len(self.steps)
        for from_s, to_s in self.outages:
            owner = -1
            for i, step in enumerate(self.steps):
                if step.started_s <= from_s + OUTAGE_SLACK_S:
                    owner = i
            if owner >= 0:
                longest[owner] = max(longest[owner], to_s - from_s)
        return longest

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "profile": self.profile,
            "passed": self.passed,
            "status": "skipped" if self.passed is None else ("passed" if self.passed else "failed"),
            "outage_s": round(self.outage_s, 3),
            "dual_holder_instants": self.dual_holder_instants,
            "holder_before": self.holder_before,
            "holder_after": self.holder_after,
            "requests": self.requests,
            "answered": self.answered,
            "switches": [{"t_s": round(t, 3), "from": a, "to": b} for t, a, b in self.switches],
            "steps": [
                {
                    "name": s.name,
                    "ok": s.ok,
                    "elapsed_s": round(s.elapsed_s, 3),
                    "detail": s.detail,
                    "outage_s": round(o, 3),
                }
                for s, o in zip(self.steps, self.step_outages_s(), strict=True)
            ],
            "error": self.error,
            "skipped": self.skipped,
            "duration_s": round(self.duration_s, 3),
            "holder_samples": self.holder_samples,
            "lab_error": self.lab_error,
        }


def _holder_name(held: tuple[str, ...]) -> str | None:
    return "+".join(held) if held else None


class _Live(threading.Thread):
    """Prints who holds the VIP and who the client sees whenever either changes."""

    def __init__(self, sampler: HolderSampler, client: Client, say: Callable[[str], None]):
        super().__init__(name="gha-demo-live", daemon=True)
        self.sampler, self.client, self.say = sampler, client, say
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        last: tuple[str | None, str | None] | None = None
        for _ in range(100_000):  # bounded; stopped long before
            if self.stop_event.wait(0.25):
                return
            held = self.sampler.samples[-1].holders if self.sampler.samples else ()
            answers = read_client_log(self.client.log_path)[-1:]
            if not answers:
                continue  # no request made yet
            now = (_holder_name(held), answers[-1].who)
            if now != last:
                last = now
                self.say(
                    f"    [{time.monotonic() - self.t0:6.2f}s] VIP on {now[0] or 'nobody':7} "
                    f"| client sees {now[1] or 'no answer'}"
                )


def run_scenario(
    cluster: Cluster,
    sc: Scenario,
    *,
    say: Callable[[str], None] | None = None,
    live: bool = False,
) -> Result:
    """Bring the cluster to the scenario's start, run it under observation, judge it."""
    say = say or (lambda _msg: None)
    result = Result(sc.name, sc.title, cluster.profile.name, passed=None)
    say(f"== {sc.name}: {sc.title}")
    if sc.pending is not None:
        result.skipped = sc.pending
        say(f"  skipped (not yet): {sc.pending}")
        return result
    if sc.start is Start.STOPPED:
        cluster.heal()
        cluster.stop_all()
        cluster.configure(second_link=False)
    else:
        cluster.ensure_baseline(second_link=sc.start is Start.BASELINE_TWO_LINKS)
    budget_s = 4 * cluster.profile.failback_bound_s + 2 * cluster.profile.loss_s + 60.0
    client = Client(cluster.lab, duration_s=budget_s)
    sampler = HolderSampler(cluster.lab, duration_s=budget_s)
    run = Run(cluster, say)
    result.holder_before = _holder_name(cluster.holders())
    started = time.monotonic()
    client.start()
    sampler.start()
    ticker = _Live(sampler, client, say) if live else None
    if ticker is not None:
        ticker.start()
    try:
        _await_first_answer(client, CLIENT_START_S)
        time.sleep(0.3)  # a few requests before the fault
        sc.body(run)
        time.sleep(0.3)
    except StepFailed as exc:
        result.error = str(exc)
        settle(cluster, say)
    except Exception as exc:  # a lab command failed: report it, keep the run going
        result.error = result.lab_error = f"{type(exc).__name__}: {exc}"
        say(f"  ERROR: {result.error}")
    finally:
        if ticker is not None:
            ticker.stop_event.set()
            ticker.join(timeout=2.0)
        sampler.stop()
        client.stop()
    result.duration_s = time.monotonic() - started
    result.steps = run.steps
    result.holder_after = _holder_name(cluster.holders())
    summary: Summary = summarize(client.samples(), sampler.samples)
    result.outage_s = summary.longest_outage_s
    result.dual_holder_instants = summary.dual_holder_samples
    result.requests, result.answered = summary.requests, summary.answered
    result.switches = list(summary.switches)
    result.outages = outage_windows(client.samples())
    result.holder_changes = holder_changes(sampler.samples)
    result.holder_samples = len(sampler.samples)
    blind = sampler.failure()
    if blind is not None:  # "0 dual-holder samples" from a dead sampler is no evidence
        result.error = blind if result.error is None else f"{result.error}; {blind}"
        result.lab_error = blind if result.lab_error is None else f"{result.lab_error}; {blind}"
        say(f"  ERROR: {blind}")
    result.passed = judge(sc, cluster.profile, result)
    if result.error is not None:
        for node in NODES:
            say(f"  {node}'s agent log (last lines):\n{_indent(cluster.log_tail(node))}")
    say(
        f"  {'PASSED' if result.passed else 'FAILED'}: longest outage {result.outage_s:.2f}s, "
        f"dual-holder instants {result.dual_holder_instants}, "
        f"{result.holder_before} -> {result.holder_after}"
        + (f" ({result.error})" if result.error else "")
    )
    return result


def _await_first_answer(client: Client, bound_s: float) -> None:
    """Until the client has had an answer (its process starts in the client namespace and
    may take a while on a loaded machine): a fault before it would hide its outage."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if any(s.who is not None for s in read_client_log(client.log_path)):
            return
        time.sleep(POLL_S)


def outage_windows(samples: Sequence[ClientSample]) -> list[tuple[float, float]]:
    """(last answer, next answer) around every run of failed requests, as `summarize`
    measures its longest one; a run never answered again ends at the last request."""
    windows: list[tuple[float, float]] = []
    ordered = sorted(samples, key=lambda x: x.t_s)
    last_ok_s = ordered[0].t_s if ordered else 0.0
    failing = False
    for sample in ordered:
        if sample.who is None:
            failing = True
            continue
        if failing:
            windows.append((last_ok_s, sample.t_s))
        failing = False
        last_ok_s = sample.t_s
    if failing:
        windows.append((last_ok_s, ordered[-1].t_s))
    return windows


def holder_changes(samples: Sequence[HolderSample]) -> list[tuple[float, tuple[str, ...]]]:
    """(t, holders) at the first sample and wherever the sampled holders differ from the
    sample before: when the VIP appeared or vanished on each node."""
    changes: list[tuple[float, tuple[str, ...]]] = []
    for sample in sorted(samples, key=lambda x: x.t_s):
        if not changes or sample.holders != changes[-1][1]:
            changes.append((sample.t_s, sample.holders))
    return changes


def settle(cluster: Cluster, say: Callable[[str], None]) -> None:
    """After a failed step, keep watching until master serves again (bounded), so the
    outage and the final holder recorded are the whole effect of the failure."""
    cluster.heal()
    for node in NODES:
        if not cluster.agent_alive(node):
            cluster.start_agent(node)
    try:
        took = cluster.wait_serving("master", cluster.profile.failback_bound_s, "settling")
        say(f"  settled: master serves again {took:.2f}s after the failed step")
    except StepFailed as exc:
        say(f"  not settled: {exc}")


def judge(sc: Scenario, profile: Profile, result: Result) -> bool:
    """Passed: every step held, never two holders, outage within the scenario's bound."""
    if result.dual_holder_instants and result.error is None:
        result.error = f"{result.dual_holder_instants} samples with two VIP holders"
    if sc.max_outage_s is not None and result.error is None:
        bound = sc.max_outage_s(profile)
        if result.outage_s > bound:
            result.error = f"outage {result.outage_s:.2f}s exceeds {bound:.2f}s"
    if result.requests == 0:
        result.lab_error = result.lab_error or "the client made no request"
        result.error = result.error or result.lab_error
    return result.error is None


def _indent(text: str) -> str:
    return "\n".join("    | " + line for line in text.splitlines())


def run_all(
    lab: Lab,
    profile: Profile,
    names: Sequence[str] = SCENARIO_NAMES,
    *,
    say: Callable[[str], None] | None = None,
    live: bool = False,
) -> list[Result]:
    """Run the named scenarios, in the order given, on one cluster in `lab`."""
    cluster = make_cluster(lab, profile, say=say)
    try:
        return [run_scenario(cluster, scenario(n), say=say, live=live) for n in names]
    finally:
        cluster.close()
