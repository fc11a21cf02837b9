"""Every bench/*.py exits non-zero when a run failed or measured nothing (its `failures`
lists why, printed on stderr): checked here on made-up reports, with no lab."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gossipha.config.model import AuthMethod

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    """bench/<name>.py as module bench_<name> (loaded once per session)."""
    key = f"bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


# ---- failover.py ----


def _scenario(runs: int, passed: int, errors: list[str], lab_errors: list[str]) -> dict[str, Any]:
    return {"runs": runs, "passed": passed, "errors": errors, "lab_errors": lab_errors}


def _failover_report(**systems: dict[str, Any]) -> dict[str, Any]:
    return {"systems": {k.replace("_", "-"): v for k, v in systems.items()}}


def test_failover_passes_when_every_gossipha_run_passed() -> None:
    failover = _load("failover")
    report = _failover_report(
        gossipha_native={"scenarios": {"crash": _scenario(3, 3, [], [])}},
        # A peer holding the VIP twice, or never failing back, is a finding, not a failure.
        keepalived_fast={
            "scenarios": {"crash": _scenario(3, 1, ["210 samples with two VIP holders"], [])}
        },
    )
    assert failover.failures(report) == []


def test_failover_fails_on_a_failed_gossipha_run() -> None:
    failover = _load("failover")
    report = _failover_report(
        gossipha_native={"scenarios": {"crash": _scenario(3, 2, ["outage 9.00s"], [])}}
    )
    assert failover.failures(report) == ["gossipha-native crash: 1 of 3 runs failed: outage 9.00s"]


def test_failover_fails_when_the_lab_could_not_measure_a_peer() -> None:
    failover = _load("failover")
    dead = "holder sampler failed: OSError: gone"
    report = _failover_report(
        heartbeat_fast={"scenarios": {"crash": _scenario(2, 1, [dead], [dead])}}
    )
    [line] = failover.failures(report)
    assert line.startswith("heartbeat-fast crash: 1 of 2 runs not measured") and dead in line


def test_failover_fails_when_nothing_ran() -> None:
    failover = _load("failover")
    assert failover.failures({"systems": {}}) == ["no system ran (measured nothing)"]
    report = _failover_report(
        gossipha_tutorial={"scenarios": {"crash": _scenario(0, 0, [], [])}},
        keepalived_default={"error": "LabError: no keepalived", "scenarios": {}},
    )
    assert failover.failures(report) == [
        "gossipha-tutorial crash: no run finished (measured nothing)",
        "keepalived-default: could not run: LabError: no keepalived",
    ]


# ---- resources.py and floor.py ----


def _node(processes: int, cpu: float = 0.002, rss: int = 40 << 20) -> dict[str, Any]:
    return {
        "processes": processes,
        "names": ["gossipha"] if processes else [],
        "cpu_fraction": cpu,
        "cpu_with_children_fraction": cpu,
        "rss_bytes": rss if processes else 0,
        "pss_bytes": rss if processes else 0,
        "tx_pps": 30.0,
        "rx_pps": 30.0,
    }


def test_resources_fails_on_a_node_with_no_agent_process() -> None:
    resources = _load("resources")
    good = {"profile": "native", "nodes": {"master": _node(1), "slave": _node(1)}, "max": {}}
    assert resources.failures({"gossipha-native": good}) == []
    empty = copy.deepcopy(good)
    empty["nodes"]["slave"] = _node(0, cpu=0.0)  # read as 0 % CPU: "meets target" before
    assert resources.failures({"gossipha-native": empty}) == [
        "gossipha-native slave: no agent process found (measured nothing)"
    ]
    broken = {"profile": None, "nodes": {}, "max": {}, "error": "StepFailed: no start"}
    assert resources.failures({"heartbeat-tutorial": broken}) == [
        "heartbeat-tutorial: could not run: StepFailed: no start"
    ]
    assert resources.failures({}) == ["no system ran (measured nothing)"]


def test_floor_fails_on_a_silent_node_or_no_agent() -> None:
    floor = _load("floor")
    quiet = {"cpu_fraction": 0.001, "tx_pps": 0.0, "rx_pps": 15.0}
    good = {"cpu_fraction": 0.001, "tx_pps": 15.0, "rx_pps": 20.0}
    modes = {"bare": {"nodes": {"master": good, "slave": quiet}, "max_cpu_fraction": 0.001}}
    assert floor.failures(modes) == [
        "bare slave: sent 0.0/s and received 15.0/s (measured nothing)"
    ]
    agent = {"nodes": {"master": {**good, "processes": 0}}, "max_cpu_fraction": 0.0}
    assert floor.failures({"agent": agent}) == [
        "agent master: no agent process found (measured nothing)"
    ]
    assert floor.failures({"bare": {"nodes": {"master": good}, "max_cpu_fraction": 0.0}}) == []
    assert floor.failures({}) == ["no mode ran (measured nothing)"]


# ---- scale_lab.py ----


def _config(ok: bool, error: str | None = None, multi: int = 0) -> dict[str, Any]:
    run = {"error": None if ok else "no other node held the VIP", "multi_holder_passes": multi}
    return {
        "n": 8,
        "layout": "all",
        "ok": ok,
        "error": error,
        "start": {"multi_holder_passes": 0},
        "crash": {"per_run": [run]},
    }


def test_scale_lab_fails_on_no_config_a_failed_one_or_two_holders() -> None:
    scale_lab = _load("scale_lab")
    assert scale_lab.failures([_config(True)]) == []
    assert scale_lab.failures([])[0].startswith("no configuration ran (measured nothing")
    assert scale_lab.failures([_config(False)]) == ["N=8 all: failed: no other node held the VIP"]
    assert scale_lab.failures([_config(True, multi=2)]) == [
        "N=8 all: 2 netlink passes saw two nodes holding the VIP"
    ]


# ---- scrape.py ----


def _window(heartbeats: int, scrapes: tuple[int, int] | None = None) -> dict[str, Any]:
    side = {"links": {"hb": {"heartbeats": heartbeats}}, "missed_gaps": 0, "transitions": {}}
    out: dict[str, Any] = {"slave_sees_master": side, "master_sees_slave": side}
    if scrapes is not None:
        out["scrapes"] = {"count": scrapes[0], "errors": scrapes[1]}
    return out


def test_scrape_fails_on_missed_beats_or_a_window_that_measured_nothing() -> None:
    scrape = _load("scrape")
    good = {
        "idle": _window(50),
        "load": _window(50, (1000, 0)),
        "missed_heartbeats": 0,
        "peer_transitions": 0,
    }
    assert scrape.failures(good) == []
    assert scrape.failures({**good, "missed_heartbeats": 3}) == ["3 missed heartbeats under load"]
    unanswered = {**good, "load": _window(50, (1000, 1000))}
    assert scrape.failures(unanswered) == [
        "load window: 1000 scrapes, 1000 failed (measured nothing)"
    ]
    silent = {**good, "idle": _window(0)}
    assert len(scrape.failures(silent)) == 2  # neither side counted a heartbeat


# ---- sim_scale.py ----


def _entry(layer: str, crashes: int = 20, undetected: int = 0, msgs: float = 5.0) -> dict[str, Any]:
    return {
        "layer": layer,
        "nodes": 3,
        "crashes": crashes,
        "undetected": undetected,
        "msgs_per_node_s": msgs,
    }


def _sim_report(**changes: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "membership": [_entry("membership")],
        "node": [_entry("node")],
        "load_ratio_max_over_min": 1.2,
        "node_load_ratio_max_over_min": 1.5,
        "crashes_not_known_to_all": 0,
        "false_dead_notices": 0,
    }
    report.update(changes)
    return report


def test_sim_scale_fails_on_limits_undetected_crashes_or_nothing_measured() -> None:
    sim_scale = _load("sim_scale")
    assert sim_scale.failures(_sim_report()) == []
    assert sim_scale.failures(_sim_report(membership=[], node=[])) == [
        "no size ran (measured nothing)"
    ]
    assert sim_scale.failures(_sim_report(node_load_ratio_max_over_min=2.5)) == [
        "node_load_ratio_max_over_min 2.5 exceeds 2.0"
    ]
    assert sim_scale.failures(_sim_report(node=[_entry("node", undetected=1)])) == [
        "node N=3: 1 of 20 crashes never detected"
    ]
    assert sim_scale.failures(_sim_report(node=[_entry("node", msgs=0.0)])) == [
        "node N=3: 20 crashes, 0.0 msgs/node/s (measured nothing)"
    ]


# ---- soak.py ----


def test_soak_fails_on_violations_or_no_schedule() -> None:
    soak = _load("soak")
    good = {
        "planned_schedules": 100,
        "schedules": 100,
        "safety_schedules": 0,
        "liveness_schedules": 0,
    }
    assert soak.failures(good) == []
    assert soak.failures({**good, "safety_schedules": 1}) == ["1 schedules broke safety"]
    assert soak.failures({**good, "schedules": 0}) == ["no schedule ran (measured nothing)"]
    # Resuming a soak that had covered everything plans nothing: nothing to measure.
    assert soak.failures({**good, "planned_schedules": 0, "schedules": 0}) == []


# ---- wire.py ----


def test_wire_measures_a_short_run_and_refuses_empty_ones() -> None:
    wire = _load("wire")
    result = wire.run(AuthMethod.SHA256, 300, 1)
    assert wire.failures(result) == []
    instant = {**result, "verify_per_s": float("inf")}
    assert wire.failures(instant) == [
        "verify_per_s is inf: the phase took no measurable time (use more --packets)"
    ]
    with pytest.raises(SystemExit) as exc:
        wire.main(["--packets", "0"])
    assert exc.value.code == 2


# ---- swarm_soak.py ----


def _chunk(seed: int, drawn: int, run: int, safety: int = 0) -> dict[str, Any]:
    return {
        "seed": seed,
        "schedules": run,
        "safety_violations": safety,
        "liveness_violations": 0,
        "orphan_overlaps": 1,
        "orphan_overlap_s": {"total": 2.0, "max": 2.0, "max_outlived": 1.0},
        "first_violation": {"seed": seed} if safety else None,
        "wall_s": 1.0,
        "swarm": {"nodes": {"2": run}, "faults": {"kill": run}, "drawn": drawn},
    }


def _soak_dir(tmp: Path, name: str, chunks: list[dict[str, Any]]) -> Path:
    d = tmp / name
    d.mkdir()
    for c in chunks:
        (d / f"chunk-{c['seed']}.json").write_text(json.dumps(c))
    return d


def test_swarm_soak_sum_adds_up_parts_and_refuses_gaps_overlaps_violations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    soak = _load("swarm_soak")
    old = _soak_dir(tmp_path, "old", [_chunk(0, 10, 10), _chunk(10, 10, 10)])
    new = _soak_dir(tmp_path, "new", [_chunk(0, 20, 3)])
    monkeypatch.setattr(sys, "argv", ["swarm_soak.py", "sum", str(old), str(new)])
    assert soak.main() == 0
    part = soak.sum_dir(old)
    assert part["seeds"] == [[0, 19]] and part["schedules"] == 20 and not part["problems"]
    assert soak.sum_dir(new)["drawn"] == 20
    gap = _soak_dir(tmp_path, "gap", [_chunk(0, 10, 10), _chunk(20, 10, 10)])
    twice = _soak_dir(tmp_path, "twice", [_chunk(0, 10, 10), _chunk(5, 10, 10)])
    bad = _soak_dir(tmp_path, "bad", [_chunk(0, 10, 10, safety=1)])
    empty = _soak_dir(tmp_path, "empty", [])
    for d, why in (
        (gap, "not contiguous"),
        (twice, "twice"),
        (bad, "violations"),
        (empty, "nothing"),
    ):
        monkeypatch.setattr(sys, "argv", ["swarm_soak.py", "sum", str(d)])
        capsys.readouterr()
        assert soak.main() == 1
        assert why in capsys.readouterr().err
