"""The order a group's resources are stopped in (runtime/groups.py)."""

from __future__ import annotations

import ipaddress

from gossipha.config.model import ServiceKind, ServiceResource, VipResource
from gossipha.core.types import StopReason
from gossipha.runtime.groups import URGENT_STOPS, stop_order

VIP_A = VipResource(ipaddress.ip_address("192.168.171.100"), 24, "eth0")
VIP_B = VipResource(ipaddress.ip_address("192.168.171.101"), 24, "eth0")
NGINX = ServiceResource("nginx", ServiceKind.COMMAND, start=("true",), stop=("true",))
DB = ServiceResource("db", ServiceKind.COMMAND, start=("true",), stop=("true",))
# haresources: masternginx IPaddr::A db IPaddr::B nginx
GROUP = (VIP_A, DB, VIP_B, NGINX)


def test_a_normal_stop_is_the_reverse_of_the_start() -> None:
    assert stop_order(GROUP, vips_first=False) == [NGINX, VIP_B, DB, VIP_A]


def test_a_lost_lease_takes_every_vip_down_before_any_service() -> None:
    assert stop_order(GROUP, vips_first=True) == [VIP_B, VIP_A, NGINX, DB]


def test_only_a_lost_or_superseded_lease_is_urgent() -> None:
    urgent = {r for r in StopReason if r in URGENT_STOPS}
    assert urgent == {StopReason.LEASE_LOST, StopReason.SUPERSEDED}
