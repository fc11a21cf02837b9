"""The node's rules (gossipha/core/node.py, docs/design.md), each tested on its own.

Pure tests drive one `Node` with hand-set `now_s`; the placement rules that need two or
three agents talking use the simulator without drift or loss (tests/sim has the chaos).
"""

from __future__ import annotations

import random
from dataclasses import replace

from gossipha.config.model import Config
from gossipha.core.lease import holder_span_s, voter_span_s
from gossipha.core.node import PROBE_FRESH_PROBES, WAKEUP_FLOOR_S, Node, Phase
from gossipha.core.types import (
    AdminCommand,
    AdminKind,
    GroupName,
    Heartbeat,
    LeaseReply,
    LeaseRequest,
    MessageReceived,
    NodeId,
    Output,
    ProbeVip,
    ResourceAction,
    ResourceResult,
    Stalled,
    StartGroup,
    StopGroup,
    StopReason,
    Tick,
    VipProbeResult,
)
from gossipha.sim.harness import Sim, make_config, native_timings

G = GroupName("g0")
TIMINGS = replace(native_timings(), initdead_s=1.5, failback_delay_s=2.0)
PROBE_S = TIMINGS.vip_probe_count * TIMINGS.vip_probe_interval_s


def _node(config: Config, name: str = "n0") -> Node:
    return Node(replace(config, node_name=name), 1, random.Random(0), 0.0)


def _until_probe(node: Node) -> float:
    """Tick a lone n0 of a pair until it probes the VIP (peer never heard: two-node rule)."""
    t = 0.0
    while t < 5.0:
        t += 0.05
        out = node.step(t, Tick())
        if any(isinstance(a, ProbeVip) for a in out.actions):
            return t
    raise AssertionError("never probed")


def _actions(out: Output) -> list[object]:
    return list(out.actions)


# ------------------------------------------------------------------ the VIP probe


def test_no_claim_when_the_probe_is_answered() -> None:
    node = _node(make_config(2, timings=TIMINGS))
    t = _until_probe(node)
    out = node.step(t + PROBE_S, VipProbeResult(G, answered_by_other=True))
    assert not any(isinstance(a, StartGroup) for a in out.actions)
    assert node.phase(G) is Phase.IDLE
    assert any(n.kind.value == "split_brain_risk" for n in out.notices)


def test_unanswered_fresh_probe_starts_the_group() -> None:
    node = _node(make_config(2, timings=TIMINGS))
    t = _until_probe(node)
    out = node.step(t + PROBE_S, VipProbeResult(G, answered_by_other=False))
    assert [a for a in out.actions if isinstance(a, StartGroup)]
    assert node.running() == (G,)


def test_a_late_probe_answer_is_not_trusted_it_probes_again() -> None:
    node = _node(make_config(2, timings=TIMINGS))
    t = _until_probe(node)
    late = t + PROBE_FRESH_PROBES * PROBE_S + 0.01
    out = node.step(late, VipProbeResult(G, answered_by_other=False))
    assert not any(isinstance(a, StartGroup) for a in out.actions)
    assert any(isinstance(a, ProbeVip) for a in out.actions), "a fresh probe instead"
    out = node.step(late + PROBE_S, VipProbeResult(G, answered_by_other=False))
    assert any(isinstance(a, StartGroup) for a in out.actions)


def test_a_stall_voids_the_pending_probe() -> None:
    node = _node(make_config(2, timings=TIMINGS))
    t = _until_probe(node)
    node.step(t + 0.01, Stalled(0.01))
    out = node.step(t + PROBE_S, VipProbeResult(G, answered_by_other=False))
    assert not any(isinstance(a, StartGroup) for a in out.actions)


