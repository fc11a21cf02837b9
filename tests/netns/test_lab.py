"""The lab itself: topology, isolation of the two networks, nginx, crash, teardown, sweep."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from gossipha.lab import TUTORIAL_HOSTS, HostSpec, IfaceSpec, Lab, LabError, sweep_stale
from gossipha.lab.nginx import nginx_status, start_nginx, stop_nginx
from gossipha.lab.observe import fetch
from gossipha.lab.topology import namespace_pids
from gossipha.runtime.icmp import GroupReport, Pinger, PingEvent
from tests.netns.helpers import wait_until

pytestmark = pytest.mark.netns


async def reachable(lab: Lab, node: str, addresses: list[str]) -> dict[str, bool | None]:
    """Ping each address from `node` for a few rounds; final reachability per address."""
    events: list[PingEvent] = []
    pinger = Pinger.for_addresses(
        addresses, interval_s=0.05, deadping_s=0.25, sink=events.append, netns=lab.ns(node)
    )
    await pinger.run(max_rounds=8)
    result: dict[str, bool | None] = dict.fromkeys(addresses)
    for event in events:
        if isinstance(event, GroupReport):
            result[event.group] = event.reachable
    return result


def own_namespaces(prefix: str) -> list[str]:
    from pyroute2 import netns

    return [n for n in netns.listnetns() if n.startswith(prefix)]


def test_topology_addresses_and_hostnames(lab: Lab) -> None:
    assert sorted(lab.namespaces()) == sorted(
        lab.prefix + n for n in ("master", "slave", "ping", "client", "sw")
    )
    brief = lab.run("master", ["ip", "-4", "-br", "addr"]).stdout
    assert "192.168.171.50/24" in brief.split("eth0", 1)[1].splitlines()[0]
    assert "192.168.17.50/24" in brief.split("eth1", 1)[1].splitlines()[0]
    assert "lo" in brief
    assert "192.168.171.51/24" in lab.run("slave", ["ip", "-4", "-br", "addr"]).stdout
    assert lab.run("master", ["hostname"]).stdout.strip() == "masternginx"
    assert lab.run("slave", ["uname", "-n"]).stdout.strip() == "slavenginx"
    # The bridges live in the switch namespace, not in the root namespace.
    assert "br-svc" in lab.run("sw", ["ip", "-br", "link"], uts=False).stdout


async def test_networks_are_separate(lab: Lab) -> None:
    master, client, ping = await asyncio.gather(
        reachable(lab, "master", ["192.168.17.1", "192.168.17.51", "192.168.171.51"]),
        reachable(lab, "client", ["192.168.171.50", "192.168.171.51", "192.168.17.50"]),
        reachable(lab, "ping", ["192.168.17.50", "192.168.171.50"]),
    )
    assert master == {"192.168.17.1": True, "192.168.17.51": True, "192.168.171.51": True}
    assert client == {"192.168.171.50": True, "192.168.171.51": True, "192.168.17.50": False}
    assert ping == {"192.168.17.50": True, "192.168.171.50": False}


def test_nginx_serves_each_page(lab: Lab) -> None:
    master = start_nginx(lab, "master")
    slave = start_nginx(lab, "slave")
    try:
        assert fetch(lab, "client", "192.168.171.50") == "master"
        assert fetch(lab, "client", "192.168.171.51") == "slave"
        page = (master.root / "html" / "index.html").read_text().strip()
        assert page == "1111111111111master server"
        assert nginx_status(lab, master)
    finally:
        stop_nginx(lab, master)
        stop_nginx(lab, slave)
    assert not nginx_status(lab, master)
    assert fetch(lab, "client", "192.168.171.50", timeout_s=0.3) is None


def test_crash_kills_everything_and_downs_links(lab: Lab) -> None:
    tracked = lab.spawn("slave", ["sh", "-c", "sleep 60 & exec sleep 60"])
    lab.run("slave", ["ip", "addr", "add", "192.168.171.100/24", "dev", "eth0"])
    for _ in range(100):
        if len(lab.pids("slave")) >= 2:
            break
        time.sleep(0.02)
    assert len(lab.pids("slave")) >= 2
    killed = lab.crash("slave")
    assert tracked.pid in killed
    assert lab.pids("slave") == []
    links = lab.run("slave", ["ip", "-br", "link"]).stdout
    assert "eth0" in links and "DOWN" in links.split("eth0", 1)[1].splitlines()[0]
    addrs = lab.run("slave", ["ip", "-4", "-br", "addr"]).stdout
    assert "192.168.171.100" not in addrs and "192.168.171.51" in addrs
    lab.restore("slave")
    links = lab.run("slave", ["ip", "-br", "link"]).stdout
    assert "UP" in links.split("eth1", 1)[1].splitlines()[0]


async def test_nft_loss_and_link_down(lab: Lab) -> None:
    lab.nft_loss("master", "eth1", 100)
    try:
        assert (await reachable(lab, "master", ["192.168.17.1"]))["192.168.17.1"] is False
    finally:
        lab.nft_loss("master", "eth1", None)
    assert (await reachable(lab, "master", ["192.168.17.1"]))["192.168.17.1"] is True
    assert "gha_loss" not in lab.run("master", ["nft", "list", "tables"]).stdout
    # A UDP-port rule leaves everything else through (ICMP to the ping node here).
    lab.nft_loss("master", "eth1", 100, udp_port=694)
    try:
        rules = lab.run("master", ["nft", "list", "table", "inet", "gha_loss"]).stdout
        assert 'iifname "eth1" udp dport 694 drop' in rules
        assert (await reachable(lab, "master", ["192.168.17.1"]))["192.168.17.1"] is True
    finally:
        lab.nft_loss_clear("master")
    assert "gha_loss" not in lab.run("master", ["nft", "list", "tables"]).stdout
    lab.set_link("ping", "eth0", False)
    try:
        assert (await reachable(lab, "master", ["192.168.17.1"]))["192.168.17.1"] is False
    finally:
        lab.set_link("ping", "eth0", True)


def test_teardown_is_complete_and_repeatable() -> None:
    other = Lab()
    with other:
        proc = other.spawn("master", ["sleep", "60"])
        # `ip netns exec` enters the namespace just after fork: wait for it, bounded.
        wait_until("the process in its namespace", lambda: proc.pid in other.pids("master"), 5.0)
    assert own_namespaces(other.prefix) == []
    assert proc.poll() is not None
    assert not other.workdir.exists() or not any(other.workdir.iterdir())
    other.teardown()  # a second teardown is harmless
    assert own_namespaces(other.prefix) == []


def test_half_built_lab_is_removed() -> None:
    bad = (
        *TUTORIAL_HOSTS,
        HostSpec(
            "broken",
            "broken",
            (IfaceSpec("eth0-too-long-name", TUTORIAL_HOSTS[0].ifaces[0].address, "br-svc"),),
        ),
    )
    half = Lab(bad)
    with pytest.raises(Exception):  # noqa: B017 - netlink's own error type
        half.build()
    assert own_namespaces(half.prefix) == []


def test_sweep_removes_stale_and_spares_live(lab: Lab) -> None:
    prefix = f"gha-stale{secrets.token_hex(2)}-"
    stale = Lab(prefix=prefix)
    stale.build()
    leftover = stale.spawn("client", ["sleep", "60"])
    # `ip netns exec` enters the namespace just after fork: the sweep kills by namespace.
    wait_until(
        "the leftover in its namespace",
        lambda: leftover.pid in namespace_pids(prefix + "client"),
        5.0,
    )
    # The owner "dies" without teardown: only the sweep can clean up.
    removed = sweep_stale(prefix)
    assert sorted(removed) == sorted(
        prefix + n for n in ("master", "slave", "ping", "client", "sw")
    )
    assert own_namespaces(prefix) == []
    assert leftover.wait(timeout=5) is not None
    assert namespace_pids(prefix + "client") == []
    # A live lab (this module's, owner = this process) survives a general sweep.
    sweep_stale()
    assert len(lab.namespaces()) == 5
    with pytest.raises(ValueError):
        sweep_stale("other-")
    stale.teardown()


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError):
        Lab(prefix="nope-")
    with pytest.raises(KeyError):
        Lab().ns("nobody")
    with pytest.raises(LabError):  # not built: its namespaces do not exist
        Lab().iptables("master", ["-L"])
