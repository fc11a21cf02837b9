"""Seeds the random sweep once failed on, replayed by name (tests/sim/test_random.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gossipha.sim.harness import Sim, make_config
from gossipha.sim.scenarios import ScheduleResult, random_schedule
from tests.sim.test_random import CI_TIMINGS

# These seeds were found with a 1 s lease (the native default until it became 600 ms); a
# seed's schedule only replays the same story with the timings it was found with.
FOUND_TIMINGS = replace(CI_TIMINGS, lease_s=1.0)


def _replay(members: int, witnesses: int, seed: int) -> ScheduleResult:
    config = make_config(members, witnesses=witnesses, timings=FOUND_TIMINGS)
    r = random_schedule(config, seed, loss=0.05, jitter_s=0.02)
    assert not r.safety, "\n".join(r.safety + r.trace)
    assert not r.liveness, "\n".join(r.liveness + r.trace)
    return r


def test_seed_1037_probe_answer_from_before_a_pause_is_not_trusted() -> None:
    """Two nodes: n0 probed, paused 2.7 s, and started on the stale "nobody answered"
    while n1 had started meanwhile. Now a probe answer older than 1.5 probes is re-probed
    (and, since note_stall, n0 no longer accuses n1 on resume; the rule itself is tested in
    tests/unit/test_node.py)."""
    _replay(2, 0, 1037)


def test_seed_1636_killed_holder_cut_off_on_service_network() -> None:
    """2 nodes + witness: the holder's agent is killed (VIP stays up) while it is isolated
    on both networks; n1 gets a majority lease and starts (limit L1, scripted below)."""
    _replay(2, 1, 1636)


def test_seed_1982_stalled_holder_cut_off_on_service_network() -> None:
    """3 nodes: the holder's agent stalls 2.8 s holding the VIP and is then isolated on
    both networks; n1 (whose earlier probe DID see the VIP and backed off) starts once the
    lease has lapsed (limit L1, scripted below)."""
    _replay(3, 0, 1982)


def _isolated_holder(members: int, witnesses: int, seed: int) -> Sim:
    sim = Sim(make_config(members, witnesses=witnesses, timings=CI_TIMINGS), seed)
    sim.run_until(4.0)
    assert sim.holders("g0") == ["n0"], sim.trace
    return sim


@pytest.mark.parametrize("seed", range(3))
def test_l1_stalled_holder_isolated_is_counted_apart_and_drops_on_resume(seed: int) -> None:
    """Limit L1 scripted (the seeds above found it; their schedules drift as the code
    changes): a stalled agent cannot take its VIP down and a probe cannot see it across a
    cut service network, so a successor's start overlaps it: counted as an orphan, not a
    violation, and over once the agent runs again."""
    sim = _isolated_holder(3, 0, seed)
    sim.pause("n0", 2.8)
    sim.net.partition(["n0"], ["n1", "n2"], service=True)
    sim.run_until(6.5)
    assert len(sim.holders("g0")) == 2 and sim.stats.orphan_overlaps >= 1
    assert not sim.violations
    sim.run_until(8.0)  # resumed: the stall rule drops the expired lease and the VIP
    assert len(sim.holders("g0")) == 1 and "n0" not in sim.holders("g0")
    assert not sim.violations


@pytest.mark.parametrize("seed", range(3))
def test_l1_killed_holder_isolated_is_counted_apart_until_restarted(seed: int) -> None:
    sim = _isolated_holder(2, 1, seed)
    sim.kill_agent("n0")
    sim.net.partition(["n0"], ["n1", "w0"], service=True)
    sim.run_until(6.5)
    assert sorted(sim.holders("g0")) == ["n0", "n1"] and sim.stats.orphan_overlaps >= 1
    assert not sim.violations
    sim.heal()
    sim.restart("n0")  # it finds its VIP up, hears n1 running the group, and lets go
    sim.run_until(7.0)
    assert sim.holders("g0") == ["n1"], sim.trace[-20:]
    sim.run_until(12.0)  # then, after failback_delay, back home the normal way
    assert sim.holders("g0") == ["n0"], sim.trace[-20:]
    assert not sim.violations


def test_seed_640_holder_renews_at_its_own_epoch_after_partition_heals() -> None:
    """Two nodes: n0 ran on the two-node tie-break while n1 could not reach it; n1 learned
    n0's epoch from its status and then refused n0's renewals at that same epoch, so n0
    never got a majority lease and lost the group on the next false suspicion. A voter now
    promises an epoch it learned again to the node that runs at it."""
    _replay(2, 0, 640)


@pytest.mark.parametrize("seed", range(4))
def test_holder_adopted_at_a_stale_epoch_moves_to_a_majority_lease_after_heal(seed: int) -> None:
    """The soak's seed 43004 (2 nodes, `9385fa9`): n0's agent was killed, and restarted
    while cut off from n1 on the heartbeat network. It adopted its VIP at epoch 1 (it
    knew no higher) and ran on the two-node rule. After the heal n1 refused epoch 1 as
    stale, so n0 kept running without a majority lease, and two heartbeats lost in a row
    (5 % loss) let n1 declare it dead and take over. A holder refused as stale now asks
    again at a higher epoch, keeping its group, and so settles on a majority lease."""
    sim = Sim(make_config(2, timings=CI_TIMINGS), seed)
    sim.run_until(4.0)
    assert sim.holders("g0") == ["n0"] and sim.settled()
    n1 = sim.hosts["n1"].node
    assert n1 is not None
    sim.kill_agent("n0")
    sim.net.partition(["n0"], ["n1"], service=False)
    sim.run_until(5.0)
    sim.restart("n0")
    sim.run_until(8.0)
    assert sim.holders("g0") == ["n0"], sim.trace[-20:]
    n0 = sim.hosts["n0"].node
    assert n0 is not None and n0.epoch("g0") == 1, "adopted at the only epoch it knew"
    sim.heal()
    sim.run_until(8.0 + 4 * CI_TIMINGS.lease_s)
    assert sim.holders("g0") == ["n0"] and sim.settled(), sim.trace[-20:]
    assert n0.epoch("g0") > 1
    # Now n1 wrongly believing n0 dead (its heartbeats lost for a while) moves nothing.
    starts = len(sim.stats.starts)
    sim.net.cut.add(("n0", "n1"))
    sim.run_until(sim.now_s + 4 * CI_TIMINGS.keepalive_s)
    sim.net.cut.discard(("n0", "n1"))
    sim.run_until(sim.now_s + 3.0)
    assert sim.holders("g0") == ["n0"] and len(sim.stats.starts) == starts, sim.trace[-20:]
    assert not sim.violations
