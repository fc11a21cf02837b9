"""The little rtnetlink the agent needs: dump links and addresses, add and delete one address.

Why not pyroute2: importing it loads every netlink family it knows (IPDB, NDB with sqlite,
conntrack, nftables, wireguard...), about 9 MB of an idle agent's 57 MB resident, and each
`IPRoute()` builds pools, locks and a full attribute decoder; the VIP watcher paid that
twice a second. Here a request is a few `struct.pack` calls and a reply is walked for the
three attributes we read. The messages are the ones pyroute2 sent (same header flags, same
attributes), so the kernel sees the same requests.

`Rtnl` is blocking, like the pyroute2 calls it replaces: vip.py runs it in a thread with a
timeout. Building and parsing are pure functions, unit-tested on bytes. `netns` (a named
namespace) is for the lab and tests; the socket is then opened there by pyroute2's helper,
imported only in that case.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
# Multicast groups of address changes (RTM_NEWADDR, RTM_DELADDR), for `address_monitor`.
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTATTR = struct.Struct("=HH")  # len, type
_ERRNO = struct.Struct("=i")
RECV_BYTES = 1 << 16
SOCKET_TIMEOUT_S = 5.0
# A reply that never ends (a kernel bug or someone else's socket) must not spin forever.
MAX_REPLY_PARTS = 10_000


class NetlinkError(OSError):
    """The kernel refused a request; `code` is the errno (as pyroute2's NetlinkError)."""

    def __init__(self, code: int, what: str = "") -> None:
        super().__init__(code, f"{what}: {os.strerror(code)}" if what else os.strerror(code))
        self.code = code


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str | None
    mac: str | None  # "aa:bb:cc:dd:ee:ff"; None for links without one (lo has zeros)


@dataclass(frozen=True, slots=True)
class Addr:
    index: int
    family: int
    prefixlen: int
    address: str | None  # IFA_ADDRESS (the peer on point-to-point links)
    local: str | None  # IFA_LOCAL


# ---------------------------------------------------------------------- pure: bytes


def _align(n: int) -> int:
    return (n + 3) & ~3


def rtattr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    size = _RTATTR.size + len(payload)
    return (_RTATTR.pack(size, kind) + payload).ljust(_align(size), b"\0")


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def dump_links(seq: int) -> bytes:
    return message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, _IFINFOMSG.pack(0, 0, 0, 0, 0))


def dump_addresses(seq: int, family: int = socket.AF_UNSPEC) -> bytes:
    return message(
        RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, _IFADDRMSG.pack(family, 0, 0, 0, 0)
    )


def _packed(family: int, address: str) -> bytes:
    return socket.inet_pton(family, address)


def new_address(
    seq: int,
    index: int,
    family: int,
    address: str,
    prefixlen: int,
    *,
    label: str | None = None,
    broadcast: str | None = None,
    flags: int = 0,
) -> bytes:
    """RTM_NEWADDR (create, fail if present) as pyroute2's `addr("add", ...)` sent it:
    IFA_ADDRESS, IFA_LABEL, IFA_BROADCAST, and IFA_LOCAL for IPv4; IFA_FLAGS if given."""
    attrs = rtattr(IFA_ADDRESS, _packed(family, address))
    if label is not None:
        attrs += rtattr(IFA_LABEL, label.encode() + b"\0")
    if broadcast is not None:
        attrs += rtattr(IFA_BROADCAST, _packed(family, broadcast))
    if family == socket.AF_INET:
        attrs += rtattr(IFA_LOCAL, _packed(family, address))
    if flags:
        attrs += rtattr(IFA_FLAGS, struct.pack("=I", flags))
    body = _IFADDRMSG.pack(family, prefixlen, 0, 0, index) + attrs
    return message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE, seq, body)


def del_address(seq: int, index: int, family: int, address: str, prefixlen: int) -> bytes:
    """RTM_DELADDR as pyroute2 sent it: IFA_ADDRESS, and IFA_LOCAL for IPv4."""
    attrs = rtattr(IFA_ADDRESS, _packed(family, address))
    if family == socket.AF_INET:
        attrs += rtattr(IFA_LOCAL, _packed(family, address))
    body = _IFADDRMSG.pack(family, prefixlen, 0, 0, index) + attrs
    return message(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload) of each netlink message in one datagram."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        size, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if size < _NLMSGHDR.size or offset + size > len(data):
            raise ValueError(f"netlink message of {size} bytes at {offset} of {len(data)}")
        yield kind, flags, seq, data[offset + _NLMSGHDR.size : offset + size]
        offset += _align(size)


def attributes(data: bytes, offset: int) -> dict[int, bytes]:
    """Attribute type -> payload, from `offset` to the end (the first of a repeated type)."""
    found: dict[int, bytes] = {}
    while offset + _RTATTR.size <= len(data):
        size, kind = _RTATTR.unpack_from(data, offset)
        if size < _RTATTR.size:
            break
        found.setdefault(kind & 0x3FFF, data[offset + _RTATTR.size : offset + size])
        offset += _align(size)
    return found


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.split(b"\0", 1)[0].decode(errors="replace")


