"""Two agents and a `gossipha witness` in the lab: three voters, so leases are majorities.

The tutorial's master and slave plus ``quorum1`` in a third namespace on the heartbeat
network only (192.168.17.60 on eth1), one native gossipha.toml for all three with a
single heartbeat link (hb on eth1) and a VIP-only group, fast timings. Checks: the master
holds the VIP and the witness holds nothing; a crash of the master moves the VIP to the
slave (its own vote and the witness's); with the heartbeat link cut between master and
slave only (the witness still reaches both) exactly one node holds the VIP at every
sample; SIGTERM stops the witness cleanly (status 0).
"""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipha.lab import HostSpec, IfaceSpec, Lab, sweep_stale
from gossipha.lab.observe import HolderSample, HolderSampler
from gossipha.lab.scenarios import HOSTNAMES, child_env
from gossipha.lab.topology import HEARTBEAT_BRIDGE, TUTORIAL_HOSTS, TUTORIAL_VIP
from tests.netns.conftest import require_netns
from tests.netns.helpers import wait_until as _wait

pytestmark = pytest.mark.netns

VIP = str(TUTORIAL_VIP.ip)
WITNESS = "witness"
WITNESS_NAME = "quorum1"
WITNESS_HB = ipaddress.IPv4Interface("192.168.17.60/24")
NAMES = {**HOSTNAMES, WITNESS: WITNESS_NAME}
NODES = ("master", "slave", WITNESS)
HOSTS = (
    *(h for h in TUTORIAL_HOSTS if h.node in ("master", "slave")),
    HostSpec(WITNESS, WITNESS_NAME, (IfaceSpec("eth1", WITNESS_HB, HEARTBEAT_BRIDGE),)),
)
LEASE_S = 1.0
STARTUP_BOUND_S = 12.0
FAILOVER_BOUND_S = 6.0  # deadtime 1s + the witness's promise to the master (~L) + probe, slack
CUT_HOLD_S = 5.0  # deadtime and several leases with the heartbeat link cut
STOP_BOUND_S = 5.0


def _hb(node: str) -> str:
    return str(next(h for h in HOSTS if h.node == node).iface("eth1").address.ip)


def render_toml() -> str:
    """One file for masternginx, slavenginx and quorum1: a single heartbeat link, so the
    cut below leaves master and slave each hearing only the witness."""
    nodes = "\n".join(
        f'[nodes.{NAMES[n]}]\naddresses = {{ hb = "{_hb(n)}" }}\n' for n in ("master", "slave")
    )
    return f"""# gossipha lab: two members and a witness (tests/netns/test_witness.py)
[cluster]
name = "web3"
auto_failback = false

[timings]
keepalive = "200ms"
warntime = "500ms"
deadtime = "1s"
initdead = "2s"
lease = "{LEASE_S}s"

[auth]
keyfile = "authkeys"

{nodes}
[nodes.{WITNESS_NAME}]
role = "witness"
addresses = {{ hb = "{WITNESS_HB.ip}" }}

[[link]]
name = "hb"
interface = "eth1"

[[group]]
name = "web"
preferred = "{HOSTNAMES["master"]}"
resources = [
  {{ vip = "{TUTORIAL_VIP}", interface = "eth0", label = "eth0:0" }},
]
"""


