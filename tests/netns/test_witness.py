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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipha.lab import HostSpec, IfaceSpec, Lab, sweep_stale
from gossipha.lab.observe import HolderSample, HolderSampler
from gossipha.lab.scenarios import HOSTNAMES
from gossipha.lab.topology import HEARTBEAT_BRIDGE, TUTORIAL_HOSTS, TUTORIAL_VIP
from tests.netns.conftest import require_netns
from tests.netns.helpers import Agents, holds_vip
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


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """master, slave and the witness; no ping node or client (the test needs none). It
    replaces the conftest's `lab` in this module, so the `agents` fixture runs in it."""
    require_netns()
    sweep_stale()
    with Lab(HOSTS) as built:
        yield built


def _start_all(agents: Agents) -> None:
    """Witness and master first, as the master is the preferred node; then the slave."""
    config = write_config(agents.root)
    for node in NODES:
        agents.config[node] = config
    agents.start(WITNESS, command="witness", mlock=False)
    agents.start("master", mlock=False)
    time.sleep(0.3)
    agents.start("slave", mlock=False)
    _wait(
        lambda: "the master holds the VIP\n" + agents.tails(),
        lambda: agents.holders() == ("master",),
        STARTUP_BOUND_S,
    )


def _assert_witness_holds_nothing(agents: Agents) -> None:
    assert not holds_vip(agents.lab, WITNESS, up=False)
    text = agents.log(WITNESS)
    assert "role=witness" in text, text[-2000:]
    for word in ("starting group", "vip added", "pinger", "health monitor"):
        assert word not in text, f"{word!r} in the witness's log:\n{text[-2000:]}"


def _two_at_once(samples: list[HolderSample]) -> list[HolderSample]:
    return [s for s in samples if s.dual]


def test_crash_of_the_master_moves_the_vip_with_the_witness_vote(lab: Lab, agents: Agents) -> None:
    _start_all(agents)
    sampler = HolderSampler(lab, VIP, nodes=NODES, interval_s=0.01, duration_s=40.0)
    sampler.start()
    try:
        time.sleep(1.0)  # settled: nothing moves while all three run
        assert agents.holders() == ("master",)
        _assert_witness_holds_nothing(agents)
        lab.crash("master")
        took_s = _wait(
            lambda: "the slave holds the VIP after the master crashed\n" + agents.tails(),
            lambda: agents.holders() == ("slave",),
            FAILOVER_BOUND_S + 5.0,
        )
        assert took_s <= FAILOVER_BOUND_S, f"failover took {took_s:.2f}s"
        time.sleep(1.0)  # and keeps it (renewed by its own vote and the witness's)
        assert agents.holders() == ("slave",)
    finally:
        sampler.stop()
    assert sampler.error is None, sampler.error
    assert not _two_at_once(sampler.samples), _two_at_once(sampler.samples)[:3]
    _assert_witness_holds_nothing(agents)


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


def test_heartbeat_cut_between_members_keeps_exactly_one_holder(lab: Lab, agents: Agents) -> None:
    _start_all(agents)
    time.sleep(1.0)
    sampler = HolderSampler(lab, VIP, nodes=NODES, interval_s=0.01, duration_s=40.0)
    sampler.start()
    cut = False
    try:
        _cut_hb(lab, True)
        cut = True
        time.sleep(CUT_HOLD_S)
        # The cut was real: each member's heartbeats to the other were dropped.
        for node, other in (("master", "slave"), ("slave", "master")):
            assert _dropped_to(lab, node, _hb(other)) > 0, agents.tails()
        cut_end_s = time.monotonic()
        _cut_hb(lab, False)
        cut = False
        time.sleep(2.0)  # healed: still one holder
    finally:
        if cut:
            _cut_hb(lab, False)
        sampler.stop()
    assert sampler.error is None, sampler.error
    samples = sampler.samples
    assert samples, "no samples"
    bad = [s for s in samples if len(s.holders) != 1]
    assert not bad, f"{len(bad)} samples without exactly one holder: {bad[:5]}\n" + (agents.tails())
    during = [s for s in samples if s.t_s <= cut_end_s]
    assert len(during) > CUT_HOLD_S / 0.05, f"too few samples during the cut: {len(during)}"
    _assert_witness_holds_nothing(agents)
    for node in NODES:
        assert agents.procs[node].poll() is None, f"{node} exited\n" + agents.tail(node)
    # SIGTERM: the witness exits cleanly and says so.
    witness = agents.procs[WITNESS]
    witness.send_signal(15)
    assert witness.wait(timeout=STOP_BOUND_S) == 0, agents.tail(WITNESS)
    assert "agent stopped" in agents.tail(WITNESS)
