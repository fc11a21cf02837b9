"""The VIP adapter on real interfaces: label, idempotence, announce, probe, watcher."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterator

import pytest

from gossipha.config.model import VipResource
from gossipha.lab import Lab
from gossipha.lab.nginx import start_nginx
from gossipha.lab.observe import fetch
from gossipha.resources import arp
from gossipha.resources.vip import (
    ForeignClaim,
    VipError,
    VipEvent,
    VipLost,
    VipWatcher,
    add_vip,
    announce,
    find_interface,
    has_vip,
    place,
    probe,
    remove_vip,
)

ADDRESS = ipaddress.IPv4Address("192.168.171.100")
VIP = VipResource(ADDRESS, 24, "eth0", "eth0:0")
BARE = VipResource(ADDRESS)  # placed by findif


@pytest.fixture(scope="module")
def served(lab: Lab) -> Iterator[Lab]:
    start_nginx(lab, "master")
    start_nginx(lab, "slave")
    yield lab


@pytest.fixture
async def clean(served: Lab) -> AsyncIterator[Lab]:
    """No node holds the VIP before or after a test."""
    for node in ("master", "slave"):
        await remove_vip(VIP, netns=served.ns(node))
    yield served
    for node in ("master", "slave"):
        await remove_vip(VIP, netns=served.ns(node))


def show_eth0(lab: Lab, node: str) -> str:
    return lab.run(node, ["ip", "-4", "addr", "show", "dev", "eth0"]).stdout


@pytest.mark.netns
async def test_add_is_labelled_and_idempotent(clean: Lab) -> None:
    m = clean.ns("master")
    placed = await add_vip(VIP, netns=m)
    assert (placed.interface, placed.prefix, placed.label) == ("eth0", 24, "eth0:0")
    again = await add_vip(VIP, netns=m)
    assert again == placed
    shown = show_eth0(clean, "master")
    assert "inet 192.168.171.100/24 brd 192.168.171.255 scope global secondary eth0:0" in shown
    assert shown.count("192.168.171.100") == 1
    assert await has_vip(VIP, netns=m)
    assert not await has_vip(VIP, netns=clean.ns("slave"))


@pytest.mark.netns
async def test_remove_is_idempotent(clean: Lab) -> None:
    m = clean.ns("master")
    await add_vip(VIP, netns=m)
    assert await remove_vip(VIP, netns=m) is True
    assert await remove_vip(VIP, netns=m) is False
    assert "192.168.171.100" not in show_eth0(clean, "master")
    assert await remove_vip(BARE, netns=m) is False


@pytest.mark.netns
async def test_findif_places_bare_address(clean: Lab) -> None:
    placed = await place(BARE, netns=clean.ns("slave"))
    assert (placed.interface, placed.prefix, placed.label) == ("eth0", 24, None)
    with pytest.raises(VipError, match="findif"):
        await place(VipResource(ipaddress.IPv4Address("10.1.2.3")), netns=clean.ns("slave"))
    with pytest.raises(VipError, match="label"):
        await add_vip(VipResource(ADDRESS, 24, "eth0", "eth1:0"), netns=clean.ns("slave"))


def test_find_interface_is_pure() -> None:
    configured = [
        ("eth0", ipaddress.ip_interface("192.168.171.50/24")),
        ("eth0", ipaddress.ip_interface("192.168.171.100/32")),
        ("eth9", ipaddress.ip_interface("192.168.0.1/16")),
        ("eth1", ipaddress.ip_interface("192.168.17.50/24")),
    ]
    assert find_interface(ADDRESS, configured) == ("eth0", 24)
    assert find_interface(ipaddress.IPv4Address("192.168.5.5"), configured) == ("eth9", 16)
    assert find_interface(ipaddress.IPv4Address("10.0.0.1"), configured) is None


@pytest.mark.netns
async def test_client_follows_vip_after_announce(clean: Lab) -> None:
    m, s = clean.ns("master"), clean.ns("slave")
    await add_vip(VIP, netns=m)
    assert await announce(VIP, 2, 0.02, netns=m) == 2
    assert await asyncio.to_thread(fetch, clean, "client", str(ADDRESS)) == "master"
    # Move it: the client's ARP cache still names master until slave announces.
    await remove_vip(VIP, netns=m)
    await add_vip(VIP, netns=s)
    await announce(VIP, 3, 0.02, netns=s)
    who = None
    for _ in range(10):
        who = await asyncio.to_thread(fetch, clean, "client", str(ADDRESS), timeout_s=0.3)
        if who == "slave":
            break
    assert who == "slave"


@pytest.mark.netns
async def test_probe_sees_holder_and_free_address(clean: Lab) -> None:
    m, s = clean.ns("master"), clean.ns("slave")
    assert await probe(VIP, 2, 0.02, netns=s) is None
    await add_vip(VIP, netns=m)
    assert await probe(VIP, 2, 0.02, netns=s) == clean.mac("master", "eth0")
    assert await probe(BARE, 1, 0.02, netns=s) == clean.mac("master", "eth0")


@pytest.mark.netns
async def test_watcher_reports_foreign_mac_and_removal(clean: Lab) -> None:
    m, s = clean.ns("master"), clean.ns("slave")
    await add_vip(VIP, netns=m)
    events: list[VipEvent] = []
    watcher = VipWatcher(VIP, events.append, netns=m, poll_s=0.05, probe_every_s=0.1)
    task = asyncio.create_task(watcher.run(duration_s=3.0))
    await asyncio.sleep(0.2)
    # Split brain: slave takes the address too and announces it.
    await add_vip(VIP, netns=s)
    await announce(VIP, 1, 0.0, netns=s)
    for _ in range(40):
        if any(isinstance(e, ForeignClaim) for e in events):
            break
        await asyncio.sleep(0.05)
    await remove_vip(VIP, netns=m)
    for _ in range(40):
        if any(isinstance(e, VipLost) for e in events):
            break
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    claims = [e for e in events if isinstance(e, ForeignClaim)]
    assert claims and {c.mac for c in claims} == {clean.mac("slave", "eth0")}
    assert any(isinstance(e, VipLost) for e in events)


@pytest.mark.netns
async def test_watcher_hears_a_removal_from_the_kernel_not_from_its_poll(clean: Lab) -> None:
    """The address is re-checked on the kernel's address-change notice: a removal is seen
    at once, though the periodic re-check is a minute away."""
    m = clean.ns("master")
    await add_vip(VIP, netns=m)
    events: list[VipEvent] = []
    watcher = VipWatcher(VIP, events.append, netns=m, poll_s=60.0, probe_every_s=None)
    task = asyncio.create_task(watcher.run(duration_s=5.0))
    try:
        await asyncio.sleep(0.3)  # the first check found it held
        removed_s = asyncio.get_running_loop().time()
        await remove_vip(VIP, netns=m)
        for _ in range(40):
            if any(isinstance(e, VipLost) for e in events):
                break
            await asyncio.sleep(0.025)
        (lost,) = [e for e in events if isinstance(e, VipLost)]
        assert lost.at_s - removed_s < 1.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.netns
async def test_watcher_probe_finds_silent_holder(clean: Lab) -> None:
    """The other holder never announces; the watcher's own probe makes it answer."""
    m, s = clean.ns("master"), clean.ns("slave")
    await add_vip(VIP, netns=m)
    await add_vip(VIP, netns=s)
    events: list[VipEvent] = []
    watcher = VipWatcher(VIP, events.append, netns=m, poll_s=0.1, probe_every_s=0.1)
    await watcher.run(duration_s=0.5)
    assert [e.mac for e in events if isinstance(e, ForeignClaim)] == [clean.mac("slave", "eth0")]


