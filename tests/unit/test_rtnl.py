"""gossipha/resources/rtnl.py: the requests it builds and the replies it reads, as bytes.

The expected requests are what pyroute2 0.9 sent for the same VIP actions (strace'd), so
the kernel sees the same messages after the switch away from pyroute2.
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from gossipha.resources import rtnl


def _hdr(size: int, kind: int, flags: int, seq: int) -> bytes:
    return struct.pack("=IHHII", size, kind, flags, seq, 0)


def test_new_address_v4_matches_pyroute2() -> None:
    data = rtnl.new_address(
        7,
        3,
        socket.AF_INET,
        "10.9.0.100",
        24,
        label="v0:0",
        broadcast="10.9.0.255",
    )
    expected = (
        _hdr(60, rtnl.RTM_NEWADDR, 0x1 | 0x4 | 0x200 | 0x400, 7)
        + struct.pack("=BBBBi", socket.AF_INET, 24, 0, 0, 3)
        + struct.pack("=HH", 8, rtnl.IFA_ADDRESS)
        + socket.inet_aton("10.9.0.100")
        + struct.pack("=HH", 9, rtnl.IFA_LABEL)
        + b"v0:0\0\0\0\0"
        + struct.pack("=HH", 8, rtnl.IFA_BROADCAST)
        + socket.inet_aton("10.9.0.255")
        + struct.pack("=HH", 8, rtnl.IFA_LOCAL)
        + socket.inet_aton("10.9.0.100")
    )
    assert data == expected


def test_new_address_v6_carries_nodad_flag_only() -> None:
    data = rtnl.new_address(1, 3, socket.AF_INET6, "fd00::100", 64, flags=0x02)
    assert len(data) == 52
    attrs = rtnl.attributes(data, 16 + 8)
    assert attrs == {
        rtnl.IFA_ADDRESS: socket.inet_pton(socket.AF_INET6, "fd00::100"),
        rtnl.IFA_FLAGS: struct.pack("=I", 0x02),
    }


def test_del_address() -> None:
    v4 = rtnl.del_address(2, 3, socket.AF_INET, "10.9.0.100", 24)
    assert v4[:16] == _hdr(40, rtnl.RTM_DELADDR, 0x1 | 0x4, 2)
    assert set(rtnl.attributes(v4, 24)) == {rtnl.IFA_ADDRESS, rtnl.IFA_LOCAL}
    v6 = rtnl.del_address(2, 3, socket.AF_INET6, "fd00::100", 64)
    assert len(v6) == 44 and set(rtnl.attributes(v6, 24)) == {rtnl.IFA_ADDRESS}


def test_dumps() -> None:
    assert rtnl.dump_links(5) == _hdr(32, rtnl.RTM_GETLINK, 0x301, 5) + bytes(16)
    assert rtnl.dump_addresses(6, socket.AF_INET) == _hdr(24, rtnl.RTM_GETADDR, 0x301, 6) + bytes(
        [socket.AF_INET]
    ) + bytes(7)


def test_parse_replies() -> None:
    addr = rtnl.message(
        rtnl.RTM_NEWADDR,
        rtnl.NLM_F_MULTI,
        9,
        struct.pack("=BBBBi", socket.AF_INET, 24, 0x80, 0, 3)
        + rtnl.rtattr(rtnl.IFA_ADDRESS, socket.inet_aton("10.0.0.1"))
        + rtnl.rtattr(rtnl.IFA_LOCAL, socket.inet_aton("10.0.0.2"))
        + rtnl.rtattr(rtnl.IFA_LABEL, b"eth0:0\0"),
    )
    link = rtnl.message(
        rtnl.RTM_NEWLINK,
        rtnl.NLM_F_MULTI,
        9,
        struct.pack("=BxHiII", 0, 1, 2, 0, 0)
        + rtnl.rtattr(rtnl.IFLA_IFNAME, b"eth0\0")
        + rtnl.rtattr(rtnl.IFLA_ADDRESS, bytes.fromhex("02aabbccddee")),
    )
    done = rtnl.message(rtnl.NLMSG_DONE, rtnl.NLM_F_MULTI, 9, struct.pack("=i", 0))
    parts = list(rtnl.messages(addr + link + done))
    assert [(k, s) for k, _f, s, _p in parts] == [
        (rtnl.RTM_NEWADDR, 9),
        (rtnl.RTM_NEWLINK, 9),
        (rtnl.NLMSG_DONE, 9),
    ]
    assert rtnl.parse_address(parts[0][3]) == rtnl.Addr(
        3, socket.AF_INET, 24, "10.0.0.1", "10.0.0.2"
    )
    assert rtnl.parse_link(parts[1][3]) == rtnl.Link(2, "eth0", "02:aa:bb:cc:dd:ee")


def test_error_code_and_truncated_message() -> None:
    assert rtnl.error_code(struct.pack("=i", -errno.EEXIST)) == errno.EEXIST
    assert rtnl.error_code(struct.pack("=i", 0)) == 0
    with pytest.raises(ValueError):
        list(rtnl.messages(_hdr(64, rtnl.RTM_NEWADDR, 0, 1) + bytes(8)))
    exc = rtnl.NetlinkError(errno.EEXIST, "add address")
    assert isinstance(exc, OSError) and exc.code == errno.EEXIST
