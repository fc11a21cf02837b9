"""The `gossipha sim --json` contract."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gossipha.sim.command import sim


def test_json_report_has_the_documented_keys() -> None:
    res = CliRunner().invoke(sim, ["--nodes", "3", "--schedules", "3", "--seed", "5", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["nodes"] == 3 and report["schedules"] == 3
    assert report["safety_violations"] == 0 and report["liveness_violations"] == 0
    for key in ("detect_s", "failover_s"):
        assert 0 < report[key]["median"] <= report[key]["p99"] < 3.0
    for key in ("msgs_per_node_s", "bytes_per_node_s", "steps_per_s"):
        assert report[key] > 0


def test_violation_exits_1_with_seed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gossipha.sim import command
    from gossipha.sim.scenarios import ScheduleResult

    def fake(config, seed, **kw):  # type: ignore[no-untyped-def]
        return ScheduleResult(
            seed,
            safety=["0.1 group g0 runs on ['n0', 'n1'] at once"],
            sim_s=1.0,
            trace=["trace line"],
        )

    monkeypatch.setattr(command, "random_schedule", fake)
    res = CliRunner().invoke(sim, ["--nodes", "2", "--schedules", "2", "--seed", "9", "--json"])
    assert res.exit_code == 1
    report = json.loads(res.stdout.splitlines()[0])
    assert report["safety_violations"] == 2 and report["first_violation_seed"] == 9
    assert "seed 9" in res.stderr and "trace line" in res.stderr
