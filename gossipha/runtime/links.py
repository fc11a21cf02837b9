"""Heartbeat links: one UDP socket per configured link, bound to its interface.

ucast sends to each peer address, bcast to the interface's broadcast address, mcast to the
group (joined on the interface). SO_BINDTODEVICE keeps redundant links on separate paths:
a packet that arrived on eth1's socket came in on eth1. Received datagrams go to `sink`
untouched (link name, bytes); decoding and verifying is the agent's job. Sending never
blocks: a datagram that cannot be queued at once is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gossipha.aio import within
from gossipha.config.model import IPAddress, Link, LinkKind, Node

log = logging.getLogger(__name__)

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
SIOCGIFBRDADDR = 0x8919
SIOCGIFADDR = 0x8915
RECV_BUFFER_BYTES = 1 << 20
# Datagrams waiting in the transport beyond this are dropped, not queued (never unbounded).
MAX_WRITE_BUFFER_BYTES = 64 * 1024

Sink = Callable[[str, bytes, tuple[str, int]], None]


class LinkError(Exception):
    """A link could not be opened (no such interface, port in use, permission)."""


def _ifreq_address(sock: socket.socket, interface: str, request: int) -> str | None:
    try:
        raw = fcntl.ioctl(sock.fileno(), request, struct.pack("256s", interface.encode()[:15]))
    except OSError:
        return None
    return socket.inet_ntoa(raw[20:24])


def broadcast_address(interface: str) -> IPAddress:
    """The IPv4 broadcast address of `interface` (255.255.255.255 when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        found = _ifreq_address(sock, interface, SIOCGIFBRDADDR)
    if found is None or found == "0.0.0.0":
        return ipaddress.IPv4Address("255.255.255.255")
    return ipaddress.ip_address(found)


def destinations(link: Link, to: str | None, nodes: Sequence[Node]) -> tuple[IPAddress, ...]:
    """Where a packet for node `to` goes on `link` (None: everyone on the link).

    ucast: the node's own address on this link if the config names one, else every peer
    address of the link (Heartbeat's ucast lines do not say which node is where).
    """
    if link.kind is LinkKind.UCAST:
        if to is not None:
            for node in nodes:
                if node.name == to:
                    mine = [a for name, a in node.addresses if name == link.name]
                    if mine:
                        return tuple(mine)
        return link.peers
    if link.kind is LinkKind.MCAST:
        assert link.group is not None, "validated: mcast link has a group"
        return (link.group,)
    return (broadcast_address(link.interface),)


def _family(link: Link) -> int:
    addrs: list[IPAddress] = list(link.peers)
    if link.group is not None:
        addrs.append(link.group)
    return socket.AF_INET6 if addrs and addrs[0].version == 6 else socket.AF_INET


def bind_socket(link: Link, *, unbound_ok: bool = True) -> socket.socket:
    """A UDP socket bound as the agent binds `link` (SO_REUSEADDR, SO_BINDTODEVICE, the
    wildcard address on `link.port`), not joined to a group: binding sends nothing, so
    `check-config` uses this to see that the agent could open the link.

    Raises LinkError for a missing interface and OSError for any other refusal (the socket
    is closed). Without CAP_NET_RAW the socket is left unbound to its interface, with a
    warning, unless `unbound_ok` is false (then that EPERM is raised too).
    """
    family = _family(link)
    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, link.interface.encode())
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise LinkError(f"link {link.name}: no interface {link.interface}") from exc
            if exc.errno != errno.EPERM or not unbound_ok:
                raise
            log.warning(
                "link not bound to its interface (needs CAP_NET_RAW) link=%s interface=%s",
                link.name,
                link.interface,
            )
        if link.kind is LinkKind.BCAST:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", link.port))
    except BaseException:
        sock.close()
        raise
    return sock


def open_socket(link: Link) -> socket.socket:
    """A non-blocking UDP socket on `link.port`, bound to `link.interface` (blocking setup)."""
    try:
        sock = bind_socket(link)
    except OSError as exc:
        raise LinkError(f"link {link.name} ({link.interface} port {link.port}): {exc}") from exc
    try:
        if link.kind is LinkKind.MCAST:
            _join(sock, link, _family(link))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise LinkError(f"link {link.name} ({link.interface} port {link.port}): {exc}") from exc
    return sock


def _join(sock: socket.socket, link: Link, family: int) -> None:
    assert link.group is not None
    index = socket.if_nametoindex(link.interface)
    if family == socket.AF_INET:
        mreqn = struct.pack("4s4si", link.group.packed, b"\0" * 4, index)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, link.ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(link.loop))
    else:
        mreq6 = struct.pack("16sI", link.group.packed, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq6)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, link.ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, int(link.loop))


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, link: LinkSocket) -> None:
        self._link = link

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._link.received += 1
        self._link.sink(self._link.link.name, data, (str(addr[0]), int(str(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        self._link.errors += 1
        log.debug("link receive error link=%s error=%s", self._link.link.name, exc)


@dataclass(slots=True)
class LinkSocket:
    """One open link: its transport plus counters (for metrics and tests)."""

    link: Link
    sink: Sink
    transport: asyncio.DatagramTransport | None = None
    received: int = 0
    sent: int = 0
    dropped: int = 0
    errors: int = 0
    _bcast: tuple[IPAddress, ...] | None = field(default=None)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        sock = await within(asyncio.to_thread(open_socket, self.link), 5.0)
        if self.link.kind is LinkKind.BCAST:
            self._bcast = (
                await within(asyncio.to_thread(broadcast_address, self.link.interface), 5.0),
            )
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self.transport = transport

    def targets(self, to: str | None, nodes: Sequence[Node]) -> tuple[IPAddress, ...]:
        if self._bcast is not None:
            return self._bcast
        return destinations(self.link, to, nodes)

    def send(self, data: bytes, address: IPAddress) -> bool:
        """Queue one datagram; False (dropped, counted) when closed or backed up."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self.dropped += 1
            return False
        buffered = getattr(transport, "get_write_buffer_size", lambda: 0)()
        if buffered > MAX_WRITE_BUFFER_BYTES:
            self.dropped += 1
            return False
        try:
            transport.sendto(data, (str(address), self.link.port))
        except OSError as exc:
            self.errors += 1
            log.debug("link send failed link=%s to=%s error=%s", self.link.name, address, exc)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        """Idempotent."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