def test_a_stop_result_of_an_earlier_epoch_does_not_end_the_current_stop() -> None:
    """A runtime runs one group's actions in order, so a stop that outlived its claim
    reports while the next claim is stopping. Taken for the current stop, it would release
    that epoch with its VIP still up (swarm seed 14,805): only the current epoch's counts."""
    node = _node(make_config(2, timings=TIMINGS))
    t = _until_probe(node)
    out = node.step(t + PROBE_S, VipProbeResult(G, answered_by_other=False))
    (start,) = [a for a in out.actions if isinstance(a, StartGroup)]
    t += PROBE_S + 0.01
    node.step(t, ResourceResult(G, ResourceAction.START, True, start.epoch))
    out = node.step(t + 0.01, AdminCommand(AdminKind.STANDBY))
    (stop,) = [a for a in out.actions if isinstance(a, StopGroup)]
    assert stop.epoch == start.epoch
    assert node.phase(G) is Phase.STOPPING
    node.step(t + 0.02, ResourceResult(G, ResourceAction.STOP, True, stop.epoch - 1))
    assert node.phase(G) is Phase.STOPPING, "an earlier epoch's stop ended this one"
    node.step(t + 0.03, ResourceResult(G, ResourceAction.START, False, stop.epoch - 1))
    assert node.phase(G) is Phase.STOPPING
    node.step(t + 0.04, ResourceResult(G, ResourceAction.STOP, True, stop.epoch))
    assert node.phase(G) is Phase.IDLE


# ------------------------------------------------------------------ the lease


def test_holder_stops_before_its_lease_can_lapse_at_any_voter() -> None:
    """Three nodes: n0 gets n1's promise once, then hears nothing. Its StopGroup comes
    before n1's promise can end, even with n0's clock slow and n1's fast by the bound."""
    config = make_config(3, timings=TIMINGS, ping=False)
    node = _node(config)
    sent: dict[NodeId, tuple[float, LeaseRequest]] = {}
    t, started_at, stopped_at = 0.0, None, None
    answered = False
    while t < 8.0:
        t += 0.01
        out = node.step(t, Tick())
        for s in out.sends:
            if isinstance(s.message, LeaseRequest) and s.to == "n1" and not answered:
                sent[s.to] = (t, s.message)
        outs = [out]
        if "n1" in sent and not answered:
            answered = True
            t0, req = sent["n1"]
            reply = LeaseReply(req.group, req.epoch, req.seq, True, "n0", req.epoch)
            outs.append(node.step(t, MessageReceived("hb", NodeId("n1"), reply)))
        for a in [a for o in outs for a in o.actions]:
            if isinstance(a, ProbeVip):
                out2 = node.step(t, VipProbeResult(G, False))
                if any(isinstance(x, StartGroup) for x in out2.actions):
                    started_at = t
            if isinstance(a, StopGroup):
                assert a.reason is StopReason.LEASE_LOST
                stopped_at = t
        if stopped_at is not None:
            break
    assert started_at is not None and stopped_at is not None
    t0 = sent["n1"][0]
    rho = TIMINGS.max_drift
    assert stopped_at <= t0 + holder_span_s(TIMINGS.lease_s, rho) + 0.011
    # Worst case: n0's clock slow (its seconds are longer), n1's fast, answer instant.
    holder_real = (stopped_at - t0) / (1 - rho)
    voter_real = voter_span_s(TIMINGS.lease_s, rho) / (1 + rho)
    assert holder_real < voter_real


def _sim(members: int = 2, seed: int = 1, **kw: object) -> Sim:
    sim = Sim(make_config(members, timings=TIMINGS, **kw), seed, drift=False)  # type: ignore[arg-type]
    sim.run_until(4.0)
    assert sim.holders("g0") == ["n0"], sim.trace
    return sim


def _admin(sim: Sim, name: str, kind: AdminKind) -> None:
    sim.deliver(name, AdminCommand(kind))


