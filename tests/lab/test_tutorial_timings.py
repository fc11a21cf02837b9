"""The tutorial's exact timings (keepalive 2, deadtime 30, initdead 60): start-up and test 2.

Graceful stop hands over without waiting for deadtime, so this fits in CI; the other tests
would each wait out a 30 s deadtime and run with scaled-down timings in test_scenarios.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from gossipha.lab import Lab, sweep_stale
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


@pytest.mark.parametrize("name", ["startup", "graceful-stop"])
def test_tutorial_timings(tutorial_cluster: Cluster, name: str) -> None:
    result = run_scenario(tutorial_cluster, scenario(name), say=print)
    logs = "\n".join(f"--- {n} agent log\n{tutorial_cluster.log_tail(n, 40)}" for n in NODES)
    assert result.passed, json.dumps(result.as_json(), indent=1) + "\n" + logs
    assert result.dual_holder_instants == 0
