"""The tutorial's exact timings (keepalive 2, deadtime 30, initdead 60): start-up, test 2
and a crash of master, each step's outage within its claim (gossipha/lab/claims.py).

Graceful stop hands over without waiting for deadtime, and a crashed holder is declared
dead when its lease lapses (about 3 s), so these fit in CI; the others (ping node lost,
link cut) wait out a 30 s deadtime and run with scaled-down timings in test_scenarios.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from gossipha.lab import Lab, sweep_stale
from gossipha.lab.claims import outage_claim_failures
from gossipha.lab.scenarios import NODES, TUTORIAL, Cluster, run_scenario, scenario
from tests.lab.conftest import require_netns

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def tutorial_cluster() -> Iterator[Cluster]:
    require_netns()
    sweep_stale()
    with Lab() as lab:
        cluster = Cluster(lab, TUTORIAL, say=print)
        try:
            yield cluster
        finally:
            cluster.close()


@pytest.mark.parametrize("name", ["startup", "graceful-stop", "crash"])
def test_tutorial_timings(tutorial_cluster: Cluster, name: str) -> None:
    result = run_scenario(tutorial_cluster, scenario(name), say=print)
    logs = "\n".join(f"--- {n} agent log\n{tutorial_cluster.log_tail(n, 40)}" for n in NODES)
    report = json.dumps(result.as_json(), indent=1)
    assert result.passed, report + "\n" + logs
    assert result.dual_holder_instants == 0
    print(f"{name}: outages by step {result.step_outages_s()}")
    broken = outage_claim_failures(result)
    assert not broken, "\n".join(broken) + "\n" + report + "\n" + logs
