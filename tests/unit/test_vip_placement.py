"""Where the agent puts a VIP (Heartbeat's findif), as a pure rule: the agent and
`check-config` both ask `plan_placement`, so they cannot disagree."""

from __future__ import annotations

import ipaddress
import re

import pytest

from gossipha.config.model import VipResource
from gossipha.resources.vip import VipError, plan_placement

HOST = [
    ("eth0", ipaddress.ip_interface("192.168.171.50/24")),
    ("eth1", ipaddress.ip_interface("192.168.17.50/24")),
    ("eth0", ipaddress.ip_interface("10.9.9.9/32")),  # a held VIP places nothing
    ("eth0", ipaddress.ip_interface("2001:db8::50/64")),
]
INDEXES = {"lo": 1, "eth0": 2, "eth1": 3}


def vip(text: str, prefix: int | None = None, interface: str | None = None) -> VipResource:
    return VipResource(ipaddress.ip_address(text), prefix, interface)


def test_a_bare_address_goes_on_the_interface_whose_subnet_holds_it() -> None:
    placed = plan_placement(vip("192.168.17.100"), HOST, INDEXES.get)
    assert (placed.interface, placed.index, placed.prefix) == ("eth1", 3, 24)
    assert str(placed.broadcast) == "192.168.17.255"
    placed = plan_placement(vip("2001:db8::100"), HOST, INDEXES.get)
    assert (placed.interface, placed.prefix, placed.broadcast) == ("eth0", 64, None)


def test_written_prefix_and_interface_are_taken_as_written() -> None:
    placed = plan_placement(vip("203.0.113.9", 24, "eth0"), HOST, INDEXES.get)
    assert (placed.interface, placed.prefix) == ("eth0", 24)


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        (vip("203.0.113.9"), "no interface has a subnet holding it (findif)"),
        (vip("10.9.9.9"), "no interface has a subnet holding it"),  # only its own /32
        (vip("203.0.113.9", interface="eth0"), "no prefix given and none found on eth0"),
        (vip("192.168.17.100", interface="eth0"), "no prefix given and none found on eth0"),
        (vip("192.168.17.100", 24, "eth9"), "no interface eth9"),
        (
            VipResource(ipaddress.ip_address("192.168.17.100"), label="eth0:0"),
            "label 'eth0:0' must be eth1 or eth1:NAME",
        ),
    ],
)
def test_what_the_agent_cannot_place_is_a_vip_error(resource: VipResource, message: str) -> None:
    with pytest.raises(VipError, match=re.escape(message)):
        plan_placement(resource, HOST, INDEXES.get)