def _ip(family: int, raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return socket.inet_ntop(family, raw)


def parse_link(payload: bytes) -> Link:
    _family, _kind, index, _flags, _change = _IFINFOMSG.unpack_from(payload)
    attrs = attributes(payload, _IFINFOMSG.size)
    raw_mac = attrs.get(IFLA_ADDRESS)
    mac = None if raw_mac is None else ":".join(f"{b:02x}" for b in raw_mac)
    return Link(index, _text(attrs.get(IFLA_IFNAME)), mac)


def parse_address(payload: bytes) -> Addr:
    family, prefixlen, _flags, _scope, index = _IFADDRMSG.unpack_from(payload)
    attrs = attributes(payload, _IFADDRMSG.size)
    return Addr(
        index,
        family,
        prefixlen,
        _ip(family, attrs.get(IFA_ADDRESS)),
        _ip(family, attrs.get(IFA_LOCAL)),
    )


def error_code(payload: bytes) -> int:
    """The errno of an NLMSG_ERROR (0: an acknowledgement)."""
    code: int = _ERRNO.unpack_from(payload)[0]
    return -code


# ---------------------------------------------------------------------- the socket


class Rtnl:
    """One NETLINK_ROUTE socket (blocking). Use as a context manager, or `close()`."""

    def __init__(self, netns: str | None = None) -> None:
        sock = _route_socket(netns)
        try:
            # A reply that never comes must not pin vip.py's worker thread for good (its
            # caller gives up after its own timeout; this ends the thread too).
            sock.settimeout(SOCKET_TIMEOUT_S)
            sock.bind((0, 0))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _request(self, data: bytes, seq: int, what: str) -> Iterator[tuple[int, bytes]]:
        """Send one request; yield (type, payload) of its replies until DONE or the ACK.

        Raises NetlinkError for an error reply. Replies to other sequence numbers (none
        are expected on our own socket) are skipped.
        """
        self._sock.send(data)
        for _ in range(MAX_REPLY_PARTS):
            chunk = self._sock.recv(RECV_BYTES)
            if not chunk:
                raise NetlinkError(errno.EIO, f"{what}: empty netlink reply")
            for kind, flags, got_seq, payload in messages(chunk):
                if got_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    code = error_code(payload)
                    if code:
                        raise NetlinkError(code, what)
                    return
                yield kind, payload
                if not flags & NLM_F_MULTI:
                    return
        raise NetlinkError(errno.EIO, f"{what}: reply without end")

    def links(self) -> list[Link]:
        seq = self._next_seq()
        return [
            parse_link(p)
            for k, p in self._request(dump_links(seq), seq, "dump links")
            if k == RTM_NEWLINK
        ]

    def addresses(self, family: int = socket.AF_UNSPEC) -> list[Addr]:
        seq = self._next_seq()
        return [
            parse_address(p)
            for k, p in self._request(dump_addresses(seq, family), seq, "dump addresses")
            if k == RTM_NEWADDR
        ]

    def link_index(self, name: str) -> int | None:
        for link in self.links():
            if link.name == name:
                return link.index
        return None

    def add_address(
        self,
        index: int,
        family: int,
        address: str,
        prefixlen: int,
        *,
        label: str | None = None,
        broadcast: str | None = None,
        flags: int = 0,
    ) -> None:
        seq = self._next_seq()
        data = new_address(
            seq, index, family, address, prefixlen, label=label, broadcast=broadcast, flags=flags
        )
        for _reply in self._request(data, seq, "add address"):
            pass

    def del_address(self, index: int, family: int, address: str, prefixlen: int) -> None:
        seq = self._next_seq()
        for _reply in self._request(
            del_address(seq, index, family, address, prefixlen), seq, "delete address"
        ):
            pass


def _route_socket(netns: str | None) -> socket.socket:
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    from pyroute2 import netns as pr_netns

    sock: socket.socket = pr_netns.create_socket(
        netns, family=socket.AF_NETLINK, socket_type=socket.SOCK_RAW, proto=NETLINK_ROUTE, flags=0
    )
    return sock


def address_monitor(netns: str | None = None) -> socket.socket:
    """A non-blocking NETLINK_ROUTE socket that receives every IPv4 and IPv6 address
    change (RTM_NEWADDR, RTM_DELADDR) as the kernel makes it: the VIP watcher re-checks
    on those instead of dumping the addresses twice a second. A reader that falls behind
    gets ENOBUFS, after which it must re-check (changes were lost)."""
    sock = _route_socket(netns)
    try:
        sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def host_addresses(
    netns: str | None = None,
) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address configured here (IFA_LOCAL, else IFA_ADDRESS): config/load.py's
    `local_addresses`, for the self-ucast check."""
    with Rtnl(netns) as rt:
        return frozenset(
            ipaddress.ip_address(value)
            for a in rt.addresses()
            if (value := a.local or a.address) is not None
        )