def write_config(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    keyfile = dest / "authkeys"
    keyfile.write_text(f"auth 1\n1 sha256 {secrets.token_hex(32)}\n")
    keyfile.chmod(0o600)
    path = dest / "gossipha.toml"
    path.write_text(render_toml())
    return path


class _Cluster:
    """The three processes: `gossipha agent` on master and slave, `gossipha witness`."""

    def __init__(self, lab: Lab, root: Path) -> None:
        self.lab = lab
        self.root = root
        self.config = write_config(root)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, node: str) -> subprocess.Popen[bytes]:
        command = "witness" if node == WITNESS else "agent"
        env = child_env()
        env["GOSSIPHA_STATE_DIR"] = str(self.root / node / "state")
        (self.root / node).mkdir(parents=True, exist_ok=True)
        self.logs[node] = self.root / node / f"{command}.log"
        with self.logs[node].open("ab") as out:
            proc = self.lab.spawn(
                node,
                [
                    sys.executable,
                    "-m",
                    "gossipha",
                    command,
                    "--config",
                    str(self.config),
                    "--node-name",
                    NAMES[node],
                    "--admin-socket",
                    str(self.root / node / "admin.sock"),
                    "--no-mlock",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.procs[node] = proc
        return proc

    def log(self, node: str) -> str:
        try:
            return self.logs[node].read_text(errors="replace")[-3000:]
        except (KeyError, OSError):
            return "(no log)"

    def logs_text(self) -> str:
        return "\n".join(f"--- {n}\n{self.log(n)}" for n in self.logs)

    def holders(self) -> tuple[str, ...]:
        return tuple(n for n in NODES if _holds_vip(self.lab, n))

    def close(self) -> None:
        for proc in self.procs.values():
            self.lab.stop(proc, timeout_s=10.0)


def _holds_vip(lab: Lab, node: str) -> bool:
    result = lab.run(
        node, ["ip", "-o", "-4", "addr", "show", "to", f"{VIP}/32"], uts=False, check=False
    )
    return bool(result.stdout.strip())


@pytest.fixture(scope="module")
def wlab() -> Iterator[Lab]:
    """master, slave and the witness; no ping node or client (the test needs none)."""
    require_netns()
    sweep_stale()
    with Lab(HOSTS) as built:
        yield built


@pytest.fixture
def cluster(wlab: Lab) -> Iterator[_Cluster]:
    group = _Cluster(wlab, wlab.workdir / f"test-witness-{time.monotonic_ns()}")
    try:
        yield group
    finally:
        group.close()
        for node in ("master", "slave"):
            wlab.restore(node)
            wlab.run(
                node,
                ["ip", "addr", "del", str(TUTORIAL_VIP), "dev", "eth0"],
                uts=False,
                check=False,
            )


def _start_all(cluster: _Cluster) -> None:
    """Witness and master first, as the master is the preferred node; then the slave."""
    cluster.start(WITNESS)
    cluster.start("master")
    time.sleep(0.3)
    cluster.start("slave")
    _wait(
        "the master holds the VIP\n" + cluster.logs_text(),
        lambda: cluster.holders() == ("master",),
        STARTUP_BOUND_S,
    )


def _assert_witness_holds_nothing(cluster: _Cluster) -> None:
    assert not _holds_vip(cluster.lab, WITNESS)
    text = cluster.logs[WITNESS].read_text(errors="replace")
    assert "role=witness" in text, text[-2000:]
    for word in ("starting group", "vip added", "pinger", "health monitor"):
        assert word not in text, f"{word!r} in the witness's log:\n{text[-2000:]}"


def _two_at_once(samples: list[HolderSample]) -> list[HolderSample]:
    return [s for s in samples if len(s.holders) > 1]


def test_crash_of_the_master_moves_the_vip_with_the_witness_vote(
    wlab: Lab, cluster: _Cluster
) -> None:
    _start_all(cluster)
    sampler = HolderSampler(wlab, VIP, nodes=NODES, interval_s=0.01, duration_s=40.0)
    sampler.start()
    try:
        time.sleep(1.0)  # settled: nothing moves while all three run
        assert cluster.holders() == ("master",)
        _assert_witness_holds_nothing(cluster)
        wlab.crash("master")
        took_s = _wait(
            "the slave holds the VIP after the master crashed\n" + cluster.logs_text(),
            lambda: cluster.holders() == ("slave",),
            FAILOVER_BOUND_S + 5.0,
        )
        assert took_s <= FAILOVER_BOUND_S, f"failover took {took_s:.2f}s"
        time.sleep(1.0)  # and keeps it (renewed by its own vote and the witness's)
        assert cluster.holders() == ("slave",)
    finally:
        sampler.stop()
    assert sampler.error is None, sampler.error
    assert not _two_at_once(sampler.samples), _two_at_once(sampler.samples)[:3]
    _assert_witness_holds_nothing(cluster)


def _cut_hb(lab: Lab, add: bool) -> None:
    """Drop heartbeat traffic between .50 and .51 on eth1, both directions, on both hosts;
    the witness (.60) still reaches both."""
    flag = "-I" if add else "-D"
    for node, other in (("master", "slave"), ("slave", "master")):
        peer = _hb(other)
        lab.iptables(node, [flag, "INPUT", "-i", "eth1", "-s", peer, "-j", "DROP"])
        lab.iptables(node, [flag, "OUTPUT", "-o", "eth1", "-d", peer, "-j", "DROP"])


def _dropped_to(lab: Lab, node: str, peer: str) -> int:
    """Packets `node`'s OUTPUT DROP rule for `peer` has dropped (iptables counters)."""
    out = lab.iptables(node, ["-L", "OUTPUT", "-v", "-n", "-x"]).stdout
    return sum(
        int(line.split()[0])
        for line in out.splitlines()
        if line.split()[2:3] == ["DROP"] and peer in line.split()
    )


def test_heartbeat_cut_between_members_keeps_exactly_one_holder(
    wlab: Lab, cluster: _Cluster
) -> None:
    _start_all(cluster)
    time.sleep(1.0)
    sampler = HolderSampler(wlab, VIP, nodes=NODES, interval_s=0.01, duration_s=40.0)
    sampler.start()
    cut = False
    try:
        _cut_hb(wlab, True)
        cut = True
        time.sleep(CUT_HOLD_S)
        # The cut was real: each member's heartbeats to the other were dropped.
        for node, other in (("master", "slave"), ("slave", "master")):
            assert _dropped_to(wlab, node, _hb(other)) > 0, cluster.logs_text()
        cut_end_s = time.monotonic()
        _cut_hb(wlab, False)
        cut = False
        time.sleep(2.0)  # healed: still one holder
    finally:
        if cut:
            _cut_hb(wlab, False)
        sampler.stop()
    assert sampler.error is None, sampler.error
    samples = sampler.samples
    assert samples, "no samples"
    bad = [s for s in samples if len(s.holders) != 1]
    assert not bad, f"{len(bad)} samples without exactly one holder: {bad[:5]}\n" + (
        cluster.logs_text()
    )
    during = [s for s in samples if s.t_s <= cut_end_s]
    assert len(during) > CUT_HOLD_S / 0.05, f"too few samples during the cut: {len(during)}"
    _assert_witness_holds_nothing(cluster)
    for node in NODES:
        assert cluster.procs[node].poll() is None, f"{node} exited\n" + cluster.log(node)
    # SIGTERM: the witness exits cleanly and says so.
    witness = cluster.procs[WITNESS]
    witness.send_signal(15)
    assert witness.wait(timeout=STOP_BOUND_S) == 0, cluster.log(WITNESS)
    assert "agent stopped" in cluster.log(WITNESS)
