"""The in-agent pinger: reaches the ping node, loses it within deadping under the tutorial's
`iptables -I INPUT -p icmp -j DROP`, and gets it back when the rule is deleted."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import socket

import pytest

from gossipha.config.model import PingGroup
from gossipha.lab import Lab
from gossipha.runtime.icmp import (
    GroupReport,
    Pinger,
    PingEvent,
    PingReport,
    ReachabilityTracker,
    build_echo,
    icmp_checksum,
    parse_reply,
)

PING_NODE = ipaddress.IPv4Address("192.168.17.1")
DROP = ["-p", "icmp", "-j", "DROP"]


def test_tracker_deadping() -> None:
    a, b = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
    tracker = ReachabilityTracker([a, b], deadping_s=1.0, start_s=0.0)
    assert tracker.reachable(a) is None and tracker.group_reachable([a, b]) is None
    assert tracker.reply(a, 0.5) is True
    assert tracker.reply(a, 0.6) is False
    assert tracker.tick(0.99) == []
    assert tracker.tick(1.0) == [b]
    assert tracker.group_reachable([a, b]) is True
    assert tracker.tick(1.6) == [a]
    assert tracker.tick(5.0) == []
    assert tracker.group_reachable([a, b]) is False
    assert tracker.reply(b, 5.1) is True


def test_echo_packet() -> None:
    packet = build_echo(socket.AF_INET, 0x1234, 7)
    assert icmp_checksum(packet) == 0
    reply = bytes([0, 0]) + packet[2:]
    assert parse_reply(socket.AF_INET, reply, has_ip_header=False) == (0x1234, 7)
    ip_header = bytes([0x45]) + bytes(19)
    assert parse_reply(socket.AF_INET, ip_header + reply, has_ip_header=True) == (0x1234, 7)
    assert parse_reply(socket.AF_INET, packet, has_ip_header=False) is None  # a request
    assert parse_reply(socket.AF_INET, b"\x00", has_ip_header=False) is None


async def wait_for(events: list[PingEvent], start: int, reachable: bool, limit_s: float) -> float:
    """Seconds until a GroupReport with `reachable` appears after index `start`."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while loop.time() - t0 < limit_s:
        for event in events[start:]:
            if isinstance(event, GroupReport) and event.reachable is reachable:
                return event.at_s - t0
        await asyncio.sleep(0.01)
    raise AssertionError(f"no group report reachable={reachable} within {limit_s}s: {events}")


@pytest.mark.netns
async def test_ping_node_lost_and_back_with_iptables(lab: Lab) -> None:
    interval_s, deadping_s = 0.05, 0.4
    events: list[PingEvent] = []
    group = PingGroup("192.168.17.1", (PING_NODE,), "eth1")
    pinger = Pinger(
        [group],
        interval_s=interval_s,
        deadping_s=deadping_s,
        sink=events.append,
        netns=lab.ns("master"),
    )
    task = asyncio.create_task(pinger.run(duration_s=8.0))
    try:
        await wait_for(events, 0, True, 2.0)
        rtts = [e.rtt_s for e in events if isinstance(e, PingReport) and e.rtt_s is not None]
        assert rtts and all(0 < r < 0.5 for r in rtts)
        mark = len(events)
        lab.iptables("master", ["-I", "INPUT", *DROP])
        try:
            lost_after_s = await wait_for(events, mark, False, 3.0)
        finally:
            lab.iptables("master", ["-D", "INPUT", *DROP])
        # Lost no later than deadping after the last reply (plus one probe interval).
        assert lost_after_s <= deadping_s + 2 * interval_s
        assert pinger.reachable(PING_NODE) is False
        mark = len(events)
        back_after_s = await wait_for(events, mark, True, 2.0)
        assert back_after_s <= 3 * interval_s
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.netns
async def test_bound_interface_decides_the_path(lab: Lab) -> None:
    results: dict[str, bool | None] = {}
    for iface in ("eth1", "eth0"):
        events: list[PingEvent] = []
        pinger = Pinger(
            [PingGroup(iface, (PING_NODE,), iface)],
            interval_s=0.05,
            deadping_s=0.25,
            sink=events.append,
            netns=lab.ns("master"),
        )
        await pinger.run(max_rounds=8)
        results[iface] = pinger.reachable(PING_NODE)
    assert results == {"eth1": True, "eth0": False}


@pytest.mark.netns
async def test_group_reachable_while_any_member_answers(lab: Lab) -> None:
    events: list[PingEvent] = []
    group = PingGroup("g", (PING_NODE, ipaddress.IPv4Address("192.168.17.99")))
    pinger = Pinger(
        [group], interval_s=0.05, deadping_s=0.25, sink=events.append, netns=lab.ns("master")
    )
    await pinger.run(max_rounds=8)
    assert [e.reachable for e in events if isinstance(e, GroupReport)] == [True]
    assert pinger.reachable(ipaddress.IPv4Address("192.168.17.99")) is False


