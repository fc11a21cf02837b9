"""Scenario tests against real agents: the netns marker rules of tests/netns (skip when
unprivileged, fail under CI=true) and one fast-timed cluster per module, always torn down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gossipha.lab import Lab, sweep_stale
from gossipha.lab.scenarios import FAST, Cluster
from tests.netns.conftest import netns_unavailable, require_netns

__all__ = ["netns_unavailable", "require_netns"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is not None:
        require_netns()


@pytest.fixture(scope="module")
def fast_cluster() -> Iterator[Cluster]:
    """The tutorial's cluster with scaled-down timings, in a lab of its own module."""
    require_netns()
    sweep_stale()
    with Lab() as lab:
        cluster = Cluster(lab, FAST, say=print)
        try:
            yield cluster
        finally:
            cluster.close()
