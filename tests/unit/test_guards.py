"""Isolated guards (issue #16, item 7): each check that decides who may run a group has a
test here, or in test_lease.py / test_node.py / test_node_ping.py / test_handover.py,
that fails when the check alone is removed.

Pure core: `Voter`, `Claim` and `View` by hand, or a few `Node`s on one hand-set clock
(`Lan`), messages handed over at the next 10 ms tick. No simulator, no drift, no loss.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from gossipha.config.model import Config
from gossipha.core.lease import Claim, Voter, voter_span_s
from gossipha.core.node import ADOPT_LIMIT_LEASES, Node, Phase
from gossipha.core.placement import View
from gossipha.core.types import (
    Action,
    FoundRunning,
    Heartbeat,
    Held,
    Input,
    LeaseRelease,
    LeaseReply,
    LeaseRequest,
    Message,
    MessageReceived,
    NodeId,
    NodeStatus,
    PingResult,
    ProbeVip,
    ResourceAction,
    ResourceResult,
    Shutdown,
    Stalled,
    StartGroup,
    StopGroup,
    StopReason,
    Tick,
    VipProbeResult,
)
from gossipha.sim.harness import PING, make_config
from tests.unit.test_node import PROBE_S, TIMINGS, _node, _until_probe

G = "g0"
N0, N1, N2, W0 = NodeId("n0"), NodeId("n1"), NodeId("n2"), NodeId("w0")
A, B, C = NodeId("a"), NodeId("b"), NodeId("c")
LEASE, RHO = 1.0, 0.01
DT = 0.01
L = TIMINGS.lease_s
_A = TypeVar("_A", StartGroup, StopGroup, ProbeVip)


# ------------------------------------------------------------------ a hand-stepped LAN


@dataclass
class Lan:
    """Nodes of one cluster on one hand-set clock. A send arrives at the next tick, or
    `net(src, dst, message)` seconds later (None: lost). A ProbeVip is answered after a
    probe time (by whether another node runs the group) unless `hold_probes`; a StopGroup
    reports `stop_ok` after a tick (None: never reports)."""

    config: Config
    names: tuple[NodeId, ...]
    net: Callable[[NodeId, NodeId, Message], float | None] = lambda src, dst, m: 0.0
    hold_probes: bool = False
    stop_ok: bool | None = True
    now_s: float = 0.0
    dead: set[NodeId] = field(default_factory=set)
    nodes: dict[NodeId, Node] = field(default_factory=dict)
    pending: list[tuple[float, NodeId, Input]] = field(default_factory=list)
    actions: list[tuple[float, NodeId, Action]] = field(default_factory=list)
    sent: list[tuple[float, NodeId, NodeId, Message]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in self.names:
            self.restart(name)

    def restart(self, name: NodeId) -> None:
        """A fresh agent on `name` (after a crash or kill -9), started now."""
        self.dead.discard(name)
        node_config = replace(self.config, node_name=name)
        self.nodes[name] = Node(node_config, 1, random.Random(0), self.now_s)

    def step(self, name: NodeId, event: Input) -> None:
        if name in self.dead:
            return
        out = self.nodes[name].step(self.now_s, event)
        for a in out.actions:
            self.actions.append((self.now_s, name, a))
            if isinstance(a, ProbeVip) and not self.hold_probes:
                seen = any(n != name and node.running() for n, node in self.nodes.items())
                self.pending.append((self.now_s + PROBE_S, name, VipProbeResult(a.group, seen)))
            elif isinstance(a, StartGroup):
                ok = ResourceResult(a.group, ResourceAction.START, True, a.epoch)
                self.pending.append((self.now_s + DT, name, ok))
            elif isinstance(a, StopGroup) and self.stop_ok is not None:
                done = ResourceResult(a.group, ResourceAction.STOP, self.stop_ok, a.epoch)
                self.pending.append((self.now_s + DT, name, done))
        for s in out.sends:
            dst = NodeId(s.to)
            self.sent.append((self.now_s, name, dst, s.message))
            delay_s = self.net(name, dst, s.message)
            if delay_s is not None:
                received = MessageReceived("hb", name, s.message)
                self.pending.append((self.now_s + delay_s, dst, received))

    def send(self, src: NodeId, dst: NodeId, message: Message) -> None:
        """Hand `dst` a message from `src` now (as if `src` had sent it)."""
        self.step(dst, MessageReceived("hb", src, message))

    def run_until(self, t_s: float) -> None:
        while self.now_s < t_s - 1e-9:
            self.now_s = round(self.now_s + DT, 6)
            due = [p for p in self.pending if p[0] <= self.now_s + 1e-9]
            self.pending = [p for p in self.pending if p[0] > self.now_s + 1e-9]
            for _, name, ev in due:
                self.step(name, ev)
            for name in self.names:
                self.step(name, Tick())

    def run(self, duration_s: float) -> None:
        self.run_until(self.now_s + duration_s)

    def of(self, name: NodeId, kind: type[_A], since_s: float = 0.0) -> list[tuple[float, _A]]:
        """`name`'s actions of one kind since `since_s`, with their times."""
        return [
            (t, a) for t, n, a in self.actions if n == name and isinstance(a, kind) and t >= since_s
        ]

    def holders(self) -> list[NodeId]:
        return [n for n, node in self.nodes.items() if n not in self.dead and node.running()]


