"""`gossipha demo --list`: what scripts read without root or a lab."""

from __future__ import annotations

import orjson
from click.testing import CliRunner

from gossipha.cli import main
from gossipha.lab.scenarios import SCENARIO_NAMES, SCENARIOS


def test_demo_list_json_names_every_scenario() -> None:
    result = CliRunner().invoke(main, ["demo", "--list", "--json"])
    assert result.exit_code == 0, result.output
    listing = orjson.loads(result.stdout)
    assert [item["name"] for item in listing] == list(SCENARIO_NAMES)
    assert [item["title"] for item in listing] == [sc.title for sc in SCENARIOS]
    assert [item["pending"] for item in listing] == [sc.pending for sc in SCENARIOS]


def test_demo_list_text_is_unchanged() -> None:
    result = CliRunner().invoke(main, ["demo", "--list"])
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(SCENARIO_NAMES)
