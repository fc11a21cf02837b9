"""Random fault schedules: safety at every step, liveness after heal (2,000 in CI)."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import pytest

from gossipha.core import lease
from gossipha.sim.harness import Sim, make_config, native_timings
from gossipha.sim.scenarios import random_schedule

# Faster start-up than the native defaults so 2,000 schedules fit in CI; the lease, the
# detector and the probe keep their native values.
CI_TIMINGS = replace(native_timings(), initdead_s=1.5, failback_delay_s=2.0)
# (members, witnesses, first seed, count): 2,000 schedules, two processes, ~1.5 min.
BATCHES = [(2, 0, 0, 500), (3, 0, 500, 300), (2, 0, 800, 500), (2, 1, 1300, 400), (3, 0, 1700, 300)]


def _batch(args: tuple[int, int, int, int]) -> tuple[list[str], list[str]]:
    members, witnesses, first, count = args
    config = make_config(members, witnesses=witnesses, timings=CI_TIMINGS)
    unsafe, stuck = [], []
    for seed in range(first, first + count):
        r = random_schedule(config, seed, loss=0.05, jitter_s=0.02)
        what = f"members={members} witnesses={witnesses} seed={seed}: {r.safety + r.liveness}"
        if r.safety:
            unsafe.append(what + "\n" + "\n".join(r.trace[-30:]))
        elif r.liveness:
            stuck.append(what)
    return unsafe, stuck


@pytest.mark.skipif(
    not os.environ.get("GOSSIPHA_SIM_LONG"), reason="4 min on 2 cores; set GOSSIPHA_SIM_LONG=1"
)
@pytest.mark.xfail(
    reason="known open bugs found by this test (see report): a VipProbeResult delivered late "
    "after a pause is trusted; kill -9 of a holder cut off on the service network",
    strict=False,
)
def test_two_thousand_random_schedules_are_safe_and_live() -> None:
    assert sum(b[3] for b in BATCHES) == 2000
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_batch, BATCHES))
    unsafe = [u for res in results for u in res[0]]
    stuck = [s for res in results for s in res[1]]
    assert not unsafe, "\n\n".join(unsafe[:3])
    # Known weakness (docs/design.md): about 1 schedule in 200 of two nodes after an
    # asymmetric partition has a failover still in progress when the bound is checked.
    assert len(stuck) <= 10, "\n".join(stuck)


def _broken_holder_span(lease_s: float, max_drift: float) -> float:
    return lease_s * (1.0 + max_drift)  # no drift margin, no stop guard


@pytest.mark.parametrize("broken", [False, True])
def test_lease_without_drift_margin_is_caught(
    broken: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator catches a holder that times its lease like a voter does."""
    if broken:
        monkeypatch.setattr(lease, "holder_span_s", _broken_holder_span)
    timings = replace(CI_TIMINGS, max_drift=0.1, vip_probe_count=1, vip_probe_interval_s=0.01)
    config = make_config(3, timings=timings, ping=False)
    caught = 0
    for seed in range(20):
        sim = Sim(config, seed, drift=False)
        for name, h in sim.hosts.items():
            h.clock.rate = 1 - 0.1 if name == "n0" else 1 + 0.1  # holder slow, voters fast
        sim.run_until(4.0)
        assert sim.holders("g0") == ["n0"]
        sim.run_until(4.0 + seed * 0.0125)
        sim.net.partition(["n0"], ["n1", "n2"], service=True)
        sim.run_until(9.0)
        caught += bool(sim.violations)
    if broken:
        assert caught > 0, "a lease rule without drift margin must be caught"
    else:
        assert caught == 0


def test_stable_under_loss_and_jitter_no_leader_change() -> None:
    for members in (2, 3):
        config = make_config(members, timings=CI_TIMINGS)
        sim = Sim(config, 11, path=lease_path())
        sim.run_until(300.0)
        assert len(sim.stats.starts) == 1, sim.trace[-20:]
        assert not sim.violations


def lease_path():  # type: ignore[no-untyped-def]
    from gossipha.sim.net import PathOptions

    return PathOptions(loss=0.2, delay_s=0.001, jitter_s=native_timings().keepalive_s / 2)