def _pair_after_crash(*, hold_probes: bool = True) -> Lan:
    """n0 ran the group and crashed; n1 has declared it dead and probes the VIP (held)."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    lan.run_until(4.0)
    assert lan.holders() == [N0]
    lan.hold_probes = hold_probes
    lan.dead.add(N0)
    t0 = lan.now_s
    while not lan.of(N1, ProbeVip, t0):
        lan.run(DT)
        assert lan.now_s < t0 + 5.0, "n1 never probed"
    assert not lan.nodes[N1].alive(N0)
    return lan


# ------------------------------------------------------------------ known gaps (issue #16)


def test_half_rule_with_the_ping_node_starts_the_group() -> None:
    """The two-node rule's good case: peer dead, ping node reached, probe unanswered."""
    lan = _pair_after_crash()
    lan.run(PROBE_S)
    lan.step(N1, VipProbeResult(G, answered_by_other=False))
    assert [a.epoch for _, a in lan.of(N1, StartGroup)], "n1 takes over"
    assert lan.holders() == [N1]


def test_half_rule_without_a_ping_node_never_starts() -> None:
    """Two nodes, peer dead: a node that reaches no ping node may be the one cut off, so
    it does not start on its own promise, even if the VIP probe finds nobody."""
    lan = _pair_after_crash()
    lan.step(N1, PingResult(PING, reachable=False))  # lost while probing
    assert lan.nodes[N1].phase(G) is Phase.IDLE, "gives the attempt up at once"
    lan.run(PROBE_S)
    lan.step(N1, VipProbeResult(G, answered_by_other=False))
    lan.run(3.0)
    assert lan.of(N1, StartGroup) == []
    assert lan.holders() == []


def test_view_a_node_cut_off_from_ping_nodes_is_not_eligible_while_a_member_is_silent() -> None:
    """Tutorial test 3: reaching no ping node with a member silent, it may be the isolated
    one; with every member heard it is eligible again (nobody reaches one then)."""
    config = make_config(2, timings=TIMINGS)

    def status(name: NodeId, ping: int) -> NodeStatus:
        return NodeStatus(name, 1, 1, ping)

    cut = {N0: status(N0, 0), N1: status(N1, 0)}
    assert not View(config, cut, {N0}).eligible(G, N0), "n1 silent, no ping node"
    assert View(config, cut, {N0, N1}).eligible(G, N0), "both heard: nobody has one"
    assert View(config, {N0: status(N0, 1)}, {N0}).eligible(G, N0), "n1 silent, ping ok"


def test_view_a_node_whose_health_check_failed_is_not_eligible() -> None:
    config = make_config(2, timings=TIMINGS)
    sick = {N0: NodeStatus(N0, 1, 1, 1, unhealthy=(G,)), N1: NodeStatus(N1, 1, 1, 1)}
    view = View(config, sick, {N0, N1})
    assert not view.eligible(G, N0)
    assert view.candidates(G) == (N1,)


