"""ARP on the wire for a floating address: gratuitous announce, RFC 5227 probe, watching.

Frames go through an AF_PACKET socket bound to one interface, so they leave exactly there
whatever the routing table says. Packet build/parse and the "does this frame claim the
address" rule are pure functions; the socket helpers are async (sending is a non-blocking
`send`, receiving goes through the event loop). IPv6 gets an unsolicited neighbour
advertisement from a raw ICMPv6 socket (`send_unsolicited_na`), the IPv6 analogue.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gossipha.aio import within

ETH_P_ARP = 0x0806
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # linux/if_packet.h, since 4.20
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
ANY_IP = ipaddress.IPv4Address("0.0.0.0")
_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
# Ethernet minimum payload; short frames are padded so every NIC accepts them.
_MIN_FRAME_BYTES = 60
SOCKET_OPEN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP packet; MACs in lower-case colon form."""

    op: int
    sender_mac: str
    sender_ip: ipaddress.IPv4Address
    target_mac: str
    target_ip: ipaddress.IPv4Address


def mac_bytes(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def gratuitous(mac: str, address: ipaddress.IPv4Address) -> ArpPacket:
    """The request form of a gratuitous ARP: sender = target = the address."""
    return ArpPacket(ARPOP_REQUEST, mac, address, ZERO_MAC, address)


def probe_packet(mac: str, address: ipaddress.IPv4Address) -> ArpPacket:
    """An RFC 5227 probe: sender IP 0.0.0.0 so no neighbour caches are changed."""
    return ArpPacket(ARPOP_REQUEST, mac, ANY_IP, ZERO_MAC, address)


def build_frame(packet: ArpPacket, dst_mac: str = BROADCAST_MAC) -> bytes:
    eth = _ETH.pack(mac_bytes(dst_mac), mac_bytes(packet.sender_mac), ETH_P_ARP)
    arp = _ARP.pack(
        ARPHRD_ETHER,
        0x0800,
        6,
        4,
        packet.op,
        mac_bytes(packet.sender_mac),
        packet.sender_ip.packed,
        mac_bytes(packet.target_mac),
        packet.target_ip.packed,
    )
    return (eth + arp).ljust(_MIN_FRAME_BYTES, b"\0")


def parse_frame(frame: bytes) -> ArpPacket | None:
    """The ARP packet in an Ethernet frame, or None for anything else (never raises)."""
    if len(frame) < _ETH.size + _ARP.size:
        return None
    _dst, _src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_ARP:
        return None
    hrd, pro, hln, pln, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, _ETH.size)
    if hrd != ARPHRD_ETHER or pro != 0x0800 or hln != 6 or pln != 4:
        return None
    return ArpPacket(
        op,
        mac_str(sha),
        ipaddress.IPv4Address(spa),
        mac_str(tha),
        ipaddress.IPv4Address(tpa),
    )


def claimant(packet: ArpPacket, address: ipaddress.IPv4Address, own_mac: str) -> str | None:
    """The MAC of another host claiming `address` in this packet, else None.

    A claim is any reply or announce with the address as sender, or (RFC 5227 2.1.1)
    a probe for the address from someone else, who is about to take it.
    """
    if packet.sender_mac == own_mac.lower():
        return None
    if packet.sender_ip == address:
        return packet.sender_mac
    if packet.op == ARPOP_REQUEST and packet.sender_ip == ANY_IP and packet.target_ip == address:
        return packet.sender_mac
    return None


