"""gossipha/lab/claims.py: each claimed step is held near twice its measured median, so a
twofold regression fails a lab test while the runner's waits stay generous."""

from __future__ import annotations

import pytest

from gossipha.lab.claims import (
    FACTOR,
    HANDOVER_FLOOR_S,
    OUTAGE_CLAIMS,
    outage_claim_failures,
)
from gossipha.lab.scenarios import FAST, NO_OUTAGE_S, PROFILES, Result, StepResult, scenario
from tests.lab.test_scenarios import ORDER

# Start-up's outage is the client's wait for a first server; pause-agent's is reported only.
UNCLAIMED = {"startup", "pause-agent"}


def _run(profile: str, name: str, outages_s: list[float]) -> Result:
    """A run whose step i started at 10 i seconds and had one outage of outages_s[i]."""
    result = Result(name, "t", profile, passed=True)
    result.steps = [StepResult(f"step {i}", True, 5.0, started_s=10.0 * i) for i in range(2)]
    result.steps = result.steps[: len(outages_s)]
    result.outages = [(10.0 * i + 1.0, 10.0 * i + 1.0 + o) for i, o in enumerate(outages_s) if o]
    return result


@pytest.mark.parametrize("key", sorted(OUTAGE_CLAIMS))
def test_every_bound_sits_near_twice_its_median(key: tuple[str, str]) -> None:
    profile, name = key
    assert profile in PROFILES and scenario(name).name == name
    for claim in OUTAGE_CLAIMS[key]:
        if claim.median_s is None:
            assert claim.bound_s == NO_OUTAGE_S
        else:
            assert claim.bound_s == pytest.approx(max(FACTOR * claim.median_s, HANDOVER_FLOOR_S))
            # Far below the runner's own wait for the step (deadtime + 3 leases + 5 s).
            assert claim.bound_s < PROFILES[profile].failover_bound_s / 2


def test_a_native_crash_twice_as_slow_fails_and_a_bit_slower_passes() -> None:
    (over, back) = OUTAGE_CLAIMS[("native", "crash")]
    assert over.median_s is not None
    ok = _run("native", "crash", [1.5 * over.median_s, 0.1])
    assert outage_claim_failures(ok) == []
    slow = _run("native", "crash", [10 * over.median_s, 0.1])
    [line] = outage_claim_failures(slow)
    assert line.startswith("crash (native) step 1, slave takes over: outage 8.")
    assert "docs/benchmarks.md" in line
    late_back = _run("native", "crash", [over.median_s, 2 * back.bound_s])
    assert "step 2, failback" in outage_claim_failures(late_back)[0]


def test_a_run_cut_short_or_unclaimed_says_so() -> None:
    short = _run("fast", "crash", [0.5])  # the failback step never ran
    assert outage_claim_failures(short) == ["crash: 1 steps ran, 2 are claimed"]
    assert outage_claim_failures(_run("fast", "pause-agent", [9.0, 9.0])) == []


def test_every_fast_scenario_the_lab_tests_run_with_an_outage_has_a_claim() -> None:
    claimed = {name for profile, name in OUTAGE_CLAIMS if profile == FAST.name}
    assert claimed == set(ORDER) - UNCLAIMED