def test_a_node_of_two_cut_off_from_everything_never_claims() -> None:
    """The whole node is isolated (peer silent, ping node lost): no lease request goes
    out, let alone a probe or a start."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    lan.run_until(4.0)
    lan.step(N1, PingResult(PING, reachable=False))
    lan.run(1.0)
    assert lan.holders() == [N0], "n0 reaches the ping node: nothing moves"
    lan.dead.add(N0)
    lan.run(5.0)
    n1 = lan.nodes[N1]
    assert not n1.alive(N0)
    assert n1.target(G) is None
    assert n1.phase(G) is Phase.IDLE
    assert lan.of(N1, ProbeVip) == [] and lan.of(N1, StartGroup) == []


# ------------------------------------------------------------------ the voter


def _voter() -> Voter:
    return Voter(LEASE, RHO, start_s=-10.0)  # long past its start-up quiet period


def test_voter_refuses_the_holder_an_epoch_below_its_promise() -> None:
    """A late request from the holder's earlier claim must not move the promise back to
    an older epoch: epochs only increase."""
    v = _voter()
    assert v.on_request(0.0, A, LeaseRequest(G, 5, 1)).granted
    assert not v.on_request(0.1, A, LeaseRequest(G, 3, 2)).granted
    assert v.on_request(0.2, A, LeaseRequest(G, 5, 3)).granted, "the renewal at 5 still is"


def test_a_renewal_does_not_lose_the_promise_an_unused_one_restores() -> None:
    """B's renewal is no new promise: when B gives it back unused, A's lapsed promise at
    its own epoch comes back (A kept running on the two-node rule)."""
    v = _voter()
    v.on_request(0.0, A, LeaseRequest(G, 3, 1))
    later = voter_span_s(LEASE, RHO) + 0.1
    assert v.on_request(later, B, LeaseRequest(G, 4, 1)).granted
    assert v.on_request(later + 0.1, B, LeaseRequest(G, 4, 2)).granted  # B renews
    v.on_release(later + 0.2, B, G, 4, unused=True)
    assert v.on_request(later + 0.3, A, LeaseRequest(G, 3, 2)).granted


def test_a_release_from_another_node_or_epoch_ends_nothing() -> None:
    """Only the holder's release of the promised epoch ends the promise: a stale or
    foreign release leaves the holder covered and the group refused to others."""
    v = _voter()
    v.on_request(0.0, A, LeaseRequest(G, 3, 1))
    v.on_release(0.1, B, G, 3)  # not the holder
    v.on_release(0.1, A, G, 2)  # an older epoch of the holder
    assert v.promised(0.2, G) == A
    assert not v.on_request(0.2, B, LeaseRequest(G, 4, 1)).granted


def test_a_release_from_an_earlier_run_of_the_holder_ends_nothing() -> None:
    """A restarted holder may claim the very epoch its earlier run held (it remembers
    nothing): that run's release, delayed across the restart, must not end the promise
    the new run got (swarm seed 1536: two holders for 5 ms)."""
    v = _voter()
    assert v.on_request(0.0, A, LeaseRequest(G, 3, 1, inc=1)).granted
    assert v.on_request(0.5, A, LeaseRequest(G, 3, 1, inc=2)).granted  # the new run
    v.on_release(0.6, A, G, 3, inc=1)  # the old run's release, late
    assert v.promised(0.7, G) == A
    assert not v.on_request(0.7, B, LeaseRequest(G, 4, 1, inc=5)).granted
    v.on_release(0.8, A, G, 3, inc=2)  # the new run's own release does end it
    assert v.promised(0.9, G) is None


def test_a_late_request_from_an_earlier_run_does_not_take_the_promise_back() -> None:
    """Else the promise would belong to the dead run again, and its late release end it."""
    v = _voter()
    v.on_request(0.0, A, LeaseRequest(G, 3, 1, inc=1))
    v.on_request(0.5, A, LeaseRequest(G, 3, 1, inc=2))
    assert not v.on_request(0.6, A, LeaseRequest(G, 3, 7, inc=1)).granted
    v.on_release(0.7, A, G, 3, inc=1)
    assert v.promised(0.8, G) == A


def test_lease_messages_carry_the_run_and_read_without_it_as_zero() -> None:
    """Protocol 1.2 adds `i` to lreq, lrep and lrel; a peer before it sends none (0)."""
    req = LeaseRequest(G, 3, 9, inc=1_765_000_000_000_000)
    rep = LeaseReply(G, 3, 9, True, A, 3, 0.0, inc=req.inc)
    rel = LeaseRelease(G, 3, False, inc=req.inc)
    for msg in (req, rep, rel):
        wire = msg.to_wire()
        assert wire["i"] == req.inc and type(msg).from_wire(wire) == msg
        del wire["i"]
        assert type(msg).from_wire(wire) == replace(msg, inc=0)


# ------------------------------------------------------------------ the claimant


def test_a_grant_to_an_earlier_run_is_not_counted() -> None:
    """A new run numbers its requests from 1 again: a late grant to the earlier run's
    request of the same epoch and seq was given earlier than ours was sent, so counting
    it from our send time would outlast the voter's promise."""
    claim = Claim(G, 3, (A, B), LEASE, RHO, started_s=0.0, inc=2)
    req = claim.request(0.0, B, seq=1)
    claim.on_reply(0.01, B, LeaseReply(G, 3, req.seq, True, A, 3, 0.0, inc=1))
    assert claim.granting(0.1) == ()
    claim.on_reply(0.02, B, LeaseReply(G, 3, req.seq, True, A, 3, 0.0, inc=2))
    assert claim.granting(0.1) == (B,)


