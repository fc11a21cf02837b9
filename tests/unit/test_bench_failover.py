"""bench/failover.py's pure parts: the scenario plan, the ratios against the peers, the
docs table and chart, and where the VIP went in a run (its --json is a contract)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from gossipha.lab.scenarios import Result, StepResult

_PATH = Path(__file__).resolve().parents[2] / "bench" / "failover.py"
_spec = importlib.util.spec_from_file_location("bench_failover", _PATH)
assert _spec is not None and _spec.loader is not None
failover = importlib.util.module_from_spec(_spec)
sys.modules["bench_failover"] = failover
_spec.loader.exec_module(failover)


def _summary(medians: list[float]) -> dict[str, Any]:
    records = [
        {
            "passed": True,
            "error": None,
            "longest_outage_s": m,
            "failover_s": m,
            "failback_s": 0.05,
            "dual_holder_instants": 0,
            "vip_on_new_s": m - 0.02,
            "moves": 2,
            "nobody_serving": True,
            "steps": [],
        }
        for m in medians
    ]
    return failover.summarize("crash", records)


def test_plan_counts_and_clear_errors() -> None:
    known = {"crash", "graceful-stop", "loss-watch"}
    assert failover.parse_plan("crash:10,graceful-stop, loss-watch:1", 3, known) == {
        "crash": 10,
        "graceful-stop": 3,
        "loss-watch": 1,
    }
    with pytest.raises(ValueError, match="unknown scenario 'crsh'"):
        failover.parse_plan("crsh:1", 3, known)
    with pytest.raises(ValueError, match="must be an integer"):
        failover.parse_plan("crash:x", 3, known)
    with pytest.raises(ValueError, match="at least 1"):
        failover.parse_plan("crash:0", 3, known)
    with pytest.raises(ValueError, match="no scenario"):
        failover.parse_plan(",", 3, known)


def test_ratios_are_peer_median_over_ours_in_the_same_run() -> None:
    systems = {
        "gossipha-native": {"scenarios": {"crash": _summary([0.7, 0.8, 0.9])}},
        "keepalived-default": {"scenarios": {"crash": _summary([3.1, 3.2, 3.3])}},
        "heartbeat-tutorial": {"scenarios": {"crash": _summary([30.0])}},
    }
    out = failover.ratios(systems)
    assert out["crash"]["keepalived-default/gossipha-native"] == 4.0
    assert out["crash"]["heartbeat-tutorial/gossipha-native"] == 37.5
    assert "gossipha-native/keepalived-default" not in out["crash"]


def test_markdown_and_plot(tmp_path: Path) -> None:
    report = {
        "systems": {
            "gossipha-native": {"scenarios": {"crash": _summary([0.75, 0.8])}},
            "keepalived-default": {"scenarios": {"crash": _summary([3.2])}},
        }
    }
    table = failover.markdown(report)
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| gossipha-native | crash | 2 | 0.78 s | 0.80 s |")
    assert "| keepalived-default | crash | 1 | 3.20 s |" in lines[3]
    png = tmp_path / "img" / "failover.png"
    failover.plot(report, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5_000


def test_vip_on_new_node_from_the_sampled_holders() -> None:
    result = Result("crash", "t", "native", passed=True)
    result.steps = [StepResult("fault", True, 2.0, started_s=10.0)]
    result.holder_changes = [(9.0, ("master",)), (10.5, ()), (10.8, ("slave",))]
    assert failover.vip_on_new_s(result) == 0.8
    result.holder_changes = [(9.0, ("master",)), (10.5, ("master", "slave"))]
    assert failover.vip_on_new_s(result) == 0.5  # both held: still "on the other node"
    result.holder_changes = [(9.0, ("master",))]
    assert failover.vip_on_new_s(result) is None
