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


def _native_config(tmp_path):  # type: ignore[no-untyped-def]
    import shutil
    from pathlib import Path

    from gossipha.cli import main

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "native"
    shutil.copy(example / "gossipha.toml", tmp_path / "gossipha.toml")
    (tmp_path / "resource.d").mkdir()
    script = tmp_path / "resource.d" / "nginx"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    res = CliRunner().invoke(main, ["keygen", "--output", str(tmp_path / "authkeys")])
    assert res.exit_code == 0, res.output
    return tmp_path / "gossipha.toml"


def test_config_file_is_simulated_from_any_nodes_view(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = _native_config(tmp_path)
    args = ["--config", str(config), "--node-name", "slavenginx", "--schedules", "2", "--json"]
    res = CliRunner().invoke(sim, args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["nodes"] == 2 and report["safety_violations"] == 0


def test_bad_config_file_exits_78_naming_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = _native_config(tmp_path)
    res = CliRunner().invoke(sim, ["--config", str(config), "--node-name", "nobody"])
    assert res.exit_code == 78 and "nobody" in res.stderr, res.stderr
    (tmp_path / "authkeys").unlink()
    res = CliRunner().invoke(sim, ["--config", str(config), "--node-name", "masternginx"])
    assert res.exit_code == 78
    assert f"gossipha: error: {config}:" in res.stderr and "authkeys" in res.stderr


def test_nodes_and_config_are_exclusive(tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(sim, ["--nodes", "3", "--config", str(tmp_path / "x.toml")])
    assert res.exit_code == 2 and "exclusive" in res.output
    res = CliRunner().invoke(sim, ["--node-name", "a"])
    assert res.exit_code == 2 and "--node-name needs --config" in res.output


def test_orphan_overlaps_are_reported_with_their_lengths(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The plain schedules' JSON carries the L1 overlaps' lengths, not only their count."""
    from gossipha.sim import command
    from gossipha.sim.scenarios import ScheduleResult

    def fake(config, seed, **kw):  # type: ignore[no-untyped-def]
        return ScheduleResult(seed, sim_s=1.0, orphans=1, orphan_spans=[(2.5, 0.25)])

    monkeypatch.setattr(command, "random_schedule", fake)
    res = CliRunner().invoke(sim, ["--nodes", "3", "--schedules", "2", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["orphan_overlaps"] == 2
    assert report["orphan_overlap_s"] == {"total": 5.0, "max": 2.5, "max_outlived": 0.25}


def test_every_error_of_a_bad_config_file_is_printed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """As check-config prints them: one `gossipha: error:` line per error, file:line each."""
    bad = tmp_path / "gossipha.toml"
    bad.write_text('frobnicate = 1\nwidget = "x"\n')
    res = CliRunner().invoke(sim, ["--config", str(bad), "--node-name", "a"])
    assert res.exit_code == 78
    errors = [line for line in res.stderr.splitlines() if line.startswith("gossipha: error:")]
    assert len(errors) >= 2, res.stderr
    assert f"{bad}:1:" in res.stderr and f"{bad}:2:" in res.stderr, res.stderr