def test_a_reply_for_another_group_counts_nothing() -> None:
    claim = Claim(G, 3, (A, B), LEASE, RHO, started_s=0.0)
    req = claim.request(0.0, B, seq=1)
    claim.on_reply(0.0, B, LeaseReply("other", 3, req.seq, True, A, 3))
    assert claim.granting(0.1) == ()


def test_a_refusal_is_believed_for_the_voters_busy_time_stretched_by_drift() -> None:
    """The voter's busy time runs on its clock, which may be slower than ours: the
    refusal holds longer than `busy_s` of ours (lease.Claim.on_reply: 1 + 2 drift)."""
    claim = Claim(G, 3, (A, B), LEASE, RHO, started_s=0.0)
    claim.request(0.0, B, seq=1)
    claim.on_reply(0.0, B, LeaseReply(G, 3, 1, False, C, 3, 0.5))
    assert claim.refused_for_other(0.5 * (1 + RHO)) == (B,)


def test_a_late_refusal_does_not_cancel_a_running_grant() -> None:
    """Copies on two links: a refusal of an older request arriving after the voter's
    grant says nothing about the promise the voter now gives us."""
    claim = Claim(G, 3, (A, B), LEASE, RHO, started_s=0.0)
    claim.request(0.0, B, seq=1)
    req = claim.request(0.05, B, seq=2)
    claim.on_reply(0.06, B, LeaseReply(G, 3, req.seq, True, A, 3))
    claim.on_reply(0.07, B, LeaseReply(G, 3, 1, False, C, 3, 0.4))  # answer to seq 1
    assert claim.refused_for_other(0.1) == ()
    assert claim.granting(0.1) == (B,)


def test_one_promise_of_three_voters_is_no_half() -> None:
    """The two-node tie-break exists for an even voter count only."""
    claim = Claim(G, 3, (A, B, C), LEASE, RHO, started_s=0.0)
    claim.request(0.0, A, seq=1)
    claim.on_reply(0.0, A, LeaseReply(G, 3, 1, True, A, 3))
    assert claim.half_until_s() == float("-inf")
    assert claim.valid_until_s() == float("-inf")


# ------------------------------------------------------------------ node: the lease rule


def test_a_node_of_three_alone_never_starts_on_its_own_promise() -> None:
    """Both other voters dead: its own promise is a minority, whatever the ping node and
    the probe say (a minority partition must not run the group)."""
    lan = Lan(make_config(3, timings=TIMINGS), (N0, N1, N2))
    lan.run_until(4.0)
    assert lan.holders() == [N0]
    lan.dead.update({N0, N1})
    lan.run(5.0)
    n2 = lan.nodes[N2]
    assert not n2.alive(N0) and not n2.alive(N1)
    assert lan.of(N2, StartGroup) == []
    assert lan.holders() == []


def test_no_start_on_half_while_the_other_voter_lives_but_does_not_answer() -> None:
    """Two nodes, heartbeats flowing, n1's lease answers lost: n1 is alive and not
    promising n0, so the group is not n0's call."""
    lease = (LeaseReply, LeaseRequest)
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    lan.net = lambda src, dst, m: None if isinstance(m, lease) and N1 in (src, dst) else 0.0
    lan.run_until(5.0)
    assert lan.nodes[N0].alive(N1)
    assert lan.of(N0, ProbeVip) == [] and lan.of(N0, StartGroup) == []


