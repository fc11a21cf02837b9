"""A path broken between two ring neighbours only: everyone else hears both.

The N = 32 lab had such pairs (its kernel's neighbour table overflowed): the successor,
which judges its predecessor on direct heartbeats alone, heard nothing, and its deadtime
verdict was final for everyone; the victim refuted and was declared dead again every few
seconds. A predecessor its judge never heard directly now stays a suspect, which it
refutes through the others.
"""

from __future__ import annotations

import pytest

from gossipha.sim.harness import Sim, make_config

SETTLED_S = 10.0


@pytest.mark.parametrize("seed", range(3))
def test_a_cut_between_ring_neighbours_declares_nobody_dead(seed: int) -> None:
    sim = Sim(make_config(8, ping=False, auto_failback=False), seed)
    sim.net.partition(["n5"], ["n6"])  # n6 judges n5 (the ring is sorted by name)
    sim.run_until(60.0)
    late = [(round(t, 2), by, peer) for t, by, peer in sim.stats.dead_notices if t > SETTLED_S]
    assert late == [], f"seed {seed}: {late[:10]}\n" + "\n".join(sim.trace[-40:])
    assert [s for s in sim.stats.starts if s[0] > SETTLED_S] == []  # the group never moved
    assert not sim.violations
