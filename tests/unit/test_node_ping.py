"""ipfail on a stable ping advantage only, and initdead for peers never heard: pure tests.

Two `Node`s stepped at hand-set `now_s` (no drift, no loss), their messages handed over
in the same step unless the heartbeat link is cut; the placement rule alone is tested on
hand-made statuses (`View`, `PingHistory`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from gossipha.config.model import Config
from gossipha.core.node import PING_STABLE_BEATS, PING_STABLE_INTERVALS, Node
from gossipha.core.placement import PingHistory, View
from gossipha.core.types import (
    GroupName,
    Input,
    MessageReceived,
    NodeId,
    NodeStatus,
    PingResult,
    ProbeVip,
    ResourceAction,
    ResourceResult,
    StartGroup,
    StopGroup,
    Tick,
    VipProbeResult,
)
from gossipha.sim.harness import PING, make_config, native_timings

G = GroupName("g0")
N0, N1 = NodeId("n0"), NodeId("n1")
TIMINGS = replace(native_timings(), initdead_s=1.5, failback_delay_s=2.0)
STABLE_S = PING_STABLE_INTERVALS * TIMINGS.ping_interval_s + PING_STABLE_BEATS * TIMINGS.keepalive_s
DT = 0.01


@dataclass
class Pair:
    """n0 and n1 on one hand-set clock; a ProbeVip is answered (nobody) after the probe."""

    config: Config
    start_s: dict[NodeId, float] = field(default_factory=lambda: {N0: 0.0, N1: 0.0})
    now_s: float = 0.0
    cut: bool = False
    nodes: dict[NodeId, Node] = field(default_factory=dict)
    pending: list[tuple[float, NodeId, Input]] = field(default_factory=list)
    starts: list[tuple[float, NodeId]] = field(default_factory=list)
    stops: list[tuple[float, NodeId, str]] = field(default_factory=list)
    dead: set[NodeId] = field(default_factory=set)

    def __post_init__(self) -> None:
        for name, s in self.start_s.items():
            self.nodes[name] = Node(replace(self.config, node_name=name), 1, random.Random(0), s)

    def step(self, name: NodeId, event: Input) -> None:
        if name in self.dead or self.now_s < self.start_s[name]:
            return
        out = self.nodes[name].step(self.now_s, event)
        t = self.config.timings
        for a in out.actions:
            if isinstance(a, ProbeVip):
                # The probe crosses the LAN, which a heartbeat cut leaves: it sees a holder.
                probe_s = t.vip_probe_count * t.vip_probe_interval_s
                seen = any(n != name and node.running() for n, node in self.nodes.items())
                self.pending.append((self.now_s + probe_s, name, VipProbeResult(a.group, seen)))
            elif isinstance(a, StartGroup):
                self.starts.append((self.now_s, name))
                self.pending.append(
                    (
                        self.now_s + DT,
                        name,
                        ResourceResult(a.group, ResourceAction.START, True, a.epoch),
                    )
                )
            elif isinstance(a, StopGroup):
                self.stops.append((self.now_s, name, a.reason.value))
                self.pending.append(
                    (
                        self.now_s + DT,
                        name,
                        ResourceResult(a.group, ResourceAction.STOP, True, a.epoch),
                    )
                )
        if not self.cut:
            for s in out.sends:
                self.pending.append(
                    (self.now_s, NodeId(s.to), MessageReceived("hb", name, s.message))
                )

    def run_until(self, t_s: float) -> None:
        while self.now_s < t_s - 1e-9:
            self.now_s = round(self.now_s + DT, 6)
            due = [p for p in self.pending if p[0] <= self.now_s + 1e-9]
            self.pending = [p for p in self.pending if p[0] > self.now_s + 1e-9]
            for _, name, ev in due:
                self.step(name, ev)
            for name in self.nodes:
                self.step(name, Tick())

    def holders(self) -> list[NodeId]:
        return [n for n, node in self.nodes.items() if n not in self.dead and node.running()]


def _pair() -> Pair:
    pair = Pair(make_config(2, timings=TIMINGS))
    pair.run_until(4.0)
    assert pair.holders() == [N0]
    assert not pair.stops
    return pair


# ------------------------------------------------------------------ the placement rule


def _status(name: NodeId, ping: int) -> NodeStatus:
    return NodeStatus(name, 1, 1, ping, False, False, 0, (), ())


def test_view_an_advantage_counts_only_once_reported_for_the_window() -> None:
    config = make_config(2, timings=TIMINGS)
    statuses = {N0: _status(N0, 0), N1: _status(N1, 1)}

    def view(confirmed_n1_s: float, since_n1_s: float = 0.0) -> View:
        history = PingHistory({N0: 10.0, N1: since_n1_s}, {N0: 20.0, N1: confirmed_n1_s}, 0.6)
        return View(config, statuses, {N0, N1}, history)

    assert view(10.5).eligible(G, N0), "n1 reported it for 0.5 s after n0's loss: too short"
    assert not view(10.7).eligible(G, N0), "0.7 s of reports: n0 is beaten"
    assert view(12.0, since_n1_s=11.5).eligible(G, N0), "n1 regained it at 11.5: too fresh"
    assert View(config, statuses, {N0, N1}).ping_beaten(N0), "no history: at once, as before"
    assert view(30.0).eligible(G, N1)


# ------------------------------------------------------------------ two nodes


def test_both_lose_the_ping_node_ms_apart_the_holder_keeps() -> None:
    pair = _pair()
    pair.step(N0, PingResult(PING, False))
    pair.run_until(pair.now_s + 0.05)
    assert pair.nodes[N0].target(G) == N0, "n1's advantage is 50 ms old"
    pair.step(N1, PingResult(PING, False))
    pair.run_until(pair.now_s + 5.0)
    assert pair.holders() == [N0]
    assert not pair.stops


def test_both_regain_the_ping_node_ms_apart_nothing_moves() -> None:
    pair = _pair()
    pair.step(N0, PingResult(PING, False))
    pair.step(N1, PingResult(PING, False))
    pair.run_until(pair.now_s + 2.0)
    pair.step(N1, PingResult(PING, True))
    pair.run_until(pair.now_s + TIMINGS.ping_interval_s)
    pair.step(N0, PingResult(PING, True))
    pair.run_until(pair.now_s + 5.0)
    assert pair.holders() == [N0]
    assert not pair.stops


def test_the_master_alone_loses_it_hands_over_after_the_window() -> None:
    pair = _pair()
    t0 = pair.now_s
    pair.step(N0, PingResult(PING, False))
    pair.run_until(t0 + STABLE_S - 0.02)
    assert not pair.stops, "not before the advantage is stable"
    pair.run_until(t0 + STABLE_S + 0.05)
    assert pair.stops and pair.stops[0][1:] == (N0, "handover")
    pair.run_until(t0 + STABLE_S + 1.0)
    assert pair.holders() == [N1]


def test_reports_resuming_after_a_cut_count_from_the_return() -> None:
    """Single link: the master loses the ping node while it hears nothing from the slave;
    when the link returns the slave's first report (ping 1) is no stable advantage."""
    pair = _pair()
    pair.cut = True
    # 0.6 s of cut after up to a keepalive of silence: past phi's floor, so each may find
    # the other dead, and the slave's claim meets the master's VIP in its probe.
    pair.run_until(pair.now_s + 0.3)
    pair.step(N0, PingResult(PING, False))
    pair.run_until(pair.now_s + 0.3)
    pair.cut = False
    pair.run_until(pair.now_s + STABLE_S - 0.05)
    assert not pair.stops, "the slave's reports resumed less than the window ago"
    assert pair.holders() == [N0]


