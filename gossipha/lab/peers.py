"""The peers gossipha is measured against, run in the same lab: Heartbeat 3 and keepalived.

Both drive the same lab nginx (the tutorial's resource.d/nginx script) and the same VIP
(192.168.171.100/24 on eth0, label eth0:0), so the scenario runner, its client and its
holder sampler see them exactly as they see gossipha. Only Debian's packages are used.

- `HeartbeatCluster`: Debian's ``heartbeat`` (3.0.x) with the tutorial's own ha.cf,
  authkeys and haresources (ha.cf's timings from the profile, its log paths in the lab's
  workdir, ipfail at Debian's path). Heartbeat reads the fixed paths /etc/ha.d,
  /var/lib/heartbeat and /run, so each node runs it in a private mount namespace with
  those bound to the node's own directories; its pid file is then readable from here.
- `KeepalivedCluster`: Debian's ``keepalived`` with the equivalent VRRP set-up: unicast
  over eth1, the VIP with its label, a track script pinging the ping node, nginx started
  and stopped by notify scripts, preemption (auto_failback's equivalent) on.

Every process is stopped by PID; the lab's teardown kills whatever is left in a node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gossipha.lab.nginx import TUTORIAL_PAGES, prepare
from gossipha.lab.scenarios import (
    FAST,
    NODES,
    PEER,
    PROFILES,
    STOP_TIMEOUT_S,
    TUTORIAL,
    VIP,
    VIP_LABEL,
    Cluster,
    Profile,
    make_cluster,
    render_nginx_script,
    write_ha_d,
)
from gossipha.lab.topology import TUTORIAL_HOSTS, TUTORIAL_VIP, Lab, LabError

HEARTBEAT_BIN = Path("/usr/libexec/heartbeat/heartbeat")
IPFAIL_BIN = Path("/usr/libexec/heartbeat/ipfail")
HA_D_SKELETON = Path("/etc/ha.d")  # what Debian's package installs there (harc, rc.d, ...)
HB_STATE_SKELETON = Path("/var/lib/heartbeat")
KEEPALIVED_BIN = Path("/usr/sbin/keepalived")
# Directories Debian's tmpfiles.d makes for Heartbeat under /run.
# Heartbeat's start-up beyond initdead: its resource hand-shake with the peer.
HEARTBEAT_START_EXTRA_S = 30.0
_HB_RUN_DIRS = ("heartbeat", "heartbeat/ccm", "heartbeat/crm", "heartbeat/dopd")
_HOSTS = {h.node: h for h in TUTORIAL_HOSTS}
PING_NODE = str(_HOSTS["ping"].iface("eth0").address.ip)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def require(binary: Path, package: str) -> None:
    if not binary.exists():
        raise LabError(f"{binary} not found: install Debian's {package} (scripts/setup.sh does)")


# ---- Heartbeat ----


def render_heartbeat_hacf(text: str) -> str:
    """The lab's ha.cf (tutorial timings and logs already in) with ipfail at Debian's path:
    the tutorial's /usr/lib64/heartbeat/ipfail is a Red Hat path."""
    out: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["respawn"] and len(words) >= 3 and words[2].endswith("/ipfail"):
            out.append(f"respawn {words[1]} {IPFAIL_BIN}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


class HeartbeatCluster(Cluster):
    """Debian's Heartbeat 3 with the tutorial's files, one instance per node namespace."""

    system = "heartbeat"

    def __init__(
        self, lab: Lab, profile: Profile = TUTORIAL, *, say: Callable[[str], None] | None = None
    ):
        require(HEARTBEAT_BIN, "heartbeat")
        super().__init__(lab, profile, say=say, root=lab.workdir / f"heartbeat-{profile.name}")

    def node_dir(self, node: str) -> Path:
        return self.root / node

    def configure(self, *, second_link: bool) -> None:
        for node in NODES:
            ha_d, nginx_root = write_ha_d(node, self.root, self.profile, second_link=second_link)
            for entry in HA_D_SKELETON.iterdir():
                target = ha_d / entry.name
                if entry.is_dir():
                    shutil.copytree(entry, target, dirs_exist_ok=True, symlinks=True)
                elif not target.exists():
                    shutil.copy2(entry, target)
            # The lab's nginx script again: the skeleton has none, but keep ours on top.
            (ha_d / "resource.d" / "nginx").write_text(render_nginx_script(node, nginx_root))
            (ha_d / "ha.cf").write_text(render_heartbeat_hacf((ha_d / "ha.cf").read_text()))
            state = self.node_dir(node) / "var-lib-heartbeat"
            if not state.exists():  # kept across restarts: it holds the node's hb_uuid
                shutil.copytree(HB_STATE_SKELETON, state, symlinks=True)
            self.ha_d[node], self.nginx_root[node] = ha_d, nginx_root
        self.second_link = second_link

    def agent_log(self, node: str) -> Path:
        return self.node_dir(node) / "ha-log"

    def _pid_file(self, node: str) -> Path:
        return self.node_dir(node) / "run" / "heartbeat.pid"

    def master_pid(self, node: str) -> int | None:
        """Heartbeat's master control process, from its pid file (our /run for the node)."""
        try:
            pid = int(self._pid_file(node).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def agent_alive(self, node: str) -> bool:
        return self.master_pid(node) is not None

    def start_agent(self, node: str) -> subprocess.Popen[bytes]:
        """``/etc/init.d/heartbeat start`` in a private mount namespace: a fresh /run (as
        after a boot), /etc/ha.d and /var/lib/heartbeat bound to the node's copies."""
        if self.agent_alive(node):
            raise LabError(f"{node}: heartbeat already running (pid {self.master_pid(node)})")
        nd = self.node_dir(node)
        run = nd / "run"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        mkdirs = " ".join(f"/run/{d}" for d in _HB_RUN_DIRS)
        script = (
            "set -e; "
            f"mount --bind {run} /run; "
            f"mount --bind {self.ha_d[node]} /etc/ha.d; "
            f"mount --bind {nd / 'var-lib-heartbeat'} /var/lib/heartbeat; "
            f"mkdir -p {mkdirs} /run/resource-agents; "
            f"chown hacluster:haclient {mkdirs}; chmod 750 {mkdirs}; "
            f"exec {HEARTBEAT_BIN}"
        )
        argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]
        out = (nd / "heartbeat.out").open("ab")
        try:
            proc = self.lab.spawn(node, argv, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        self.agents[node] = proc
        # Heartbeat forks into the background once it has read its configuration.
        try:
            proc.wait(timeout=15.0)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{node}: heartbeat did not daemonize within 15 s") from exc
        if proc.returncode != 0:
            text = (nd / "heartbeat.out").read_text(errors="replace")[-2000:]
            raise LabError(f"{node}: heartbeat exited {proc.returncode}: {text}")
        deadline = time.monotonic() + 10.0
        while self.master_pid(node) is None:
            if time.monotonic() > deadline:
                raise LabError(f"{node}: heartbeat wrote no pid file: {self.log_tail(node)}")
            time.sleep(0.05)
        return proc

    @property
    def startup_bound_s(self) -> float:
        """Heartbeat takes about 10 s past hearing its peer before it acquires resources
        (its "resource transition")."""
        return self.profile.startup_bound_s + HEARTBEAT_START_EXTRA_S

    def signal_agent(self, node: str, sig: signal.Signals) -> None:
        pid = self.master_pid(node)
        if pid is None:
            raise LabError(f"{node}: no running heartbeat to send {sig.name}")
        os.kill(pid, sig)

    def stop_agent(self, node: str, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """``service heartbeat stop``: SIGTERM to the master control process, which gives
        up its resources and tells the peer; SIGKILL of it after the bound."""
        pid = self.master_pid(node)
        if pid is None:  # already gone (stopped by a signal before): a clean exit if started
            return 0 if node in self.agents else None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if _wait_gone(pid, timeout_s):
            return 0
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 2.0)
        return -int(signal.SIGKILL)

    def kill_agent(self, node: str) -> None:
        self.signal_agent(node, signal.SIGKILL)
        pid = self.master_pid(node)
        if pid is not None:
            _wait_gone(pid, 5.0)


# ---- keepalived ----


@dataclass(frozen=True, slots=True)
class VrrpTimings:
    """keepalived's knobs that set how fast it fails over."""

    name: str
    advert_int_s: float
    script_interval_s: int
    fall: int
    rise: int

    def as_profile(self) -> Profile:
        """Bounds for the runner's waits (the master-down interval is 3 adverts + skew)."""
        deadtime = max(3 * self.advert_int_s + 1, self.script_interval_s * self.fall)
        base = TUTORIAL if self.advert_int_s >= 1 else FAST
        return Profile(
            f"keepalived-{self.name}",
            keepalive=f"{self.advert_int_s}s",
            warntime=f"{deadtime}s",
            deadtime=f"{deadtime + 2}s",
            initdead=base.initdead if self.advert_int_s < 1 else "10",
        )


# keepalived's defaults (advert_int 1) and a track script as distributions document it.
KEEPALIVED_DEFAULT = VrrpTimings("default", advert_int_s=1.0, script_interval_s=1, fall=2, rise=2)
# VRRPv3 allows adverts in centiseconds: 200 ms, as gossipha's keepalive.
KEEPALIVED_FAST = VrrpTimings("fast", advert_int_s=0.2, script_interval_s=1, fall=1, rise=1)


def render_keepalived_conf(node: str, timings: VrrpTimings, nginx_script: Path) -> str:
    """keepalived.conf equivalent to the tutorial: master preferred, unicast over eth1,
    the VIP with label eth0:0, the ping node tracked, nginx run by notify scripts."""
    me = _HOSTS[node].iface("eth1").address.ip
    peer = _HOSTS[PEER[node]].iface("eth1").address.ip
    state, priority = ("MASTER", 101) if node == "master" else ("BACKUP", 100)
    version = "vrrp_version 3" if timings.advert_int_s < 1 else "vrrp_version 2"
    return f"""# gossipha lab: keepalived for {node}, timings {timings.name}
global_defs {{
    router_id {node}
    {version}
    enable_script_security
    script_user root
}}

vrrp_script chk_ping {{
    script "/bin/ping -c 1 -W 1 {PING_NODE}"
    interval {timings.script_interval_s}
    fall {timings.fall}
    rise {timings.rise}
}}

vrrp_instance VI_1 {{
    state {state}
    interface eth1
    virtual_router_id 51
    priority {priority}
    advert_int {timings.advert_int_s:g}
    unicast_src_ip {me}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {VIP}/{TUTORIAL_VIP.network.prefixlen} dev eth0 label {VIP_LABEL}
    }}
    track_script {{
        chk_ping
    }}
    notify_master "{nginx_script} start"
    notify_backup "{nginx_script} stop"
    notify_fault "{nginx_script} stop"
    notify_stop "{nginx_script} stop"
}}
"""


class KeepalivedCluster(Cluster):
    """Debian's keepalived on master and slave, in the foreground, one per namespace."""

    system = "keepalived"

    def __init__(
        self,
        lab: Lab,
        timings: VrrpTimings = KEEPALIVED_DEFAULT,
        *,
        say: Callable[[str], None] | None = None,
    ):
        require(KEEPALIVED_BIN, "keepalived")
        self.timings = timings
        super().__init__(
            lab, timings.as_profile(), say=say, root=lab.workdir / f"keepalived-{timings.name}"
        )

    def configure(self, *, second_link: bool) -> None:
        for node in NODES:
            nd = self.root / node
            nginx_root = nd / "nginx"
            nginx_root.mkdir(parents=True, exist_ok=True)
            prepare(nginx_root, TUTORIAL_PAGES[node], daemon=True)
            script = nd / "nginx.sh"
            script.write_text(render_nginx_script(node, nginx_root))
            script.chmod(0o755)
            (nd / "keepalived.conf").write_text(render_keepalived_conf(node, self.timings, script))
            self.nginx_root[node] = nginx_root
        self.second_link = second_link

    def nginx_script(self, node: str) -> Path:
        return self.root / node / "nginx.sh"

    def agent_log(self, node: str) -> Path:
        return self.root / node / "keepalived.log"

    def start_agent(self, node: str) -> subprocess.Popen[bytes]:
        if self.agent_alive(node):
            raise LabError(f"{node}: keepalived already running (pid {self.agents[node].pid})")
        nd = self.root / node
        # Pid files live in /run, which a reboot empties: a killed keepalived's files would
        # name processes that may linger as zombies here and make the new one refuse to run.
        for name in ("keepalived.pid", "vrrp.pid", "checkers.pid"):
            (nd / name).unlink(missing_ok=True)
        argv = [
            str(KEEPALIVED_BIN),
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--vrrp",
            "--use-file",
            str(nd / "keepalived.conf"),
            "--pid",
            str(nd / "keepalived.pid"),
            "--vrrp_pid",
            str(nd / "vrrp.pid"),
            "--checkers_pid",
            str(nd / "checkers.pid"),
        ]
        log = self.agent_log(node).open("ab")
        try:
            proc = self.lab.spawn(node, argv, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        self.agents[node] = proc
        return proc


# ---- the systems a benchmark compares ----


def peer_cluster(lab: Lab, system: str, *, say: Callable[[str], None] | None = None) -> Cluster:
    """A peer's two-node cluster by name: heartbeat-tutorial, heartbeat-fast,
    keepalived-default, keepalived-fast."""
    if system == "heartbeat-tutorial":
        return HeartbeatCluster(lab, TUTORIAL, say=say)
    if system == "heartbeat-fast":
        return HeartbeatCluster(lab, FAST, say=say)
    if system == "keepalived-default":
        return KeepalivedCluster(lab, KEEPALIVED_DEFAULT, say=say)
    if system == "keepalived-fast":
        return KeepalivedCluster(lab, KEEPALIVED_FAST, say=say)
    raise KeyError(f"no peer system {system!r}")


PEER_SYSTEMS = ("heartbeat-tutorial", "heartbeat-fast", "keepalived-default", "keepalived-fast")
# gossipha under each lab profile: gossipha-fast, gossipha-native, gossipha-tutorial.
GOSSIPHA_SYSTEMS: dict[str, Profile] = {f"gossipha-{n}": p for n, p in sorted(PROFILES.items())}
SYSTEMS = (*GOSSIPHA_SYSTEMS, *PEER_SYSTEMS)


def system_cluster(lab: Lab, system: str, *, say: Callable[[str], None] | None = None) -> Cluster:
    """Any system the benchmarks compare, by the name in SYSTEMS."""
    if system in GOSSIPHA_SYSTEMS:
        return make_cluster(lab, GOSSIPHA_SYSTEMS[system], say=say)
    return peer_cluster(lab, system, say=say)
