"""Real-network tests in namespaces: skipped when unprivileged, failed under CI=true.

The `lab` fixture builds the tutorial topology once per module (sweeping stale ``gha-``
leftovers of dead runs first) and always tears it down, also when a test fails. The `agents`
fixture gives one test its gossipha processes in that lab (a module may override `lab`) and
stops them by PID after the test, pass or fail.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections.abc import Iterator

import pytest

from gossipha.lab import Lab, sweep_stale
from tests.ci import cannot_run
from tests.netns.helpers import Agents

TOOLS = ("ip", "iptables", "nft", "unshare", "nginx")


@functools.cache
def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "network-namespace tests need root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    try:
        from pyroute2 import netns
    except ImportError as exc:
        return f"pyroute2 unavailable: {exc}"
    probe = f"gha-p{os.getpid()}-probe"
    try:
        netns.create(probe)
        netns.remove(probe)
    except Exception as exc:
        return f"cannot create network namespaces: {exc}"
    return None


def require_netns() -> None:
    reason = netns_unavailable()
    if reason is not None:
        cannot_run(f"netns test: {reason}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is not None:
        require_netns()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_netns()
    sweep_stale()
    with Lab() as built:
        yield built


@pytest.fixture
def agents(lab: Lab) -> Iterator[Agents]:
    group = Agents(lab, lab.workdir / f"agents-{time.monotonic_ns()}")
    try:
        yield group
    finally:
        group.close()
