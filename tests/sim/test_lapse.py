"""Two nodes, both voters: a holder that stops renewing our promise is dead at the lapse.

With the tutorial's files (keepalive 2 s) phi's floor of three keepalives made a host crash
cost about 6 s of silence before the slave could claim. The holder renews its promise from
the slave every half second, so the promise's lapse says the same thing a third of the way
in (`Membership.renewal_lapsed`). These check it shortens the crash and moves nothing under
loss or when the holder merely stops renewing.
"""

from __future__ import annotations

import pytest

from gossipha.config.model import Timings
from gossipha.core.detector import DEAD_FLOOR_BEATS
from gossipha.core.lease import voter_span_s
from gossipha.core.membership import QUIET_FLOOR_BEATS
from gossipha.core.types import AdminCommand, AdminKind
from gossipha.sim.harness import Sim, make_config
from gossipha.sim.net import PathOptions

# What gossipha reads from the tutorial's ha.cf (ping interval = keepalive, deadping =
# deadtime, the default 2 s lease): gossipha/config/hacf.py.
TUTORIAL = Timings(
    keepalive_s=2.0, deadtime_s=30.0, warntime_s=10.0, initdead_s=60.0,
    ping_interval_s=2.0, deadping_s=30.0,
)  # fmt: skip
SPAN_S = voter_span_s(TUTORIAL.lease_s, TUTORIAL.max_drift)
LAPSE_S = max(SPAN_S, QUIET_FLOOR_BEATS * TUTORIAL.keepalive_s)
PHI_FLOOR_S = DEAD_FLOOR_BEATS * TUTORIAL.keepalive_s


def _sim(seed: int, path: PathOptions | None = None) -> Sim:
    sim = Sim(make_config(2, timings=TUTORIAL), seed, roundtrip=True, path=path)
    sim.run_until(10.0)
    assert sim.holders("g0") == ["n0"], sim.trace
    return sim


@pytest.mark.parametrize("seed", range(8))
def test_host_crash_slave_claims_at_the_lapse_not_phi_floor(seed: int) -> None:
    sim = _sim(seed)
    # Crash at a different phase of the 2 s heartbeat and 0.5 s renewal rhythm each seed.
    sim.run_until(sim.now_s + 0.27 * seed)
    sim.crash_host("n0")
    t0 = sim.now_s
    sim.run_until(t0 + PHI_FLOOR_S + 2.0)
    assert sim.holders("g0") == ["n1"], sim.trace
    dead = [t for t, by, peer in sim.stats.dead_notices if by == "n1" and peer == "n0"]
    assert dead, sim.trace
    assert dead[0] - t0 <= LAPSE_S + 0.1, "declared dead by the lapse, not phi's 6 s floor"
    start = next(t for t, host, _, _ in sim.stats.starts if host == "n1")
    # Before: about PHI_FLOOR_S - (time since the last heartbeat), 4-6 s.
    assert start - t0 < LAPSE_S + 0.5
    assert not sim.violations


@pytest.mark.parametrize("seed", range(4))
def test_twenty_percent_loss_for_three_minutes_moves_nothing_and_kills_nobody(
    seed: int,
) -> None:
    sim = _sim(100 + seed)
    sim.net.default = PathOptions(loss=0.2)
    sim.run_until(sim.now_s + 180.0)
    assert sim.holders("g0") == ["n0"], sim.trace
    assert not sim.stats.dead_notices, sim.trace
    assert not sim.stats.stops
    assert [s[1] for s in sim.stats.starts] == ["n0"]
    assert not sim.violations


def test_graceful_stop_release_lost_no_false_death() -> None:
    """The holder stops and its release and status push are lost: it still heartbeats,
    so the lapse of the promise it no longer renews accuses nobody."""
    sim = _sim(200)
    sim.net.paths[("n0", "n1")] = PathOptions(loss=1.0)
    sim.deliver("n0", AdminCommand(AdminKind.STANDBY))
    sim.run_until(sim.now_s + 0.3)  # the release and the pushed status are gone
    del sim.net.paths[("n0", "n1")]
    sim.run_until(sim.now_s + 10.0)
    assert not [d for d in sim.stats.dead_notices if d[2] == "n0"], sim.trace
    assert sim.holders("g0") == ["n1"], sim.trace
    assert not sim.violations
