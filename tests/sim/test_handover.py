"""Graceful stops and failbacks across seeds, with a jittery, duplicating, lossy heartbeat
network: never two holders; the successor starts right after the release unless the
release (or a grant) was lost, and then within today's bound (docs/design.md, "Handover").
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gossipha.core.types import LeaseRelease
from gossipha.sim.harness import Sim, make_config, native_timings
from gossipha.sim.net import PathOptions

TIMINGS = replace(native_timings(), initdead_s=1.5, failback_delay_s=2.0)
SEEDS = range(40)


def _run(seed: int, members: int, witnesses: int, loss: float) -> tuple[Sim, list[float]]:
    sim = Sim(
        make_config(members, witnesses=witnesses, timings=TIMINGS),
        seed,
        path=PathOptions(loss=loss, delay_s=0.0005, jitter_s=0.002, duplicate=0.05),
        action_delay_s=0.05 + (seed % 7) * 0.2,  # stops from 50 ms to 1.25 s
    )
    releases: list[float] = []
    send = sim._send

    def _send(src: str, dst: str, message: Any) -> None:
        if isinstance(message, LeaseRelease) and not message.unused:
            releases.append(sim.now_s)
        send(src, dst, message)

    sim._send = _send  # type: ignore[method-assign]
    sim.run_until(6.0)
    sim.graceful_stop("n0")
    sim.run_until(10.0)
    sim.restart("n0")  # back to n0 by auto_failback
    sim.run_until(20.0)
    return sim, releases


@pytest.mark.parametrize(("members", "witnesses"), [(2, 0), (2, 1), (3, 0)])
def test_handover_is_safe_and_fast_across_seeds(members: int, witnesses: int) -> None:
    fast = 0
    for seed in SEEDS:
        sim, releases = _run(seed, members, witnesses, loss=0.0)
        assert not sim.violations, (seed, sim.violations, sim.trace[-40:])
        assert sim.holders("g0") == ["n0"], (seed, sim.trace[-40:])
        starts = [t for t, _, _, _ in sim.stats.starts]
        gaps = [min((s - r for s in starts if s >= r), default=9.0) for r in releases]
        fast += sum(1 for gap in gaps if gap < 0.02)
    # Two handovers per seed (stop, failback); a duplicate or a late grant may cost a retry.
    assert fast >= 0.9 * 2 * len(SEEDS)


@pytest.mark.parametrize(("members", "witnesses"), [(2, 0), (2, 1), (3, 0)])
def test_handover_with_loss_stays_safe_and_live(members: int, witnesses: int) -> None:
    for seed in SEEDS:
        sim, _ = _run(1000 + seed, members, witnesses, loss=0.2)
        assert not sim.violations, (seed, sim.violations, sim.trace[-40:])
        assert len(sim.holders("g0")) == 1, (seed, sim.trace[-40:])
