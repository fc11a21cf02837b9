"""The floating address on this host: add/remove/check it with netlink, announce it, probe it.

Every action is idempotent (adding a held address or removing a missing one is a no-op) so
the runtime can repeat it after a crash or a partial failure. Netlink work is blocking, so
it runs in a thread with a timeout. A `VipResource` without interface/prefix is placed like
Heartbeat's findif: on the interface whose subnet holds the address, with that prefix.
`netns` (a named namespace) exists for the lab and tests; the agent passes None.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from gossipha.aio import DatagramReader, within
from gossipha.config.model import IPAddress, VipResource
from gossipha.resources import arp, rtnl
from gossipha.resources.rtnl import NetlinkError, Rtnl

log = logging.getLogger(__name__)

NETLINK_TIMEOUT_S = 5.0
IFA_F_NODAD = 0x02
IFNAMSIZ = 16
_T = TypeVar("_T")


class VipError(Exception):
    """A VIP action failed (no interface for the address, netlink refused, timeout).

    The runtime reports it to the core as a resource failure; it never escapes the loop.
    """


@dataclass(frozen=True, slots=True)
class VipPlacement:
    """Where a VIP goes on this host, resolved from the resource and the live interfaces."""

    address: IPAddress
    prefix: int
    interface: str
    index: int
    label: str | None
    broadcast: IPAddress | None


@dataclass(frozen=True, slots=True)
class ForeignClaim:
    """Another MAC answered for (or announced, or probed) the VIP while we hold it."""

    address: IPAddress
    mac: str
    at_s: float


@dataclass(frozen=True, slots=True)
class VipLost:
    """The VIP disappeared from the interface behind our back (repair it)."""

    address: IPAddress
    at_s: float


VipEvent = ForeignClaim | VipLost


def find_interface(
    address: IPAddress,
    configured: Iterable[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]],
) -> tuple[str, int] | None:
    """(interface, prefix) of the most specific configured subnet holding `address` (pure).

    Host routes (/32, /128) are skipped so a VIP already held does not place itself.
    """
    best: tuple[str, int] | None = None
    for ifname, iface in configured:
        net = iface.network
        if net.version != address.version or net.prefixlen == net.max_prefixlen:
            continue
        if address in net and (best is None or net.prefixlen > best[1]):
            best = (ifname, net.prefixlen)
    return best


def _open(netns: str | None) -> Rtnl:
    return Rtnl(netns)


def _family(address: IPAddress) -> int:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def _configured(
    ipr: Rtnl, family: int, *, names: bool = True
) -> Iterator[tuple[int, str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
    """(index, ifname, ip_interface) of every address of `family` (ifname "?" without
    `names`: one netlink dump fewer for callers that only compare indexes)."""
    named = {link.index: str(link.name) for link in ipr.links()} if names else {}
    for msg in ipr.addresses(family):
        if msg.address is None:
            continue
        yield (
            msg.index,
            named.get(msg.index, "?"),
            ipaddress.ip_interface(f"{msg.address}/{msg.prefixlen}"),
        )


def plan_placement(
    vip: VipResource,
    configured: Iterable[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]],
    index_of: Callable[[str], int | None],
) -> VipPlacement:
    """Where `vip` goes, given this host's (interface, address) pairs of its family and its
    interface indexes by name (pure: `check-config` asks the same question). VipError
    when the runtime could not place it: no subnet holds it (findif), no prefix, no
    such interface, a bad label."""
    interface, prefix = vip.interface, vip.prefix
    if interface is None or prefix is None:
        found = find_interface(vip.address, configured)
        if found is None and interface is None:
            raise VipError(f"{vip.address}: no interface has a subnet holding it (findif)")
        if interface is None:
            assert found is not None
            interface = found[0]
        if prefix is None:
            prefix = found[1] if found is not None and found[0] == interface else None
        if prefix is None:
            raise VipError(f"{vip.address}: no prefix given and none found on {interface}")
    index = index_of(interface)
    if index is None:
        raise VipError(f"{vip.address}: no interface {interface}")
    label = vip.label
    if label is not None and (
        len(label) >= IFNAMSIZ or not (label == interface or label.startswith(interface + ":"))
    ):
        raise VipError(f"{vip.address}: label {label!r} must be {interface} or {interface}:NAME")
    broadcast = vip.broadcast
    if broadcast is None and vip.address.version == 4 and prefix < 31:
        broadcast = ipaddress.ip_network(f"{vip.address}/{prefix}", strict=False).broadcast_address
    return VipPlacement(vip.address, prefix, interface, index, label, broadcast)


def _place(ipr: Rtnl, vip: VipResource) -> VipPlacement:
    configured = [(name, iface) for _i, name, iface in _configured(ipr, _family(vip.address))]
    return plan_placement(vip, configured, ipr.link_index)


def _held_on(ipr: Rtnl, address: IPAddress, index: int | None = None) -> list[tuple[int, int]]:
    """(index, prefixlen) of each interface holding `address` (only `index` if given)."""
    found: list[tuple[int, int]] = []
    for idx, _name, iface in _configured(ipr, _family(address), names=False):
        if iface.ip == address and (index is None or idx == index):
            found.append((idx, iface.network.prefixlen))
    return found


def configured_addresses(
    netns: str | None = None,
) -> list[tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
    """(interface, address/prefix) of every IPv4 and IPv6 address here, as `plan_placement`
    takes them (blocking)."""
    with _open(netns) as ipr:
        return [
            (name, iface)
            for family in (socket.AF_INET, socket.AF_INET6)
            for _index, name, iface in _configured(ipr, family)
        ]


def place_sync(vip: VipResource, netns: str | None = None) -> VipPlacement:
    with _open(netns) as ipr:
        return _place(ipr, vip)


def add_vip_sync(vip: VipResource, netns: str | None = None) -> VipPlacement:
    """Blocking `add_vip`."""
    with _open(netns) as ipr:
        placement = _place(ipr, vip)
        if _held_on(ipr, vip.address, placement.index):
            return placement
        v4 = vip.address.version == 4
        try:
            ipr.add_address(
                placement.index,
                _family(vip.address),
                str(vip.address),
                placement.prefix,
                label=placement.label if v4 else None,
                broadcast=str(placement.broadcast) if v4 and placement.broadcast else None,
                # usable at once; the probe already checked
                flags=0 if v4 else IFA_F_NODAD,
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise VipError(f"{vip.address}: add on {placement.interface}: {exc}") from exc
        return placement


def remove_vip_sync(vip: VipResource, netns: str | None = None) -> bool:
    """Blocking `remove_vip`; True if an address was removed."""
    with _open(netns) as ipr:
        index: int | None = None
        if vip.interface is not None:
            index = ipr.link_index(vip.interface)
            if index is None:
                return False
        removed = False
        for idx, prefixlen in _held_on(ipr, vip.address, index):
            try:
                ipr.del_address(idx, _family(vip.address), str(vip.address), prefixlen)
                removed = True
            except NetlinkError as exc:
                if exc.code not in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
                    raise VipError(f"{vip.address}: remove: {exc}") from exc
        return removed


def has_vip_sync(vip: VipResource, netns: str | None = None) -> bool:
    with _open(netns) as ipr:
        index: int | None = None
        if vip.interface is not None:
            index = ipr.link_index(vip.interface)
            if index is None:
                return False
        return bool(_held_on(ipr, vip.address, index))


async def _blocking(fn: Callable[..., _T], *args: Any, timeout_s: float) -> _T:
    try:
        return await within(asyncio.to_thread(fn, *args), timeout_s)
    except TimeoutError as exc:
        raise VipError(f"{fn.__name__} timed out after {timeout_s}s") from exc
    except OSError as exc:  # NetlinkError is one
        raise VipError(f"{fn.__name__}: {exc}") from exc


async def add_vip(
    vip: VipResource, *, netns: str | None = None, timeout_s: float = NETLINK_TIMEOUT_S
) -> VipPlacement:
    """Configure the VIP (with its label); a no-op if it is already on that interface."""
    return await _blocking(add_vip_sync, vip, netns, timeout_s=timeout_s)


async def remove_vip(
    vip: VipResource, *, netns: str | None = None, timeout_s: float = NETLINK_TIMEOUT_S
) -> bool:
    """Remove the VIP wherever it is (only its interface if given); a no-op if absent."""
    return await _blocking(remove_vip_sync, vip, netns, timeout_s=timeout_s)


async def has_vip(
    vip: VipResource, *, netns: str | None = None, timeout_s: float = NETLINK_TIMEOUT_S
) -> bool:
    return await _blocking(has_vip_sync, vip, netns, timeout_s=timeout_s)


async def place(
    vip: VipResource, *, netns: str | None = None, timeout_s: float = NETLINK_TIMEOUT_S
) -> VipPlacement:
    """Resolve interface, prefix and label without changing anything."""
    return await _blocking(place_sync, vip, netns, timeout_s=timeout_s)


async def announce(
    vip: VipResource,
    count: int = 5,
    interval_s: float = 0.2,
    *,
    netns: str | None = None,
) -> int:
    """Tell the segment the VIP moved here: gratuitous ARP (IPv4) or unsolicited NA (IPv6)."""
    placement = await place(vip, netns=netns)
    try:
        if isinstance(vip.address, ipaddress.IPv4Address):
            return await arp.send_gratuitous(
                vip.address, placement.interface, count=count, interval_s=interval_s, netns=netns
            )
        mac = await _blocking(_mac_sync, placement.index, netns, timeout_s=NETLINK_TIMEOUT_S)
        return await arp.send_unsolicited_na(
            vip.address,
            placement.interface,
            placement.index,
            mac,
            count=count,
            interval_s=interval_s,
            netns=netns,
        )
    except OSError as exc:
        raise VipError(f"{vip.address}: announce on {placement.interface}: {exc}") from exc


def _mac_sync(index: int, netns: str | None) -> str:
    with _open(netns) as ipr:
        for link in ipr.links():
            if link.index == index:
                return str(link.mac)
    raise VipError(f"no interface with index {index}")


async def probe(
    vip: VipResource,
    count: int = 3,
    interval_s: float = 0.05,
    *,
    wait_s: float | None = None,
    netns: str | None = None,
) -> str | None:
    """RFC 5227 duplicate-address probe before claiming: the MAC of a current holder, or None.

    IPv6 is not probed (None): duplicate address detection is the kernel's job there.
    """
    if not isinstance(vip.address, ipaddress.IPv4Address):
        return None
    placement = await place(vip, netns=netns)
    try:
        return await arp.arp_probe(
            vip.address,
            placement.interface,
            count=count,
            interval_s=interval_s,
            wait_s=wait_s,
            netns=netns,
        )
    except OSError as exc:
        raise VipError(f"{vip.address}: probe on {placement.interface}: {exc}") from exc


class VipWatcher:
    """While we hold the VIP: alarms on other MACs claiming it, and on it being removed.

    Passive listening catches announces and probes; unicast replies to clients are not
    seen on a switched segment, so it also probes the address every `probe_every_s`
    (another holder answers our probe). The address is re-checked when the kernel
    reports an address change (rtnl.address_monitor), and every `poll_s` regardless
    (only then, if the monitor cannot be opened). Each foreign MAC is reported at most
    once per `repeat_s`. IPv4 claims only.
    """

    def __init__(
        self,
        vip: VipResource,
        sink: Callable[[VipEvent], None],
        *,
        netns: str | None = None,
        poll_s: float = 10.0,
        probe_every_s: float | None = 1.0,
        repeat_s: float = 5.0,
    ) -> None:
        self.vip = vip
        self._sink = sink
        self._netns = netns
        self.poll_s = poll_s
        self.probe_every_s = probe_every_s
        self.repeat_s = repeat_s
        self._held = False
        self._reported: dict[str, float] = {}

    async def run(self, *, duration_s: float | None = None) -> None:
        """Watch until cancelled or `duration_s` has passed."""
        loop = asyncio.get_running_loop()
        self._held = await has_vip(self.vip, netns=self._netns)
        placement = await place(self.vip, netns=self._netns)
        sock: arp.ArpSocket | None = None
        if isinstance(self.vip.address, ipaddress.IPv4Address):
            sock = await arp.ArpSocket.open(placement.interface, netns=self._netns)
        try:
            async with asyncio.timeout(duration_s):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._poll(loop))
                    if sock is not None:
                        tg.create_task(self._listen(sock, loop))
                        if self.probe_every_s is not None:
                            tg.create_task(self._probe(sock))
        except TimeoutError:
            if duration_s is None:
                raise
        finally:
            if sock is not None:
                sock.close()

    async def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        changed = asyncio.Event()
        try:
            monitor: socket.socket | None = await within(
                asyncio.to_thread(rtnl.address_monitor, self._netns), NETLINK_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            log.warning("address monitor unavailable; polling every %ss: %s", self.poll_s, exc)
            monitor = None
        with contextlib.ExitStack() as stack:
            if monitor is not None:
                stack.callback(monitor.close)
                stack.enter_context(
                    DatagramReader(
                        monitor,
                        rtnl.RECV_BYTES,
                        lambda _data, _addr: changed.set(),
                        on_error=lambda _exc: changed.set(),  # an overrun: changes lost
                    )
                )
            while True:
                changed.clear()  # before the check: a change during it is seen next
                held = await has_vip(self.vip, netns=self._netns)
                if self._held and not held:
                    self._sink(VipLost(self.vip.address, loop.time()))
                self._held = held
                with contextlib.suppress(TimeoutError):
                    await within(changed.wait(), self.poll_s)

    async def _listen(self, sock: arp.ArpSocket, loop: asyncio.AbstractEventLoop) -> None:
        assert isinstance(self.vip.address, ipaddress.IPv4Address)
        async for packet in sock.receive():
            mac = arp.claimant(packet, self.vip.address, sock.mac)
            if mac is None or not self._held:
                continue
            now_s = loop.time()
            last_s = self._reported.get(mac)
            if last_s is not None and now_s - last_s < self.repeat_s:
                continue
            self._reported[mac] = now_s
            self._sink(ForeignClaim(self.vip.address, mac, now_s))

    async def _probe(self, sock: arp.ArpSocket) -> None:
        assert isinstance(self.vip.address, ipaddress.IPv4Address) and self.probe_every_s
        while True:
            if self._held:
                sock.send(arp.probe_packet(sock.mac, self.vip.address))
            await asyncio.sleep(self.probe_every_s)
