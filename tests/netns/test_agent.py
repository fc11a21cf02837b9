"""Two real `gossipha agent` processes in the lab: the tutorial's start-up and a graceful stop.

The tutorial's /etc/ha.d for master and slave with scaled-down timings (keepalive 200ms,
warntime 500ms, deadtime 2s, initdead 3s) and a resource.d/nginx script driving the lab's
nginx. Checks: the master holds the VIP as eth0:0 and the client sees the master page, the
slave does not hold it; SIGTERM on the master moves it to the slave within about a second;
the holder sampler never sees both at once.
"""

from __future__ import annotations

import time

import pytest

from gossipha.lab import Lab
from gossipha.lab.observe import HolderSampler, fetch
from gossipha.lab.topology import TUTORIAL_VIP
from tests.netns.helpers import STARTUP_BOUND_S, Agents, vip_line
from tests.netns.helpers import wait_until as _wait

pytestmark = pytest.mark.netns

VIP = str(TUTORIAL_VIP.ip)
HANDOVER_BOUND_S = 1.5  # SIGTERM on the master -> the slave has the VIP


def test_master_serves_then_hands_over_on_sigterm(lab: Lab, agents: Agents) -> None:
    master = agents.start("master")
    time.sleep(0.3)  # the tutorial starts the master first
    agents.start("slave")
    sampler = HolderSampler(lab, VIP, interval_s=0.01, duration_s=60.0)
    sampler.start()
    try:
        _wait(
            lambda: "master holds the VIP\n" + agents.tail("master"),
            lambda: bool(vip_line(lab, "master")),
            STARTUP_BOUND_S,
        )
        assert "eth0:0" in vip_line(lab, "master")
        _wait(
            "client sees the master page",
            lambda: fetch(lab, "client", VIP, timeout_s=0.3) == "master",
            5.0,
        )
        assert not vip_line(lab, "slave")
        # Nothing moves while both run.
        time.sleep(1.0)
        assert vip_line(lab, "master") and not vip_line(lab, "slave")

        t0 = time.monotonic()
        master.send_signal(15)
        took_s = _wait(
            lambda: "slave holds the VIP after SIGTERM on the master\n" + agents.tail("slave"),
            lambda: bool(vip_line(lab, "slave")),
            HANDOVER_BOUND_S + 3.0,
            step_s=0.01,
        )
        assert took_s <= HANDOVER_BOUND_S, f"handover took {took_s:.2f}s"
        assert master.wait(timeout=10.0) == 0, agents.tail("master")
        assert time.monotonic() - t0 < 10.0
        assert not vip_line(lab, "master"), "the stopped master released the VIP"
        _wait(
            "client sees the slave page",
            lambda: fetch(lab, "client", VIP, timeout_s=0.3) == "slave",
            5.0,
        )
    finally:
        sampler.stop()
    assert sampler.error is None, sampler.error
    both = [s for s in sampler.samples if s.dual]
    assert not both, f"two VIP holders at once: {both[:3]}"
    assert any(s.holders == ("master",) for s in sampler.samples)
    assert sampler.samples[-1].holders == ("slave",)
