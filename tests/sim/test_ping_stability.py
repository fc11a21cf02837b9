"""ipfail only on a stable ping advantage, and initdead only for peers never heard.

Found in the lab with real agents: `ifdown eth1` on both (and `ifup`) makes both nodes lose
(regain) the ping node a few ms apart; the master handed the group over for the slave's
transient advantage and took it back (~1.8 s outage). And a master crashing 2 s after
start-up left the slave waiting out initdead (60 s) although it had heard the master.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from gossipha.config.model import Timings
from gossipha.core.node import PING_STABLE_BEATS, PING_STABLE_INTERVALS
from gossipha.sim.harness import Sim, make_config, native_timings

SEEDS = range(12)
T = native_timings()
STABLE_S = PING_STABLE_INTERVALS * T.ping_interval_s + PING_STABLE_BEATS * T.keepalive_s


def _sim(seed: int) -> Sim:
    sim = Sim(make_config(2), seed, roundtrip=True)
    sim.run_until(5.0)
    assert sim.holders("g0") == ["n0"], sim.trace
    return sim


def _set_both(sim: Sim, ok: bool, first: str, gap_s: float) -> None:
    """Both hosts lose (regain) the ping node, `first` then the other `gap_s` later."""
    second = "n1" if first == "n0" else "n0"
    sim.set_ping(first, ok)
    sim.run_until(sim.now_s + gap_s)
    sim.set_ping(second, ok)


def _assert_nothing_moved(sim: Sim) -> None:
    """After failback_delay and more: the master still serves and was never stopped."""
    sim.run_until(sim.now_s + T.failback_delay_s + 3.0)
    assert sim.holders("g0") == ["n0"], sim.trace
    assert not sim.stats.stops, sim.trace
    assert [s[1] for s in sim.stats.starts] == ["n0"], sim.trace
    assert not sim.violations


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("first", ["n0", "n1"])
@pytest.mark.parametrize("gap_s", [0.005, 0.2])
def test_both_lose_then_regain_the_ping_node_ms_apart_nothing_moves(
    seed: int, first: str, gap_s: float
) -> None:
    """link-cut-redundant: heartbeats still flow (second link), the ping node goes and
    comes back on both within a ping interval of each other: no stop, no start."""
    sim = _sim(seed)
    _set_both(sim, False, first, gap_s)
    sim.run_until(sim.now_s + T.deadping_s + 3 * STABLE_S + 2.0)
    _set_both(sim, True, first, gap_s)
    _assert_nothing_moved(sim)


@pytest.mark.parametrize("seed", SEEDS)
def test_single_link_cut_and_return_slave_regains_first_nothing_moves(seed: int) -> None:
    """Tutorial test 3 (heartbeats and ping node both on eth1), and `ifup eth1` after it
    where the slave hears the ping node again before the master does, and before the first
    heartbeat comes back (it must not claim on that)."""
    sim = _sim(seed)
    sim.net.partition(["n0"], ["n1"])
    sim.set_ping("n0", False)
    sim.set_ping("n1", False)
    sim.run_until(sim.now_s + 10.0)
    sim.set_ping("n1", True)  # reported a ping interval later: before the heartbeats
    sim.run_until(sim.now_s + T.ping_interval_s - 0.05)
    sim.net.heal()
    sim.set_ping("n0", True)
    _assert_nothing_moved(sim)


@pytest.mark.parametrize("seed", SEEDS)
def test_master_really_loses_ping_slave_serves_within_deadping_and_a_bit(seed: int) -> None:
    """Tutorial test 1 still holds: the handover waits the stability window, no more."""
    sim = _sim(seed)
    t0 = sim.now_s
    sim.set_ping("n0", False)
    sim.run_until(t0 + T.deadping_s + STABLE_S + 1.0)
    assert sim.holders("g0") == ["n1"], sim.trace
    stop = next(t for t, host, _ in sim.stats.stops if host == "n0")
    assert stop - t0 >= T.deadping_s + STABLE_S * (1 - 2 * T.max_drift) - 0.01, sim.trace
    start = next(t for t, host, _, _ in sim.stats.starts if host == "n1")
    assert start - t0 < T.deadping_s + STABLE_S + 0.5, sim.trace
    assert not sim.violations


@pytest.mark.parametrize("seed", SEEDS)
def test_regained_ping_moves_nothing_before_it_is_stable(seed: int) -> None:
    """The reverse, without auto_failback: the slave holds (the master lost its ping node),
    both lose it, then the master regains it 5 ms before the slave: the slave keeps."""
    sim = Sim(make_config(2, auto_failback=False), seed, roundtrip=True)
    sim.run_until(5.0)
    sim.set_ping("n0", False)
    sim.run_until(sim.now_s + T.deadping_s + STABLE_S + 1.0)
    assert sim.holders("g0") == ["n1"], sim.trace
    sim.set_ping("n1", False)
    sim.run_until(sim.now_s + T.deadping_s + 1.0)
    _set_both(sim, True, "n0", 0.005)
    sim.run_until(sim.now_s + T.failback_delay_s + 3.0)
    assert sim.holders("g0") == ["n1"], sim.trace
    assert [s[1] for s in sim.stats.starts] == ["n0", "n1"], sim.trace
    assert not sim.violations


# ------------------------------------------------------------------ initdead


def _tutorial_timings() -> Timings:
    """The tutorial's ha.cf: keepalive 2, warntime 10, deadtime 30, initdead 60."""
    return replace(
        T,
        keepalive_s=2.0,
        warntime_s=10.0,
        deadtime_s=30.0,
        initdead_s=60.0,
        ping_interval_s=2.0,
        deadping_s=30.0,
        lease_s=2.0,
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_master_crashes_soon_after_start_slave_does_not_wait_initdead(seed: int) -> None:
    t = _tutorial_timings()
    sim = Sim(make_config(2, timings=t), seed, roundtrip=True)
    sim.run_until(2.0)
    assert any(host == "n1" and peer == "n0" for _, host, peer in sim.stats.dead_notices) is False
    sim.crash_host("n0")
    sim.run_until(30.0)
    assert sim.holders("g0") == ["n1"], sim.trace
    dead = next(at for at, host, peer in sim.stats.dead_notices if host == "n1" and peer == "n0")
    start = next(at for at, host, _, _ in sim.stats.starts if host == "n1")
    assert start - dead < 3 * t.lease_s, sim.trace
    assert not sim.violations


@pytest.mark.parametrize("seed", SEEDS)
def test_a_node_that_hears_nobody_still_waits_initdead(seed: int) -> None:
    t = _tutorial_timings()
    sim = Sim(make_config(2, timings=t), seed, roundtrip=True)
    sim.crash_host("n0")  # the master is gone; its first heartbeat is already in flight
    sim.run_until(0.5)
    sim.kill_agent("n1")  # so start the slave's agent again, after it: it hears nobody
    sim.restart("n1")
    sim.run_until(59.0)
    assert sim.holders("g0") == [], sim.trace
    sim.run_until(70.0)
    assert sim.holders("g0") == ["n1"], sim.trace
    assert not sim.violations
