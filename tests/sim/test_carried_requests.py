"""Lease requests ride the heartbeat to a peer that can carry them (docs/protocol.md,
"Messages"), and go apart to one that cannot: a rolling upgrade from a release whose
heartbeats have no "lq" keeps the lease without a lapse."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gossipha.core.types import Heartbeat, LeaseReply, LeaseRequest
from gossipha.sim.harness import Sim, make_config, native_timings

TIMINGS = replace(native_timings(), initdead_s=1.5)
OLD = "n1"


class OneOldNode(Sim):
    """n1 speaks like a release before "lq": its heartbeats lack the key, and requests
    carried to it would be ignored (dropped here, so a wrong carry shows as a lapse)."""

    old = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent_log: list[tuple[float, str, str, Any]] = []
        super().__init__(*args, **kwargs)

    def _send(self, src: str, dst: str, message: Any) -> None:
        if self.old and isinstance(message, Heartbeat) and src == OLD:
            message = replace(message, requests=None)
        self.sent_log.append((self.now_s, src, dst, message))  # as the new node sent it
        if self.old and isinstance(message, Heartbeat) and dst == OLD and message.requests:
            message = replace(message, requests=())
        super()._send(src, dst, message)


def _requests_to(sim: OneOldNode, dst: str, since_s: float) -> tuple[int, int]:
    """(apart, carried) requests sent to `dst` since `since_s`."""
    apart = carried = 0
    for t, _, d, m in sim.sent_log:
        if d != dst or t < since_s:
            continue
        if isinstance(m, LeaseRequest):
            apart += 1
        elif isinstance(m, Heartbeat) and m.requests:
            carried += len(m.requests)
    return apart, carried


def test_an_older_peer_gets_requests_apart_and_the_lease_holds_through_its_upgrade() -> None:
    sim = OneOldNode(make_config(2, timings=TIMINGS), 3, roundtrip=True)
    sim.run_until(4.0)
    assert sim.holders("g0") == ["n0"]
    sim.run_until(10.0)
    apart, carried = _requests_to(sim, OLD, 4.0)
    rounds = 6.0 / TIMINGS.keepalive_s  # renewals still ride the beats, apart
    assert carried == 0 and 0.9 * rounds <= apart <= 1.1 * rounds
    replies = [
        m for t, s, _, m in sim.sent_log if t >= 4.0 and s == OLD and isinstance(m, LeaseReply)
    ]
    assert replies and all(r.granted for r in replies)
    sim.old = False  # n1 restarts on the new release
    sim.run_until(16.0)
    apart, carried = _requests_to(sim, OLD, 11.0)
    assert apart == 0 and carried >= 0.9 * 5.0 / TIMINGS.keepalive_s
    assert sim.holders("g0") == ["n0"]
    assert not [s for s in sim.stats.stops if s[1] == "n0"], "the holder lost its lease"