def _on_half(pair: Lan) -> int:
    """n0 runs on the two-node rule: n1 crashed and is declared dead. Its epoch."""
    pair.run_until(4.0)
    assert pair.holders() == [N0]
    pair.dead.add(N1)
    pair.run(3.0)
    n0 = pair.nodes[N0]
    assert not n0.alive(N1) and pair.holders() == [N0]
    assert n0.majority_until_s(G) < pair.now_s, "on half"
    return n0.epoch(G)


def test_a_voter_promising_someone_else_ends_a_half_lease() -> None:
    """n0 runs on its own promise; n1's voter says it promised n1: n0 stops at once."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    epoch = _on_half(lan)
    t0 = lan.now_s
    lan.send(N1, N0, LeaseReply(G, epoch, 999, False, N1, epoch + 1, 0.5))
    stops = lan.of(N0, StopGroup, t0)
    assert [a.reason for _, a in stops] == [StopReason.LEASE_LOST]


def test_a_stopping_node_whose_half_lease_ends_goes_idle() -> None:
    """A stop that hangs is covered by the lease only: once a voter says it promised
    someone else, the node no longer counts the group as its own."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1), stop_ok=None)
    epoch = _on_half(lan)
    lan.step(N0, Shutdown())
    assert lan.nodes[N0].phase(G) is Phase.STOPPING
    lan.send(N1, N0, LeaseReply(G, epoch, 999, False, N1, epoch + 1, 0.5))
    assert lan.nodes[N0].phase(G) is Phase.IDLE


def test_the_holder_on_half_keeps_the_group_when_the_peer_restarts() -> None:
    """The peer comes back with a quiet voter (no promise to anyone yet): the holder keeps
    running; the peer's probe keeps the peer off."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    _on_half(lan)
    t0 = lan.now_s
    lan.restart(N1)
    lan.run(3.0)
    assert lan.nodes[N0].alive(N1)
    assert lan.of(N0, StopGroup, t0) == []
    assert lan.holders() == [N0]


def test_a_holder_on_half_called_stale_asks_again_higher_and_keeps_running() -> None:
    """A voter refuses n0's epoch as not new: n0 keeps its group and claims one above
    the highest epoch seen; without that refusal its epoch stays put."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    epoch = _on_half(lan)
    lan.run(2.0)
    assert lan.nodes[N0].epoch(G) == epoch, "no refusal: the same claim"
    t0 = lan.now_s
    lan.send(N1, N0, LeaseReply(G, epoch, 999, False, "", epoch + 3, 0.0))
    lan.run(0.5)
    assert lan.nodes[N0].epoch(G) > epoch + 3
    assert lan.of(N0, StopGroup, t0) == [] and lan.holders() == [N0]


def test_the_lease_is_checked_again_when_the_probe_answer_arrives() -> None:
    """Three nodes: n2's only grant to n1 came late, so the majority it makes lapses
    while n1 probes. The probe's answer, first thing after the lapse, starts nothing."""
    lan = Lan(make_config(3, timings=TIMINGS), (N0, N1, N2))
    lan.run_until(4.0)
    lan.hold_probes = True
    lan.dead.add(N0)
    granted: list[float] = []

    def net(src: NodeId, dst: NodeId, m: Message) -> float | None:
        if src == N2 and dst == N1 and isinstance(m, LeaseReply) and m.granted:
            granted.append(lan.now_s)
            return 0.4 if len(granted) == 1 else None  # one late grant, then lost
        return 0.0

    lan.net = net
    t0 = lan.now_s
    while not lan.of(N1, ProbeVip, t0):
        lan.run(DT)
        assert lan.now_s < t0 + 5.0, "n1 never probed"
    lapse_s = lan.nodes[N1].majority_until_s(G)
    probe_s = lan.of(N1, ProbeVip, t0)[0][0]
    assert lapse_s - probe_s < 0.2, "the answer is still fresh after the lapse"
    lan.now_s = lapse_s + 1e-3
    lan.step(N1, VipProbeResult(G, answered_by_other=False))
    assert lan.of(N1, StartGroup) == []


