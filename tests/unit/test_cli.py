"""The `gossipha` command as a user runs it: check-config, migrate, keygen, agent, --version."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from gossipha import __version__
from gossipha.cli import main
from gossipha.config.authkeys import parse_authkeys
from gossipha.config.errors import EXIT_CONFIG
from gossipha.config.model import AuthMethod

EXIT_USAGE = 2  # click's, for every usage error


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console entry point, as a user would call it."""
    return subprocess.run(
        [sys.executable, "-m", "gossipha", *args], capture_output=True, text=True, timeout=60
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_check_config_json_holds_what_scripts_need(master_ha_d: Path) -> None:
    result = run("check-config", str(master_ha_d), "--node-name", "masternginx", "--json")
    assert result.returncode == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["node_name"] == "masternginx"
    assert [n["name"] for n in doc["nodes"]] == ["masternginx", "slavenginx"]
    assert [n["voter"] for n in doc["nodes"]] == [True, True]
    assert (doc["voters"], doc["voter_rule"]) == (["masternginx", "slavenginx"], "default")
    [link] = doc["links"]
    assert (link["interface"], link["peers"], link["port"]) == ("eth1", ["192.168.17.51"], 694)
    assert doc["ping_nodes"][0]["addresses"] == ["192.168.17.1"]
    timings = doc["timings"]
    assert (
        timings["keepalive"],
        timings["deadtime"],
        timings["warntime"],
        timings["initdead"],
    ) == (
        2.0,
        30.0,
        10.0,
        60.0,
    )
    assert doc["auto_failback"] is True
    assert doc["auth"]["method"] == "md5"
    assert "Hello!" not in result.stdout  # secrets are never printed
    [group] = doc["groups"]
    assert group["preferred"] == "masternginx"
    [vip] = group["vips"]
    assert (vip["address"], vip["prefix"], vip["interface"], vip["label"]) == (
        "192.168.171.100",
        24,
        "eth0",
        "eth0:0",
    )
    assert group["services"] == ["nginx"]
    assert [r["type"] for r in group["resources"]] == ["vip", "service"]


def test_check_config_text_and_warnings(slave_ha_d: Path) -> None:
    result = run("check-config", str(slave_ha_d), "--node-name", "slavenginx")
    assert result.returncode == 0, result.stderr
    assert "node slavenginx" in result.stdout
    assert "192.168.17.50" in result.stdout
    # md5 is legacy, and one heartbeat link cannot be told from a dead peer: both warned.
    assert "legacy" in result.stderr
    assert "only one heartbeat link" in result.stderr


def test_config_and_usage_errors_exit_with_different_documented_codes() -> None:
    from tests.conftest import REPO

    assert (EXIT_CONFIG, EXIT_USAGE) == (78, 2)
    table = (REPO / "docs" / "operations.md").read_text()
    assert "| 78 | " in table and "| 2 | " in table


def test_unknown_node_is_one_clear_line_and_the_config_status(master_ha_d: Path) -> None:
    result = run("check-config", str(master_ha_d), "--node-name", "thirdnode")
    assert result.returncode == EXIT_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ha.cf" in lines[0] and "thirdnode" in lines[0]
    assert result.stdout == ""


def test_bad_value_names_file_and_line(master_ha_d: Path) -> None:
    hacf = master_ha_d / "ha.cf"
    text = hacf.read_text().replace("deadtime 30", "deadtime 1", 1)
    hacf.write_text(text)
    result = run("check-config", str(master_ha_d), "--node-name", "masternginx")
    assert result.returncode == EXIT_CONFIG
    assert f"{hacf}:5:" in result.stderr  # deadtime is on line 5
    assert "deadtime" in result.stderr and "keepalive" in result.stderr


def test_authkeys_readable_by_others_is_refused(master_ha_d: Path) -> None:
    (master_ha_d / "authkeys").chmod(0o644)
    result = run("check-config", str(master_ha_d), "--node-name", "masternginx")
    assert result.returncode == EXIT_CONFIG
    assert "authkeys" in result.stderr and "0644" in result.stderr and "600" in result.stderr


def test_missing_path(tmp_path: Path) -> None:
    result = run("check-config", str(tmp_path / "nope"))
    assert result.returncode == EXIT_CONFIG
    assert "not found" in result.stderr


def test_usage_errors_exit_2_config_errors_exit_config(master_ha_d: Path) -> None:
    runner = CliRunner()
    # (No PATH is no usage error: the default rule applies, tests/unit/test_config_paths.py.)
    assert runner.invoke(main, ["check-config", "a", "b"]).exit_code == EXIT_USAGE  # two PATHs
    assert runner.invoke(main, ["check-config", "--no-such-option", "x"]).exit_code == EXIT_USAGE
    agent = ["agent", "--config", str(master_ha_d)]
    assert runner.invoke(main, [*agent, "--listen", "nohost"]).exit_code == EXIT_USAGE
    # A full-width port is refused, not read as 9694 (str.isdigit() takes it; int() too).
    wide = runner.invoke(main, [*agent, "--listen", "127.0.0.1:９６９４"])
    assert wide.exit_code == EXIT_USAGE and "expected HOST:PORT" in wide.stderr
    bad = runner.invoke(main, [*agent, "--node-name", "nobody"])
    assert bad.exit_code == EXIT_CONFIG and "nobody" in bad.stderr
    bad = runner.invoke(main, ["migrate", str(master_ha_d), "--node-name", "nobody"])
    assert bad.exit_code == EXIT_CONFIG
    bad = runner.invoke(main, ["witness", "--config", str(master_ha_d)])
    assert bad.exit_code == EXIT_CONFIG and "gossipha.toml" in bad.stderr


def test_keygen_writes_a_mode_600_sha256_keyfile(tmp_path: Path) -> None:
    out = tmp_path / "authkeys"
    result = run("keygen", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    auth, _ = parse_authkeys(out)
    assert auth.active_key.method is AuthMethod.SHA256
    assert len(auth.active_key.secret) == 64
    again = run("keygen", "-o", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_keygen_dash_writes_the_keyfile_to_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["keygen", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []  # no file named "-"
    out = tmp_path / "piped"
    out.write_text(result.stdout)
    out.chmod(0o600)
    auth, _ = parse_authkeys(out)
    assert auth.active_key.method is AuthMethod.SHA256
    assert len(auth.active_key.secret) == 64
    assert "wrote" not in result.stdout  # only the key file, so it can be piped


def test_keygen_dot_slash_dash_is_still_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["keygen", "-o", "./-"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "-").stat().st_mode) == 0o600


def test_keygen_keys_differ(tmp_path: Path) -> None:
    run("keygen", "-o", str(tmp_path / "a"))
    run("keygen", "-o", str(tmp_path / "b"))
    a, _ = parse_authkeys(tmp_path / "a")
    b, _ = parse_authkeys(tmp_path / "b")
    assert a.active_key.secret != b.active_key.secret


def test_agent_help_lists_the_runtime_options() -> None:
    # The agent now runs for real (tests/netns/test_agent.py); here only its options.
    result = CliRunner().invoke(main, ["agent", "--help"])
    assert result.exit_code == 0
    for option in ("--config", "--node-name", "--state-dir", "--shutdown-timeout", "--no-mlock"):
        assert option in result.output


def test_agent_reports_config_errors_first(master_ha_d: Path) -> None:
    result = CliRunner().invoke(
        main, ["agent", "--config", str(master_ha_d), "--node-name", "nobody"]
    )
    assert result.exit_code == EXIT_CONFIG


def test_migrate_output_reads_back_to_the_same_model(master_ha_d: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from gossipha.config.load import load

    result = run("migrate", str(master_ha_d), "--node-name", "masternginx")
    assert result.returncode == 0, result.stderr
    toml = tmp_path / "gossipha.toml"
    toml.write_text(result.stdout)
    before = load(master_ha_d, "masternginx", host_addresses=frozenset()).config
    after = load(toml, "masternginx", host_addresses=frozenset()).config
    assert replace(after, source=before.source) == before


def test_shipped_tutorial_files_are_the_tutorials() -> None:
    from tests.conftest import TUTORIAL

    text = (TUTORIAL / "master" / "ha.cf").read_text()
    assert "ucast eth1 192.168.17.51" in text
    assert (TUTORIAL / "master" / "haresources").read_text().strip() == (
        "masternginx 192.168.171.100/24/eth0:0 nginx"
    )


def test_migrate_of_a_relative_path_points_at_the_real_keyfile(
    master_ha_d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(master_ha_d.parent)
    result = CliRunner().invoke(main, ["migrate", "master", "--node-name", "masternginx"])
    assert result.exit_code == 0, result.output
    assert f'keyfile = "{master_ha_d / "authkeys"}"' in result.output