def test_ping_regained_before_the_heartbeats_return_claims_nothing() -> None:
    """Single link cut long enough for both to declare the other dead and lose the ping
    node. On `ifup` the slave hears the ping node 0.1 s before the first heartbeat: it must
    not claim then (its voter would refuse the master's renewal: lease_lost, an outage)."""
    pair = _pair()
    pair.cut = True
    pair.step(N0, PingResult(PING, False))
    pair.step(N1, PingResult(PING, False))
    pair.run_until(pair.now_s + 5.0)
    assert not pair.nodes[N1].alive(N0)
    pair.step(N1, PingResult(PING, True))
    pair.run_until(pair.now_s + 0.1)
    pair.cut = False
    pair.run_until(pair.now_s + 0.1)
    pair.step(N0, PingResult(PING, True))
    pair.run_until(pair.now_s + 5.0)
    assert pair.holders() == [N0]
    assert not pair.stops
    assert [n for _, n in pair.starts] == [N0]


# ------------------------------------------------------------------ initdead

TUTORIAL = replace(
    TIMINGS,
    keepalive_s=2.0,
    warntime_s=10.0,
    deadtime_s=30.0,
    initdead_s=60.0,
    ping_interval_s=2.0,
    deadping_s=30.0,
    lease_s=2.0,
)


def test_a_peer_heard_then_dead_is_not_waited_for_until_initdead() -> None:
    pair = Pair(make_config(2, timings=TUTORIAL), start_s={N0: 0.0, N1: 0.5})
    pair.run_until(2.2)
    assert pair.nodes[N1].alive(N0), "heard the master's second heartbeat"
    pair.dead.add(N0)  # the master crashes about 2 s after start
    pair.run_until(20.0)
    assert not pair.nodes[N1].alive(N0)
    assert pair.starts[-1][1] == N1 and pair.starts[-1][0] < 20.0
    assert pair.holders() == [N1]


def test_a_node_that_heard_nobody_waits_initdead() -> None:
    pair = Pair(make_config(2, timings=TUTORIAL), start_s={N0: 0.0, N1: 0.0})
    pair.dead.add(N0)
    pair.run_until(59.9)
    assert pair.holders() == [], "nobody heard: initdead first"
    pair.run_until(63.0)
    assert pair.holders() == [N1]