# ------------------------------------------------------------------ node: the VIP probe


def test_probe_answer_freshness_is_one_and_a_half_probes_shrunk_by_drift() -> None:
    """docs/design.md: the answer counts within 1.5 P (1 - drift) / (1 + drift) of the
    ProbeVip; just after that the node probes again instead of starting."""
    rho = TIMINGS.max_drift
    bound_s = 1.5 * PROBE_S * (1 - rho) / (1 + rho)
    for late, starts in ((-1e-6, True), (1e-6, False)):
        node = _node(make_config(2, timings=TIMINGS))
        t = _until_probe(node)
        out = node.step(t + bound_s + late, VipProbeResult(G, answered_by_other=False))
        assert any(isinstance(a, StartGroup) for a in out.actions) is starts
        assert any(isinstance(a, ProbeVip) for a in out.actions) is not starts


def test_a_probe_answer_for_a_running_group_changes_nothing() -> None:
    """A stray answer (an earlier attempt's) is not a reason to stop or release."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    lan.run_until(4.0)
    t0 = lan.now_s
    lan.step(N0, VipProbeResult(G, answered_by_other=True))
    lan.run(0.5)
    assert lan.holders() == [N0]
    assert lan.of(N0, StopGroup, t0) == []


# ------------------------------------------------------------------ node: adopted VIPs


def test_an_adopted_vip_without_a_lease_is_stopped_after_two_leases() -> None:
    """kill -9 left the VIP up; the restarted agent cannot get the peer's promise (its
    answers are lost): running on the probe alone ends after ADOPT_LIMIT_LEASES leases."""
    assert ADOPT_LIMIT_LEASES == 2.0
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    lan.net = lambda src, dst, m: None if isinstance(m, LeaseReply) and src == N1 else 0.0
    lan.step(N0, FoundRunning((G,)))
    lan.run(2 * L - 0.02)
    assert lan.of(N0, StopGroup) == [], "not before two leases"
    lan.run(0.05)
    assert [a.reason for _, a in lan.of(N0, StopGroup)] == [StopReason.LEASE_LOST]
    assert lan.of(N0, StartGroup) == []


def test_an_adopted_vip_yields_to_a_live_holder_even_at_a_lower_epoch() -> None:
    """n1 runs the group at epoch 1; n0's restarted agent finds its old VIP after hearing
    n1 (its claim is at 2): the orphan VIP is n0's, which stops it at once."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    lan.dead.add(N0)
    lan.run_until(5.0)
    assert lan.holders() == [N1]
    lan.restart(N0)
    lan.run(0.5)
    t0 = lan.now_s
    lan.step(N0, FoundRunning((G,)))
    assert lan.nodes[N0].epoch(G) > lan.nodes[N1].epoch(G)
    lan.run(DT)
    stops = lan.of(N0, StopGroup, t0)
    assert [a.reason for _, a in stops] == [StopReason.SUPERSEDED]
    assert lan.of(N0, StartGroup) == []


# ------------------------------------------------------------------ node: stops


def test_a_failed_stop_releases_nothing() -> None:
    """The VIP may still be up: the promises must run out, not be handed back."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1), stop_ok=False)
    lan.run_until(4.0)
    t0 = lan.now_s
    lan.step(N0, Shutdown())
    lan.run(1.0)
    assert [a.reason for _, a in lan.of(N0, StopGroup, t0)] == [StopReason.SHUTDOWN]
    assert not [m for t, _, _, m in lan.sent if t >= t0 and isinstance(m, LeaseRelease)]


# ------------------------------------------------------------------ node: the handover fast path


@dataclass
class Handover:
    """n0 stops gracefully and releases; n1's lease answers are held back until `resume`,
    so a test can change what n1 knows between the release and n1's start."""

    lan: Lan
    held: bool = True

    def resume(self) -> bool:
        """Let the answers through; True if n1 then starts without probing the VIP."""
        self.held = False
        t0 = self.lan.now_s
        self.lan.run(2.0)
        starts = self.lan.of(N1, StartGroup, t0)
        assert starts, "n1 never took over"
        return not [t for t, _ in self.lan.of(N1, ProbeVip, t0) if t <= starts[0][0]]


