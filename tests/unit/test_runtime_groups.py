"""The order a group's resources are stopped in, and a stop is never cut short on the way
out (runtime/groups.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from gossipha.config.model import (
    ResourceGroup,
    ServiceKind,
    ServiceResource,
    Timings,
    VipResource,
)
from gossipha.core.types import StopReason
from gossipha.runtime.groups import URGENT_STOPS, GroupRunner, stop_order

VIP_A = VipResource(ipaddress.ip_address("192.168.171.100"), 24, "eth0")
VIP_B = VipResource(ipaddress.ip_address("192.168.171.101"), 24, "eth0")
NGINX = ServiceResource("nginx", ServiceKind.COMMAND, start=("true",), stop=("true",))
DB = ServiceResource("db", ServiceKind.COMMAND, start=("true",), stop=("true",))
# haresources: masternginx IPaddr::A db IPaddr::B nginx
GROUP = (VIP_A, DB, VIP_B, NGINX)
TIMINGS = Timings(
    keepalive_s=2.0, deadtime_s=30.0, warntime_s=10.0, initdead_s=60.0,
    ping_interval_s=1.0, deadping_s=5.0,
)  # fmt: skip


def test_a_normal_stop_is_the_reverse_of_the_start() -> None:
    assert stop_order(GROUP, vips_first=False) == [NGINX, VIP_B, DB, VIP_A]


def test_a_lost_lease_takes_every_vip_down_before_any_service() -> None:
    assert stop_order(GROUP, vips_first=True) == [VIP_B, VIP_A, NGINX, DB]


def test_only_a_lost_or_superseded_lease_is_urgent() -> None:
    urgent = {r for r in StopReason if r in URGENT_STOPS}
    assert urgent == {StopReason.LEASE_LOST, StopReason.SUPERSEDED}


async def test_a_stop_under_way_finishes_on_the_way_out(tmp_path: Path) -> None:
    """The agent's forced exit (shutdown timeout, second SIGTERM) waits for a stop under
    way: cancelling it would SIGKILL the service in mid-stop."""
    marks = tmp_path / "marks"
    slow_stop = ("sh", "-c", f"echo stopping >> {marks}; sleep 0.5; echo stopped >> {marks}")
    svc = ServiceResource(
        "db", ServiceKind.COMMAND, start=("true",), stop=slow_stop, status=("false",)
    )
    tasks: list[asyncio.Task[None]] = []

    def spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        tasks.append(asyncio.create_task(coro, name=name))
        return tasks[-1]

    runner = GroupRunner(
        [ResourceGroup("g", (svc,))],
        node_name="n",
        timings=TIMINGS,
        feed=lambda _event: None,
        spawn=spawn,
        closing=lambda: True,
        clock_s=time.monotonic,
        on_health=lambda _g, _ok: None,
        reannounce_s=10.0,
    )
    runner.start("g", 1)
    await asyncio.wait(tasks[:1])
    runner.stop("g", 1, StopReason.SHUTDOWN)
    while not marks.exists():
        await asyncio.sleep(0.01)
    await runner.finish_stops()
    assert marks.read_text().split() == ["stopping", "stopped"]
    assert not runner.runs["g"].active
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
