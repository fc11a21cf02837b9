"""One rule for where every command finds its configuration when given no path:
/etc/gossipha/gossipha.toml if present, else /etc/ha.d; a directory holding gossipha.toml
(and no ha.cf) means that file. Here the two places are moved under tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from gossipha.cli import main
from gossipha.config import load
from gossipha.config.errors import EXIT_CONFIG
from tests.conftest import copy_ha_d
from tests.unit.test_config_encoding import native


@pytest.fixture
def search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    places = (tmp_path / "etc-gossipha" / "gossipha.toml", tmp_path / "ha.d")
    monkeypatch.setattr(load, "DEFAULT_SEARCH", places)
    return places


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def source_of(result: Result) -> str:
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert isinstance(doc, dict)
    return str(doc["source"])


def test_nothing_found_names_every_place_looked(search: tuple[Path, Path]) -> None:
    for command in (
        ["check-config"],
        ["migrate"],
        ["agent", "--node-name", "a"],
        ["witness", "--node-name", "w"],
        ["status"],
    ):
        result = run(*command)
        assert result.exit_code == EXIT_CONFIG, command
        assert f"no configuration found (looked for {search[0]}, {search[1]})" in result.stderr


def test_heartbeat_directory_when_there_is_no_toml(search: tuple[Path, Path]) -> None:
    shutil.copytree(copy_ha_d("master", search[1].parent / "src"), search[1])
    result = run("check-config", "--no-host-checks", "--node-name", "masternginx", "--json")
    assert source_of(result) == str(search[1])


def test_the_toml_comes_first(search: tuple[Path, Path]) -> None:
    shutil.copytree(copy_ha_d("master", search[1].parent / "src"), search[1])
    search[0].parent.mkdir()
    native(search[0].parent)
    result = run("check-config", "--no-host-checks", "--node-name", "a", "--json")
    assert source_of(result) == str(search[0])
    migrated = run("migrate", "--node-name", "a")
    assert migrated.exit_code == 0 and 'name = "web"' in migrated.stdout


def test_a_directory_holding_gossipha_toml_means_that_file(tmp_path: Path) -> None:
    directory = tmp_path / "conf"
    directory.mkdir()
    path = native(directory)
    result = run("check-config", str(directory), "--no-host-checks", "--node-name", "a", "--json")
    assert source_of(result) == str(path)


def test_a_directory_holding_both_is_refused(tmp_path: Path) -> None:
    directory = copy_ha_d("master", tmp_path)
    native(directory)  # also writes an authkeys, mode 600, as the ha.d has
    result = run("check-config", str(directory), "--json")
    assert result.exit_code == EXIT_CONFIG
    assert "holds both ha.cf and gossipha.toml" in result.stderr
    assert orjson.loads(result.stdout)["errors"][0]["code"] == "duplicate"


@pytest.mark.parametrize("command", ["check-config", "migrate", "agent", "witness", "status"])
def test_every_command_s_help_states_the_rule(command: str) -> None:
    result = run(command, "--help")
    text = " ".join(result.output.split())
    assert "/etc/gossipha/gossipha.toml if present, else /etc/ha.d" in text, command
