"""Every child the agent starts begins with ordinary scheduling, though the agent runs as the
systemd unit runs it: SCHED_RR, nice -10, realtime I/O, OOM score -900.

Real processes: `child_priority_helper.py` raises itself as the unit raises the agent, then
starts children through each of the agent's spawn paths (services, health commands,
respawns, hooks); each child is read by PID. Needs root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gossipha.child_reset import IOPRIO_CLASS_BE, IOPRIO_CLASS_NONE, IOPRIO_CLASS_RT
from tests.ci import cannot_run

REPO = Path(__file__).resolve().parents[2]
HELPER = "tests.unit.child_priority_helper"
CANNOT = 3
PATHS = ("service", "lsb", "health", "respawn", "respawn_nobody", "hook")


def run_helper(mode: str, tmp_path: Path) -> Any:
    if os.geteuid() != 0:
        cannot_run("needs root: raises a process to SCHED_RR and realtime I/O")
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", HELPER, mode, str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode == CANNOT:
        cannot_run(done.stdout.strip())
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def effective_io(io: list[int], nice: int) -> tuple[int, int]:
    """What the I/O scheduler serves: no class (NONE) is best effort at nice's level."""
    klass, level = io
    if klass == IOPRIO_CLASS_NONE:
        return IOPRIO_CLASS_BE, (nice + 20) // 5
    return klass, level


def test_children_of_every_spawn_path_start_ordinary(tmp_path: Path) -> None:
    got = run_helper("paths", tmp_path)
    parent = got["parent"]
    assert parent["policy"] == os.SCHED_RR and parent["nice"] == -10
    assert parent["io"] == [IOPRIO_CLASS_RT, 4]
    assert got["check"] == []  # every reset permitted: no warning at start
    assert set(got["children"]) == set(PATHS)
    for name, seen in got["children"].items():
        assert seen["program"] == "sleep", (name, seen)  # the daemon itself, not a wrapper
        assert seen["policy"] == os.SCHED_OTHER, (name, seen)
        assert seen["nice"] == 0, (name, seen)
        assert effective_io(seen["io"], seen["nice"]) == (IOPRIO_CLASS_BE, 4), (name, seen)
        assert seen["oom_score_adj"] == 0, (name, seen)
    assert got["children"]["respawn_nobody"]["uid"] != 0
    assert {seen["uid"] for name, seen in got["children"].items() if name != "respawn_nobody"} == {
        0
    }


def test_the_oom_score_is_reset_by_a_real_write(tmp_path: Path) -> None:
    """The paths test's parent is at -900 only with CAP_SYS_RESOURCE; this one is not needed."""
    got = run_helper("oom", tmp_path)
    assert got["parent"]["oom_score_adj"] == 300
    assert got["child"]["oom_score_adj"] == 0


def test_a_refused_reset_warns_once_and_the_service_starts(tmp_path: Path) -> None:
    got = run_helper("denied", tmp_path)
    assert [f.split(":")[0] for f in got["check"]] == ["io"]
    assert "Operation not permitted" in got["check"][0]
    warnings = [msg for level, msg in got["logged"] if level == "WARNING"]
    assert len(warnings) == 1 and "children keep the agent's priority" in warnings[0]
    assert len(got["children"]) == 2  # started both times
    for seen in got["children"]:
        assert seen["io"] == [IOPRIO_CLASS_RT, 4]  # what could not be reset stays
        assert seen["policy"] == os.SCHED_OTHER and seen["nice"] == 0  # the rest was