def test_epochs_increase_with_every_new_holder() -> None:
    sim = _sim(3)
    for victim in ("n0", "n1", "n0"):
        holder = sim.holders("g0")[0]
        sim.crash_host(holder)
        sim.run_until(sim.now_s + 4.0)
        sim.restart(holder)
        sim.run_until(sim.now_s + 4.0)
        del victim
    epochs = [e for _, _, _, e in sim.stats.starts]
    assert epochs == sorted(set(epochs)) and len(epochs) >= 4
    assert not sim.violations


def test_graceful_release_hands_over_at_once() -> None:
    sim = _sim(3)
    t0 = sim.now_s
    sim.graceful_stop("n0")
    sim.run_until(t0 + 1.0)
    new = [t - t0 for t, host, _, _ in sim.stats.starts if host != "n0"]
    assert new and new[0] < 0.3, "no waiting out the lease after an explicit release"
    assert not sim.violations


def test_ping_node_loss_hands_over_and_auto_failback_waits_failback_delay() -> None:
    sim = _sim(2)
    sim.set_ping("n0", False)
    sim.run_until(sim.now_s + TIMINGS.deadping_s + 1.0)
    assert sim.holders("g0") == ["n1"]
    sim.set_ping("n0", True)
    back = sim.now_s + TIMINGS.ping_interval_s
    sim.run_until(back + TIMINGS.failback_delay_s - 0.2)
    assert sim.holders("g0") == ["n1"], "failback waits failback_delay_s"
    sim.run_until(back + TIMINGS.failback_delay_s + 1.0)
    assert sim.holders("g0") == ["n0"]
    assert not sim.violations


def test_no_auto_failback_when_off() -> None:
    sim = _sim(2, auto_failback=False)
    sim.crash_host("n0")
    sim.run_until(sim.now_s + 3.0)
    sim.restart("n0")
    sim.run_until(sim.now_s + 10.0)
    assert sim.holders("g0") == ["n1"]


def test_standby_gives_up_and_takeover_takes_back() -> None:
    sim = _sim(2)
    _admin(sim, "n0", AdminKind.STANDBY)
    sim.run_until(sim.now_s + 1.0)
    assert sim.holders("g0") == ["n1"]
    sim.run_until(sim.now_s + 5.0)
    assert sim.holders("g0") == ["n1"], "a standby node is not eligible, even preferred"
    _admin(sim, "n0", AdminKind.TAKEOVER)
    sim.run_until(sim.now_s + 1.0)
    assert sim.holders("g0") == ["n0"], "takeover moves it at once, no failback delay"
    assert not sim.violations


def test_takeover_on_the_other_node_moves_the_group_while_the_preferred_is_up() -> None:
    """hb_takeover on the slave: the group moves to it at once and stays, until a later
    takeover on the preferred node takes it back (the latest command wins)."""
    sim = _sim(2)
    sim.run_until(sim.now_s + 1.0)
    assert sim.holders("g0") == ["n0"]
    _admin(sim, "n1", AdminKind.TAKEOVER)
    sim.run_until(sim.now_s + 1.0)
    assert sim.holders("g0") == ["n1"], "takeover on the other node moves the group"
    sim.run_until(sim.now_s + TIMINGS.failback_delay_s + 5.0)
    assert sim.holders("g0") == ["n1"], "no failback over a takeover"
    _admin(sim, "n0", AdminKind.TAKEOVER)
    sim.run_until(sim.now_s + 1.0)
    assert sim.holders("g0") == ["n0"], "a later takeover on n0 wins"
    assert not sim.violations


def test_maintenance_freezes_placement() -> None:
    sim = _sim(2)
    _admin(sim, "n1", AdminKind.MAINTENANCE_ON)
    sim.set_ping("n0", False)  # would hand over to n1 (ipfail) outside maintenance
    sim.run_until(sim.now_s + 3.0)
    assert sim.holders("g0") == ["n0"], "nobody hands over during maintenance"
    _admin(sim, "n1", AdminKind.MAINTENANCE_OFF)
    sim.run_until(sim.now_s + 2.0)
    assert sim.holders("g0") == ["n1"]
    assert not sim.violations


