"""Two real `gossipha agent` processes in the lab: the tutorial's start-up and a graceful stop.

The tutorial's /etc/ha.d for master and slave with scaled-down timings (keepalive 200ms,
warntime 500ms, deadtime 2s, initdead 3s) and a resource.d/nginx script driving the lab's
nginx. Checks: the master holds the VIP as eth0:0 and the client sees the master page, the
slave does not hold it; SIGTERM on the master moves it to the slave within about a second;
the holder sampler never sees both at once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gossipha.lab import Lab
from gossipha.lab.observe import HolderSampler, fetch
from gossipha.lab.scenarios import FAST, HOSTNAMES, child_env, write_ha_d
from gossipha.lab.topology import TUTORIAL_VIP
from tests.netns.helpers import wait_until as _wait

pytestmark = pytest.mark.netns

VIP = str(TUTORIAL_VIP.ip)
STARTUP_BOUND_S = 15.0
HANDOVER_BOUND_S = 1.5  # SIGTERM on the master -> the slave has the VIP


def _vip_line(lab: Lab, node: str) -> str:
    result = lab.run(
        node, ["ip", "-o", "-4", "addr", "show", "up", "to", f"{VIP}/32"], uts=False, check=False
    )
    return result.stdout.strip()


class _Agents:
    def __init__(self, lab: Lab, root: Path) -> None:
        self.lab = lab
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.ha_d: dict[str, Path] = {}
        self.nginx_root: dict[str, Path] = {}

    def start(self, node: str, extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """`gossipha agent` in `node` with the FAST profile; `extra` agent options appended."""
        ha_d, nginx_root = write_ha_d(node, self.root, FAST)
        self.ha_d[node], self.nginx_root[node] = ha_d, nginx_root
        env = child_env()
        env["GOSSIPHA_STATE_DIR"] = str(self.root / node / "state")
        self.logs[node] = self.root / node / "agent.log"
        with self.logs[node].open("ab") as out:
            proc = self.lab.spawn(
                node,
                [
                    sys.executable,
                    "-m",
                    "gossipha",
                    "agent",
                    "--config",
                    str(ha_d),
                    "--node-name",
                    HOSTNAMES[node],
                    "--admin-socket",
                    str(self.admin_socket(node)),
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.procs[node] = proc
        return proc

    def admin_socket(self, node: str) -> Path:
        """Per node: both agents share the host's filesystem (not /run/gossipha)."""
        return self.root / node / "admin.sock"

    def log(self, node: str) -> str:
        try:
            return self.logs[node].read_text(errors="replace")[-3000:]
        except (KeyError, OSError):
            return "(no log)"

    def close(self) -> None:
        for proc in self.procs.values():
            self.lab.stop(proc, timeout_s=10.0)


@pytest.fixture
def agents(lab: Lab) -> Iterator[_Agents]:
    root = lab.workdir / f"test-agent-{time.monotonic_ns()}"
    group = _Agents(lab, root)
    try:
        yield group
    finally:
        group.close()
        # Anything an agent left (it should have released on exit) must not leak into the
        # next test module: nginx is stopped by the lab's teardown, the VIP goes here.
        for node in ("master", "slave"):
            lab.run(
                node,
                ["ip", "addr", "del", f"{TUTORIAL_VIP}", "dev", "eth0"],
                uts=False,
                check=False,
            )


def test_master_serves_then_hands_over_on_sigterm(lab: Lab, agents: _Agents) -> None:
    master = agents.start("master")
    time.sleep(0.3)  # the tutorial starts the master first
    agents.start("slave")
    sampler = HolderSampler(lab, VIP, interval_s=0.01, duration_s=60.0)
    sampler.start()
    try:
        _wait(
            "master holds the VIP\n" + agents.log("master"),
            lambda: bool(_vip_line(lab, "master")),
            STARTUP_BOUND_S,
        )
        assert "eth0:0" in _vip_line(lab, "master")
        _wait(
            "client sees the master page",
            lambda: fetch(lab, "client", VIP, timeout_s=0.3) == "master",
            5.0,
        )
        assert not _vip_line(lab, "slave")
        # Nothing moves while both run.
        time.sleep(1.0)
        assert _vip_line(lab, "master") and not _vip_line(lab, "slave")

        t0 = time.monotonic()
        master.send_signal(15)
        took_s = _wait(
            "slave holds the VIP after SIGTERM on the master\n" + agents.log("slave"),
            lambda: bool(_vip_line(lab, "slave")),
            HANDOVER_BOUND_S + 3.0,
            step_s=0.01,
        )
        assert took_s <= HANDOVER_BOUND_S, f"handover took {took_s:.2f}s"
        assert master.wait(timeout=10.0) == 0, agents.log("master")
        assert time.monotonic() - t0 < 10.0
        assert not _vip_line(lab, "master"), "the stopped master released the VIP"
        _wait(
            "client sees the slave page",
            lambda: fetch(lab, "client", VIP, timeout_s=0.3) == "slave",
            5.0,
        )
    finally:
        sampler.stop()
    assert sampler.error is None, sampler.error
    both = [s for s in sampler.samples if len(s.holders) > 1]
    assert not both, f"two VIP holders at once: {both[:3]}"
    assert any(s.holders == ("master",) for s in sampler.samples)
    assert sampler.samples[-1].holders == ("slave",)
