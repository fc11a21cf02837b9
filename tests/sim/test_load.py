"""What each node sends in steady state (docs/failure-detection.md "Gossip", docs/design.md
"Renewal"): flat with N, counted over the real `Node` in the simulator, no faults."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from gossipha.config.model import Timings
from gossipha.core.lease import RENEW_AGE_FRACTION, RIDE_FRACTION, majority
from gossipha.core.types import MAX_RELAY, Heartbeat, LeaseRequest, Message
from gossipha.sim.harness import HEADER_BYTES, Sim, make_config, native_timings

TIMINGS = native_timings()
WINDOW_S = 10.0


class Recording(Sim):
    """The simulator, keeping every message sent while `recording` is set."""

    recording = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[float, str, str, Message]] = []
        super().__init__(*args, **kwargs)

    def _send(self, src: str, dst: str, message: Any) -> None:
        if self.recording:
            self.sent.append((self.now_s, src, dst, message))
        super()._send(src, dst, message)


def _steady(n: int, seed: int = 1) -> Recording:
    sim = Recording(make_config(n, timings=TIMINGS), seed)
    sim.run_until(TIMINGS.initdead_s + 1.0)
    assert len(sim.holders("g0")) == 1
    sim.recording = True
    sim.run_until(sim.now_s + WINDOW_S)
    sim.recording = False
    return sim


def _requests(sim: Recording, src: str) -> list[tuple[float, str, bool]]:
    """(time, voter, carried by a heartbeat) of every lease request `src` sent."""
    found = []
    for t, s, dst, m in sim.sent:
        if s == src and isinstance(m, LeaseRequest):
            found.append((t, dst, False))
        elif s == src and isinstance(m, Heartbeat) and m.requests:
            found.extend((t, dst, True) for _ in m.requests)
    return found


def _per_node(sim: Recording, n: int) -> tuple[float, float]:
    msgs = len(sim.sent)
    size = sum(
        HEADER_BYTES + len(json.dumps(m.to_wire(), separators=(",", ":"))) for *_, m in sim.sent
    )
    return msgs / (n * WINDOW_S), size / (n * WINDOW_S)


def test_node_load_per_node_is_flat_from_2_to_16() -> None:
    """Messages and bytes per node per second, heartbeats plus lease plus relayed statuses:
    at most 2x apart over the sizes (bench/sim_scale.py measures up to N = 128)."""
    loads = {n: _per_node(_steady(n), n) for n in (2, 3, 5, 7, 16)}
    msgs = [m for m, _ in loads.values()]
    size = [b for _, b in loads.values()]
    assert max(msgs) / min(msgs) <= 2.0, loads
    assert max(size) / min(size) <= 2.0, loads


def test_the_holder_renews_with_a_majority_not_every_voter() -> None:
    sim = _steady(5)
    holder = sim.holders("g0")[0]
    sent = _requests(sim, holder)
    asked = Counter(dst for _, dst, _ in sent)
    voters = {v.name for v in sim.config.voters}
    assert len(voters) == 5
    # Ourselves (answered locally, never sent) and two others: the same two throughout.
    remote = majority(5) - (1 if holder in voters else 0)
    assert len(asked) == remote, asked
    # At native timings every renewal rides a heartbeat (lease.RIDE_FRACTION): one round
    # per keepalive, sent in the heartbeat's step, never on a wake-up of its own.
    assert TIMINGS.keepalive_s <= (RENEW_AGE_FRACTION + RIDE_FRACTION) * TIMINGS.lease_s
    rounds = WINDOW_S / TIMINGS.keepalive_s
    for count in asked.values():
        assert rounds * 0.9 <= count <= rounds * 1.1, asked
    beats = {t for t, src, _, m in sim.sent if src == holder and isinstance(m, Heartbeat)}
    assert all(t in beats for t, _, _ in sent)
    # A voter that gets our heartbeat in that step (the monitor, always) gets the request
    # in it; the other is asked apart.
    assert any(carried for *_, carried in sent) and not all(carried for *_, carried in sent)


def test_two_nodes_carry_every_renewal_in_a_heartbeat() -> None:
    sim = _steady(2)
    holder = sim.holders("g0")[0]
    sent = _requests(sim, holder)
    assert len(sent) >= 0.9 * WINDOW_S / TIMINGS.keepalive_s
    assert all(carried for *_, carried in sent), "a renewal went apart"


def test_without_heartbeats_to_ride_the_holder_renews_every_quarter_lease() -> None:
    """The tutorial's 2 s keepalive is longer than a renewal may wait: rounds on time."""
    timings = Timings(
        keepalive_s=2.0, deadtime_s=30.0, warntime_s=10.0, initdead_s=60.0,
        ping_interval_s=2.0, deadping_s=30.0,
    )  # fmt: skip
    sim = Recording(make_config(2, timings=timings), 1)
    sim.run_until(timings.initdead_s + 4.0)
    holder = sim.holders("g0")[0]
    sim.recording = True
    sim.run_until(sim.now_s + 20.0)
    asked = _requests(sim, holder)
    rounds = 20.0 / (timings.lease_s * RENEW_AGE_FRACTION)
    assert rounds * 0.9 <= len(asked) <= rounds * 1.1, len(asked)


def test_monitor_heartbeats_carry_no_relayed_statuses() -> None:
    n = 5
    sim = _steady(n)
    beats = [(src, dst, m) for _, src, dst, m in sim.sent if isinstance(m, Heartbeat)]
    monitor_of = {}  # each node's ring successor: the peer it beats to most
    for src in sim.hosts:
        per_dst = Counter(dst for s, dst, _ in beats if s == src)
        monitor_of[src] = per_dst.most_common(1)[0][0]
        assert per_dst[monitor_of[src]] == WINDOW_S / TIMINGS.keepalive_s
    relays = Counter(src for src, dst, m in beats if m.relay and dst != monitor_of[src])
    assert all(not m.relay for src, dst, m in beats if dst == monitor_of[src])
    assert all(len(m.relay) <= MAX_RELAY for _, _, m in beats)
    assert set(relays) == set(sim.hosts), "gossip heartbeats still relay"


def test_every_node_knows_every_status_after_the_first_round() -> None:
    """A (re)started node tells every peer at once: no waiting for relays."""
    n = 16
    sim = Sim(make_config(n, timings=TIMINGS), 3)
    sim.run_until(TIMINGS.keepalive_s / 2)
    for h in sim.hosts.values():
        assert h.node is not None
        assert len(h.node.statuses()) == n, h.name