def test_kill_9_leaves_the_vip_and_the_restart_adopts_it() -> None:
    sim = _sim(2)
    sim.kill_agent("n0")
    sim.run_until(sim.now_s + 3.0)
    assert sim.holders("g0") == ["n0"], "the peer's probe saw the VIP and did not claim"
    sim.restart("n0")
    sim.run_until(sim.now_s + 3.0)
    node = sim.hosts["n0"].node
    assert node is not None and node.phase(G) is Phase.RUNNING
    assert not sim.stats.stops
    assert not sim.violations


def test_a_stall_is_not_blamed_on_the_peers() -> None:
    """After Stalled, peers are judged from now: our own silence accuses nobody at once."""
    sim = _sim(2)
    sim.pause("n1", 3.0)
    notices: list[str] = []
    real_perform = sim._perform

    def spy(h, out):  # type: ignore[no-untyped-def]
        notices.extend(f"{h.name}:{n.kind.value}:{n.peer}" for n in out.notices)
        real_perform(h, out)

    sim._perform = spy  # type: ignore[method-assign]
    sim.run_until(sim.now_s + 3.5)
    assert "n1:peer_dead:n0" not in notices
    assert sim.holders("g0") == ["n0"]
    assert not sim.violations


# ------------------------------------------------------------------ lease replies


def test_a_request_copy_from_another_link_gets_no_second_identical_reply() -> None:
    """Each request arrives once per link and is answered on the link it came in on: the
    copy is not answered again, a new request (new seq) is, and so is the same seq much
    later (a restarted claimant numbering from scratch)."""
    node = _node(make_config(2, timings=TIMINGS), "n1")
    t = TIMINGS.lease_s * 3  # past the voter's start-up quiet span

    def replies(now_s: float, seq: int, link: str) -> list[LeaseReply]:
        req = LeaseRequest(G, 2, seq)
        out = node.step(now_s, MessageReceived(link, NodeId("n0"), req))
        sent = [s for s in out.sends if isinstance(s.message, LeaseReply)]
        assert all(s.link == link for s in sent), "answered on another link"
        return [s.message for s in sent if isinstance(s.message, LeaseReply)]

    (first,) = replies(t, 7, "eth1")
    assert first.granted and first.seq == 7
    assert replies(t + 0.002, 7, "eth0") == []  # the other link's copy
    (renewal,) = replies(t + 0.15, 8, "eth1")
    assert renewal.granted and renewal.seq == 8
    assert replies(t + 0.151, 8, "eth0") == []
    (again,) = replies(t + 0.15 + TIMINGS.lease_s, 8, "eth1")  # long after: answered
    assert again.seq == 8


def test_a_lease_message_inside_the_wakeup_floor_does_not_skip_a_due_heartbeat() -> None:
    """The quiet shortcut compares with the deadline, not the wakeup the 1 ms floor raised:
    a request arriving between the two still gets the heartbeat that fell due."""
    node = _node(make_config(2, timings=TIMINGS), "n1")
    now_s, out = 0.0, node.step(0.0, Tick())
    while not (node._due_s == node._next_beat_s and node._due_s - now_s > 0.01):
        now_s = out.next_wakeup_s
        out = node.step(now_s, Tick())
        assert now_s < 1.0, "never settled on the next heartbeat"
    due_s = node._due_s
    out = node.step(due_s - WAKEUP_FLOOR_S / 2, Tick())  # the floor puts the wakeup past it
    assert out.next_wakeup_s > due_s
    request = MessageReceived("eth1", NodeId("n0"), LeaseRequest(G, 1, 3))
    out = node.step(due_s + WAKEUP_FLOOR_S / 5, request)
    assert [type(s.message) for s in out.sends] == [LeaseReply, Heartbeat]