def _handover(config: Config | None = None, dead: frozenset[NodeId] = frozenset()) -> Handover:
    config = config or make_config(3, timings=TIMINGS)
    names = tuple(NodeId(n.name) for n in config.nodes)
    lan = Lan(config, names)
    ho = Handover(lan)

    def net(src: NodeId, dst: NodeId, m: Message) -> float | None:
        return None if ho.held and dst == N1 and isinstance(m, LeaseReply) else 0.0

    lan.run_until(4.0)
    assert lan.holders() == [N0]
    if dead:
        lan.dead.update(dead)
        lan.run(3.0)  # declared dead
    lan.net = net
    t0 = lan.now_s
    lan.step(N0, Shutdown())
    while not [m for t, s, _, m in lan.sent if t >= t0 and s == N0 and isinstance(m, LeaseRelease)]:
        lan.run(DT)
        assert lan.now_s < t0 + 2.0, "n0 never released"
    lan.run(DT)  # delivered
    return ho


def test_handover_after_a_release_skips_the_probe() -> None:
    """The fast path itself: the tests below each break one of its conditions."""
    assert _handover().resume()


def test_handover_probes_when_a_member_is_dead() -> None:
    """A dead member could be an agent that won a later epoch and still has its VIP."""
    assert not _handover(dead=frozenset({N2})).resume()


def test_handover_probes_when_the_release_is_older_than_a_lease() -> None:
    ho = _handover()
    ho.lan.run(TIMINGS.lease_s + 0.1)
    assert not ho.resume()


def test_handover_probes_after_a_stall() -> None:
    """Nothing learned before a stall is fresh, the release included."""
    ho = _handover()
    ho.lan.step(N1, Stalled(0.05))
    assert not ho.resume()


def test_handover_probes_when_a_later_epoch_was_seen_held() -> None:
    """After the release n2's status showed it running at a later epoch (then dropped
    it): the released VIP is not the latest one."""
    ho = _handover()
    epoch = ho.lan.nodes[N0].epoch(G)
    for version, holding in ((1000, (Held(G, epoch + 1),)), (1001, ())):
        status = NodeStatus(N2, 1, version, 1, holding=holding)
        ho.lan.send(N2, N1, Heartbeat(status, (), None, ()))
    assert not ho.resume()


def test_handover_probes_when_a_voter_reports_a_higher_epoch() -> None:
    """A voter has promised an epoch above n1's claim: someone may run it."""
    ho = _handover()
    n1 = ho.lan.nodes[N1]
    assert n1.phase(G) is Phase.ACQUIRING
    epoch = n1.epoch(G)
    ho.lan.send(N2, N1, LeaseReply(G, epoch, 999, False, "", epoch + 2, 0.0))
    assert not ho.resume()


def test_handover_on_the_two_voter_half_rule_probes() -> None:
    """Voters n1 and a witness; the witness is dead, so n1's own promise is half: the
    half rule's safety is the probe, release or not."""
    base = make_config(3, witnesses=1, timings=TIMINGS)
    nodes = tuple(replace(n, voter=True) if n.name == N1 else n for n in base.nodes)
    config = replace(base, nodes=nodes)
    assert [n.name for n in config.voters] == [N1, W0]
    assert not _handover(config, dead=frozenset({W0})).resume()


def test_a_claimant_told_the_other_voter_promised_someone_else_does_not_probe() -> None:
    """Claimant side of the same rule: n0's agent is gone, but its voter had answered n1
    that it promised n0 for 2 s more. n1 must not take the two-node rule (the VIP probe
    would be all that stands between it and n0's VIP)."""
    lan = Lan(make_config(2, timings=TIMINGS), (N0, N1))
    lan.run_until(4.0)
    assert lan.holders() == [N0]
    lan.dead.add(N0)
    lan.hold_probes = True
    t0 = lan.now_s
    while lan.nodes[N1].phase(G) is Phase.IDLE and lan.now_s < t0 + 5.0:
        lan.run(DT)
    assert lan.nodes[N1].phase(G) is Phase.ACQUIRING
    epoch = lan.nodes[N1].epoch(G)
    lan.send(N0, N1, LeaseReply(G, epoch, 1, False, N0, epoch - 1, 2.0))
    lan.run(1.0)
    assert lan.of(N1, ProbeVip, t0) == [] and lan.of(N1, StartGroup, t0) == []