def _pinger(lab: Lab, events: list[PingEvent], interval_s: float) -> Pinger:
    return Pinger(
        [PingGroup("g", (PING_NODE,), "eth1")],
        interval_s=interval_s,
        deadping_s=1.0,
        sink=events.append,
        netns=lab.ns("master"),
    )


async def _offered(
    lab: Lab, interval_s: float, every_s: float, phase_s: float, offers: int
) -> tuple[list[float], list[float]]:
    """Echo send times of a pinger offered a ride every `every_s` from `phase_s` after its
    start, and the offer times."""
    events: list[PingEvent] = []
    pinger = _pinger(lab, events, interval_s)
    loop = asyncio.get_running_loop()
    offered: list[float] = []

    def offer() -> None:
        offered.append(loop.time())
        pinger.ride(offered[-1], offered[-1] + every_s)
        if len(offered) < offers:
            loop.call_later(every_s, offer)

    task = asyncio.create_task(pinger.run(duration_s=offers * every_s + 0.4))
    loop.call_later(phase_s, offer)
    await task
    sent = sorted(e.at_s - e.rtt_s for e in events if isinstance(e, PingReport) and e.rtt_s)
    return sent, offered


@pytest.mark.netns
@pytest.mark.parametrize("phase_s", [0.02, 0.06, 0.095, 0.13])
async def test_rounds_fall_in_with_offers_at_the_same_interval(lab: Lab, phase_s: float) -> None:
    """Offered a ride every interval at another phase (the agent's heartbeat tick at
    native timings), the pinger's echoes go out at those wake-ups within a few rounds:
    no wake-up of its own per round."""
    interval_s = 0.1
    sent, offered = await _offered(lab, interval_s, interval_s, phase_s, 30)
    later = [s for s in sent if offered[4] <= s <= offered[-1]]
    assert len(later) >= 20, (sent, offered)
    assert all(min(abs(s - o) for o in offered) < 0.002 for s in later), (later, offered)
    # Never more than RIDE_LATE beyond an interval apart, before, during and after.
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert max(gaps) <= 1.25 * interval_s + 0.02 and min(gaps) >= 0.5 * interval_s - 0.005


@pytest.mark.netns
async def test_rounds_keep_their_interval_when_offers_come_more_often(lab: Lab) -> None:
    """Ticks every 30 ms, rounds every 100 ms: each round goes out at the tick nearest
    its due time, so the interval holds within a tick's spacing."""
    sent, offered = await _offered(lab, 0.1, 0.03, 0.01, 100)
    during = [s for s in sent if offered[5] <= s <= offered[-1]]
    assert len(during) >= 20, (sent, offered)
    assert all(min(abs(s - o) for o in offered) < 0.002 for s in during), (during, offered)
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert all(0.07 - 0.005 <= g <= 0.13 + 0.005 for g in gaps), gaps


def test_loss_is_judged_at_the_round_nearest_deadping() -> None:
    """Rounds on the tick's exact grid: the round deadping after the last answered one
    finds the address lost, though its reply came a round trip after that round."""
    events: list[PingEvent] = []
    pinger = Pinger(
        [PingGroup("g", (PING_NODE,))], interval_s=0.2, deadping_s=1.0, sink=events.append
    )
    pinger._tracker = ReachabilityTracker(pinger.addresses, 1.0, 0.0)
    pinger._on_reply(PING_NODE, 0.0004, 0.0004)  # the answer to the round at 0.0
    pinger._expire(0.8)  # four rounds on: not yet
    assert pinger.reachable(PING_NODE) is True
    pinger._expire(1.0)  # the fifth: deadping after the answered round
    assert pinger.reachable(PING_NODE) is False
    assert [e.reachable for e in events if isinstance(e, GroupReport)] == [True, False]


class _SinkBug(Exception):
    pass


@pytest.mark.netns
@pytest.mark.parametrize("fails_on", ["reply", "loss"])
async def test_a_sink_that_raises_ends_the_run_with_its_error(lab: Lab, fails_on: str) -> None:
    """A reply is handled in a readiness callback and a loss in a timer's: either way the
    error ends `run` (so the agent's TaskGroup), not the loop's exception log."""
    answering = fails_on == "reply"
    address = PING_NODE if answering else ipaddress.IPv4Address("192.168.17.99")

    def sink(event: PingEvent) -> None:
        if isinstance(event, PingReport) and event.reachable is answering:
            raise _SinkBug(fails_on)

    pinger = Pinger(
        [PingGroup("g", (address,), "eth1")],
        interval_s=0.05,
        deadping_s=0.2,
        sink=sink,
        netns=lab.ns("master"),
    )
    with pytest.raises(_SinkBug, match=fails_on):
        await asyncio.wait_for(pinger.run(duration_s=5.0), 4.0)
