"""A 9-member cluster votes with 5 (the default voter set): the holder renews with those
only, and the group survives the crash of a non-voting holder and of a voting one. Losing
a majority of the voters leaves no holder even though non-voters live (docs/design.md L5)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

import pytest

from gossipha.config.model import Config
from gossipha.core.types import LeaseRequest
from gossipha.sim.harness import Sim, make_config, native_timings
from gossipha.sim.net import PathOptions
from gossipha.sim.scenarios import crash_and_measure, liveness_bound_s

TIMINGS = replace(native_timings(), initdead_s=1.5, failback_delay_s=2.0)
VOTERS = ["n0", "n1", "n2", "n3", "n4"]


def _config(preferred: str) -> Config:
    config = make_config(9, timings=TIMINGS)
    (group,) = config.groups
    return replace(config, groups=(replace(group, preferred=preferred),))


def _sim(config: Config, seed: int) -> tuple[Sim, dict[str, set[str]]]:
    """A lossy, jittery run that records whom each node asks for a lease."""
    sim = Sim(config, seed, path=PathOptions(loss=0.05, delay_s=0.0005, jitter_s=0.002))
    asked: dict[str, set[str]] = defaultdict(set)
    send = sim._send

    def _send(src: str, dst: str, message: Any) -> None:
        if isinstance(message, LeaseRequest):
            asked[src].add(dst)
        send(src, dst, message)

    sim._send = _send  # type: ignore[method-assign]
    return sim, asked


def test_nine_members_vote_with_the_first_five() -> None:
    config = make_config(9, timings=TIMINGS)
    assert [n.name for n in config.voters] == VOTERS
    sim, asked = _sim(config, 1)
    sim.run_until(8.0)
    assert sim.holders("g0") == ["n0"]
    assert asked["n0"] == set(VOTERS) - {"n0"}  # its own vote is local
    assert not sim.violations


@pytest.mark.parametrize(
    ("holder", "votes"), [("n7", False), ("n2", True)], ids=["non-voter", "voter"]
)
@pytest.mark.parametrize("seed", range(6))
def test_crash_of_the_holder_moves_the_group(holder: str, votes: bool, seed: int) -> None:
    config = _config(holder)
    assert config.votes(holder) is votes
    sim, asked = _sim(config, 100 + seed)
    sim.run_until(8.0)
    assert sim.holders("g0") == [holder], sim.trace[-30:]
    assert asked[holder] <= set(VOTERS)
    _, _, failover_s = crash_and_measure(sim, holder, "g0", liveness_bound_s(config))
    assert failover_s is not None, sim.trace[-40:]
    sim.run_until(sim.now_s + 2.0)
    (successor,) = sim.holders("g0")
    assert successor != holder
    assert asked[successor] <= set(VOTERS)
    assert not sim.violations, (seed, sim.violations, sim.trace[-40:])


def test_a_lost_voter_majority_stops_the_group_though_non_voters_live() -> None:
    """The stated limit: three of five voters gone, six members alive, nobody may hold."""
    config = _config("n7")
    sim, _ = _sim(config, 7)
    sim.run_until(8.0)
    assert sim.holders("g0") == ["n7"]
    for name in ("n0", "n1", "n2"):
        sim.crash_host(name)
    sim.run_until(sim.now_s + liveness_bound_s(config))
    assert sim.holders("g0") == []  # n7 could not renew and stopped; no one else may start
    assert not [v for v in sim.violations if v.kind == "safety"]
    sim.restart("n0")  # a voter back: 3 of 5 again
    sim.run_until(sim.now_s + liveness_bound_s(config))
    assert len(sim.holders("g0")) == 1, sim.trace[-40:]
    assert not sim.violations
