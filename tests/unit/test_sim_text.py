"""`gossipha sim` without --json: lines a person reads and grep matches, every option explained."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from gossipha.sim.command import sim


def test_text_report_has_no_python_reprs() -> None:
    res = CliRunner().invoke(sim, ["--nodes", "2", "--schedules", "1", "--seed", "3"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    for line in lines:
        key, sep, value = line.partition(": ")
        assert sep and key and value, line
        assert not any(mark in value for mark in ("{", "[", "'", "None")), line
    assert "first_violation_seed: -" in lines  # None is shown as -, the key stays
    assert any(line.startswith("detect_s.median: ") for line in lines)  # nested: a.b
    assert any(line.startswith("orphan_overlap_s.max_outlived: ") for line in lines)


def test_text_and_json_report_the_same_numbers() -> None:
    args = ["--nodes", "2", "--schedules", "1", "--seed", "3"]
    text = CliRunner().invoke(sim, args).stdout.splitlines()
    report = json.loads(CliRunner().invoke(sim, [*args, "--json"]).stdout)
    assert f"nodes: {report['nodes']}" in text
    assert f"safety_violations: {report['safety_violations']}" in text
    assert f"failover_s.p99: {report['failover_s']['p99']}" in text


def test_swarm_text_report_flattens_its_tables() -> None:
    res = CliRunner().invoke(sim, ["--swarm", "--nodes", "2", "--schedules", "1"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "swarm.nodes.2: 1" in lines
    assert any(line.startswith("swarm.lease_over_deadtime.min: ") for line in lines)
    assert "swarm.with_fault: -" in lines
    assert not any(("{" in line or "None" in line) for line in lines)


def test_every_sim_option_has_help() -> None:
    options = [p for p in sim.params if isinstance(p, click.Option)]
    assert [o.name for o in options if not o.help] == []