class ArpSocket:
    """An AF_PACKET socket for ARP frames on one interface; `mac` is that interface's MAC."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.interface: str = sock.getsockname()[0]
        self.mac: str = mac_str(sock.getsockname()[4])

    @classmethod
    async def open(cls, interface: str, *, netns: str | None = None) -> ArpSocket:
        sock = await within(
            asyncio.to_thread(_open_packet_socket, interface, netns), SOCKET_OPEN_TIMEOUT_S
        )
        return cls(sock)

    def send(self, packet: ArpPacket, dst_mac: str = BROADCAST_MAC) -> None:
        """Queue one frame (non-blocking; a full queue drops it like a lossy wire would)."""
        with contextlib.suppress(BlockingIOError):
            self._sock.send(build_frame(packet, dst_mac))

    async def receive(self) -> AsyncIterator[ArpPacket]:
        """ARP packets received on the interface (our own outgoing frames skipped)."""
        loop = asyncio.get_running_loop()
        while True:
            frame, addr = await loop.sock_recvfrom(self._sock, 1514)
            if addr[2] == PACKET_OUTGOING:
                continue
            packet = parse_frame(frame)
            if packet is not None:
                yield packet

    def close(self) -> None:
        self._sock.close()

    async def __aenter__(self) -> ArpSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _open_packet_socket(interface: str, netns: str | None) -> socket.socket:
    proto = socket.htons(ETH_P_ARP)
    if netns is None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, proto)
    else:
        from pyroute2 import netns as pr_netns

        sock = pr_netns.create_socket(
            netns, family=socket.AF_PACKET, socket_type=socket.SOCK_RAW, proto=proto, flags=0
        )
    try:
        sock.bind((interface, ETH_P_ARP))
        sock.setblocking(False)
        # Our own frames (the watcher's probe every second) need not wake the loop to be
        # skipped by `receive`; kernels before 4.20 lack the option and `receive` skips them.
        with contextlib.suppress(OSError):
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except BaseException:
        sock.close()
        raise
    return sock


async def send_gratuitous(
    address: ipaddress.IPv4Address,
    interface: str,
    *,
    count: int,
    interval_s: float,
    netns: str | None = None,
) -> int:
    """Broadcast `count` gratuitous ARPs spaced by `interval_s`; returns how many were sent."""
    assert 0 < count <= 1000 and interval_s >= 0
    async with await ArpSocket.open(interface, netns=netns) as arp:
        for i in range(count):
            if i:
                await asyncio.sleep(interval_s)
            arp.send(gratuitous(arp.mac, address))
    return count


async def arp_probe(
    address: ipaddress.IPv4Address,
    interface: str,
    *,
    count: int,
    interval_s: float,
    wait_s: float | None = None,
    netns: str | None = None,
) -> str | None:
    """RFC 5227 probe: the MAC of a host using `address`, or None if nobody answered.

    Sends `count` probes spaced by `interval_s`, then listens `wait_s` more (default:
    one interval, at least 0.1 s). Returns at the first claim seen.
    """
    assert 0 < count <= 1000 and interval_s >= 0
    listen_s = max(interval_s, 0.1) if wait_s is None else wait_s
    async with await ArpSocket.open(interface, netns=netns) as arp:

        async def first_claim() -> str | None:
            async for packet in arp.receive():
                mac = claimant(packet, address, arp.mac)
                if mac is not None:
                    return mac
            return None

        async def send_probes() -> None:
            for i in range(count):
                if i:
                    await asyncio.sleep(interval_s)
                arp.send(probe_packet(arp.mac, address))
            await asyncio.sleep(listen_s)

        listener = asyncio.ensure_future(first_claim())
        sender = asyncio.ensure_future(send_probes())
        try:
            done, _ = await asyncio.wait({listener, sender}, return_when=asyncio.FIRST_COMPLETED)
            if listener in done:
                return listener.result()
            return None
        finally:
            for task in (listener, sender):
                task.cancel()
            await asyncio.gather(listener, sender, return_exceptions=True)


# ---- IPv6: unsolicited neighbour advertisement (RFC 4861 7.2.6) ----

ND_NEIGHBOR_ADVERT = 136
_NA_OVERRIDE = 0x20000000
_OPT_TARGET_LLADDR = 2
ALL_NODES = "ff02::1"


def build_unsolicited_na(address: ipaddress.IPv6Address, mac: str) -> bytes:
    """An NA with the Override flag and our link-layer address (kernel fills the checksum)."""
    header = struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, _NA_OVERRIDE)
    option = struct.pack("!BB", _OPT_TARGET_LLADDR, 1) + mac_bytes(mac)
    return header + address.packed + option


async def send_unsolicited_na(
    address: ipaddress.IPv6Address,
    interface: str,
    ifindex: int,
    mac: str,
    *,
    count: int,
    interval_s: float,
    netns: str | None = None,
) -> int:
    """Advertise `address` at `mac` to all nodes, `count` times spaced by `interval_s`.

    `ifindex` is the interface's index in its own namespace (the scope of ff02::1).
    """
    assert 0 < count <= 1000 and interval_s >= 0
    sock = await within(
        asyncio.to_thread(_open_icmp6_socket, interface, netns), SOCKET_OPEN_TIMEOUT_S
    )
    try:
        packet = build_unsolicited_na(address, mac)
        for i in range(count):
            if i:
                await asyncio.sleep(interval_s)
            with contextlib.suppress(BlockingIOError):
                sock.sendto(packet, (ALL_NODES, 0, 0, ifindex))
    finally:
        sock.close()
    return count


def _open_icmp6_socket(interface: str, netns: str | None) -> socket.socket:
    family, kind, proto = socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6
    if netns is None:
        sock = socket.socket(family, kind, proto)
    else:
        from pyroute2 import netns as pr_netns

        sock = pr_netns.create_socket(netns, family=family, socket_type=kind, proto=proto, flags=0)
    try:
        sock.setsockopt(
            socket.SOL_SOCKET, getattr(socket, "SO_BINDTODEVICE", 25), interface.encode()
        )
        # Neighbour discovery is only accepted with hop limit 255 (RFC 4861 7.1.2).
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