def test_arp_frames_round_trip() -> None:
    packet = arp.gratuitous("02:00:00:00:00:01", ADDRESS)
    frame = arp.build_frame(packet)
    assert len(frame) == 60 and frame[:6] == b"\xff" * 6
    assert arp.parse_frame(frame) == packet
    assert arp.parse_frame(frame[:20]) is None
    assert arp.claimant(packet, ADDRESS, "02:00:00:00:00:01") is None
    assert arp.claimant(packet, ADDRESS, "02:00:00:00:00:02") == "02:00:00:00:00:01"
    probe_pkt = arp.probe_packet("02:00:00:00:00:03", ADDRESS)
    assert arp.claimant(probe_pkt, ADDRESS, "02:00:00:00:00:02") == "02:00:00:00:00:03"
    other = arp.ArpPacket(
        1, "02:00:00:00:00:04", ipaddress.IPv4Address("192.168.171.10"), arp.ZERO_MAC, ADDRESS
    )
    assert arp.claimant(other, ADDRESS, "02:00:00:00:00:02") is None


@pytest.mark.netns
async def test_ipv6_vip_add_announce_remove(served: Lab) -> None:
    m = served.ns("master")
    served.run("master", ["ip", "-6", "addr", "replace", "fd00:171::50/64", "dev", "eth0", "nodad"])
    v6 = VipResource(ipaddress.IPv6Address("fd00:171::100"))
    try:
        placed = await add_vip(v6, netns=m)
        assert (placed.interface, placed.prefix) == ("eth0", 64)
        assert await has_vip(v6, netns=m)
        assert await announce(v6, 2, 0.01, netns=m) == 2
        assert await probe(v6, netns=m) is None  # IPv6 DAD is the kernel's job
    finally:
        assert await remove_vip(v6, netns=m) is True
        served.run("master", ["ip", "-6", "addr", "del", "fd00:171::50/64", "dev", "eth0"])
    assert not await has_vip(v6, netns=m)
