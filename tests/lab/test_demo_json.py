"""`gossipha demo --fast --scenario startup --json`: one JSON object on stdout, exit 0."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.netns


def test_demo_json_contract() -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "gossipha", "demo", "--fast", "--scenario", "startup"),
            *("--loss-seconds", "7", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.stdout.count("\n") == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["profile"] == "fast"
    assert data["loss_s"] == 7.0  # how long heartbeat-loss would run (it did not here)
    [sc] = data["scenarios"]
    assert sc["name"] == "startup"
    assert isinstance(sc["outage_s"], float) and sc["outage_s"] >= 0
    assert sc["dual_holder_instants"] == 0
    assert sc["holder_before"] is None  # nothing runs before start-up
    assert sc["holder_after"] == "master"
    assert sc["passed"] is True, proc.stderr[-3000:]
    assert data["passed"] is True and proc.returncode == 0
    assert "VIP on" in proc.stderr  # the live view goes to stderr with --json
