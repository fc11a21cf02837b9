"""A 3-node fleet of real agents (the scale bench's cluster, gossipha.lab.fleet) for a few
seconds: exactly one node holds the VIP and every agent names it, and the usage readings
of gossipha.lab.usage are sane (CPU share, RSS/PSS, packets on both links)."""

from __future__ import annotations

import time

import pytest

from gossipha.lab import Lab, sweep_stale
from gossipha.lab.fleet import Fleet, VoterLayout, fleet_hosts
from gossipha.lab.usage import link_rate, process_rate, sample_links, sample_process
from tests.lab.conftest import require_netns

WINDOW_S = 3.0
# Three agents start in a few seconds on a quiet machine; the bound allows a loaded one.
AGREE_BOUND_S = 40.0


@pytest.mark.netns
def test_three_agents_agree_on_one_holder_and_cost_little() -> None:
    require_netns()
    sweep_stale()
    with Lab(fleet_hosts(3)) as lab:
        fleet = Fleet(lab, VoterLayout.FIVE)
        try:
            fleet.open_handles()
            fleet.start_all()
            agreement = fleet.wait_agreement(AGREE_BOUND_S)
            assert agreement.multi_holder_passes == 0
            assert fleet.holders() == (agreement.holder,)
            views = fleet.statuses()
            assert {v.holder for v in views.values() if v is not None} == {agreement.holder}

            pids = {n: p for n in fleet.nodes if (p := fleet.agent_pid(n)) is not None}
            assert sorted(pids) == sorted(fleet.nodes)
            before = {n: (sample_process(p), sample_links(lab, n, pid=p)) for n, p in pids.items()}
            time.sleep(WINDOW_S)
            after = {n: (sample_process(p), sample_links(lab, n, pid=p)) for n, p in pids.items()}
            for node in fleet.nodes:
                cpu = process_rate(before[node][0], after[node][0])
                links = link_rate(before[node][1], after[node][1])
                assert 0.0 <= cpu.cpu_fraction < 0.9, (node, cpu)
                assert 10 << 20 < cpu.rss_bytes < 1 << 30, (node, cpu)
                assert cpu.pss_bytes is None or 0 < cpu.pss_bytes <= cpu.rss_bytes
                assert set(after[node][1].ifaces) == {"eth0", "eth1"}
                # keepalive 200 ms on two links to two peers: a few packets/s at least.
                assert links.tx_pps > 2.0 and links.rx_pps > 2.0, (node, links)
                assert links.tx_pps < 500.0, (node, links)
            # The namespace-scan and netlink paths agree on the interface names.
            assert set(sample_links(lab, fleet.nodes[0]).ifaces) == {"eth0", "eth1"}
            assert len(sample_links(lab, "sw").ifaces) >= 6  # 2 bridges + 6 veth ends
            assert fleet.holders() == (agreement.holder,)
        finally:
            fleet.close()


@pytest.mark.netns
def test_pinned_neighbours_are_static_and_come_back_after_a_crash() -> None:
    """The fleet's static ARP entries (Lab.pin_neighbours): every other node on both
    networks, with its interface's MAC, permanent; a crash flushes the node's own, and
    pinning it again after the restore puts them back."""
    require_netns()
    sweep_stale()
    with Lab(fleet_hosts(3)) as lab:

        def permanent(node: str) -> dict[str, str]:
            out = lab.run(node, ["ip", "neigh", "show", "nud", "permanent"], uts=False).stdout
            return {f[0]: f[f.index("lladdr") + 1] for f in map(str.split, out.splitlines())}

        assert permanent("n0") == {}
        assert lab.pin_neighbours() == 3 * 2 * 2
        expected = {
            str(lab.address(other, ifname).ip): lab.mac(other, ifname)
            for other in ("n1", "n2")
            for ifname in ("eth0", "eth1")
        }
        assert permanent("n0") == expected
        lab.crash("n0")
        lab.restore("n0")
        assert permanent("n0") == {}
        assert lab.pin_neighbours(["n0"]) == 2 * 2
        assert permanent("n0") == expected
        assert len(permanent("n1")) == 4  # untouched by n0's crash
