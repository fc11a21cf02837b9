"""`gossipha witness`: which configurations it runs (a voting witness in native TOML only),
what it refuses and how, and what the runtime keeps of the configuration for a witness."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gossipha.cli import main
from gossipha.config.errors import EXIT_CONFIG, ConfigError
from gossipha.config.load import Loaded, load
from gossipha.config.model import NodeRole
from gossipha.runtime.agent import Agent, AgentOptions
from gossipha.runtime.witness import load_witness, require_witness, witness_config

CLUSTER = """\
[cluster]
name = "web3"

[nodes.web1]
addresses = { hb = "10.0.17.11", svc = "10.0.171.11" }

[nodes.web2]
addresses = { hb = "10.0.17.12", svc = "10.0.171.12" }

[nodes.quorum1]
role = "witness"
addresses = { hb = "10.0.17.13" }

[[link]]
name = "hb"
interface = "eth1"

[[link]]
name = "svc"
interface = "eth0"

[[ping]]
name = "gw"
addresses = ["10.0.17.1"]

[[respawn]]
user = "nobody"
command = ["/bin/true"]

[[group]]
name = "web"
preferred = "web1"
resources = [
  { vip = "10.0.171.100/24", interface = "eth0" },
  { service = "nginx" },
]
"""


def _write(directory: Path) -> Path:
    """The cluster's gossipha.toml with authkeys and resource.d/nginx beside it."""
    keyfile = directory / "authkeys"
    keyfile.write_text("auth 1\n1 sha256 0123456789abcdef0123456789abcdef\n")
    keyfile.chmod(0o600)
    script = directory / "resource.d" / "nginx"
    script.parent.mkdir(exist_ok=True)
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    path = directory / "gossipha.toml"
    path.write_text(CLUSTER)
    return path


def test_loading_with_the_witness_allowed_gives_the_witness_config(tmp_path: Path) -> None:
    path = _write(tmp_path)
    loaded = load_witness(path, "quorum1", host_addresses=frozenset())
    config = loaded.config
    assert config.node_name == "quorum1"
    assert config.node("quorum1").role is NodeRole.WITNESS
    assert [n.name for n in config.members] == ["web1", "web2"]
    # The same keyword on the shared loader, additive: default unchanged.
    assert load(path, "quorum1", host_addresses=frozenset(), allow_witness=True).config == config


def test_plain_load_still_refuses_a_witness_node(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with pytest.raises(ConfigError, match="run `gossipha witness` on it"):
        load(path, "quorum1", host_addresses=frozenset())


def test_load_witness_refuses_a_member(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with pytest.raises(ConfigError, match="'web1' is a member node, not a witness"):
        load_witness(path, "web1", host_addresses=frozenset())


def test_load_witness_refuses_a_non_voting_witness(tmp_path: Path) -> None:
    path = _write(tmp_path)
    text = path.read_text().replace('role = "witness"\n', 'role = "witness"\nvoter = false\n')
    path.write_text(text)
    with pytest.raises(ConfigError, match="voter = false"):
        load_witness(path, "quorum1", host_addresses=frozenset())


def test_witness_command_refuses_a_member_node_name(tmp_path: Path) -> None:
    path = _write(tmp_path)
    result = CliRunner().invoke(
        main, ["witness", "--config", str(path), "--node-name", "web2", "--no-mlock"]
    )
    assert result.exit_code == EXIT_CONFIG, result.output
    assert (
        "gossipha: error: " in result.output
        and "'web2' is a member node, not a witness; run `gossipha agent` on it" in result.output
    )


def test_witness_command_refuses_a_heartbeat_directory(master_ha_d: Path) -> None:
    result = CliRunner().invoke(
        main, ["witness", "--config", str(master_ha_d), "--node-name", "masternginx"]
    )
    assert result.exit_code == EXIT_CONFIG, result.output
    assert "ha.cf) has no way to name a witness" in result.output
    assert "gossipha migrate" in result.output


def test_witness_command_reports_an_unknown_node(tmp_path: Path) -> None:
    path = _write(tmp_path)
    result = CliRunner().invoke(main, ["witness", "--config", str(path), "--node-name", "nope"])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert "'nope' is not among the configured nodes" in result.output


def test_witness_help_is_registered() -> None:
    result = CliRunner().invoke(main, ["witness", "--help"])
    assert result.exit_code == 0
    assert "holds nothing" in result.output and "--node-name" in result.output


def test_witness_config_keeps_its_own_links_and_no_ping_or_respawn(tmp_path: Path) -> None:
    config = load_witness(_write(tmp_path), "quorum1", host_addresses=frozenset()).config
    narrowed = witness_config(config)
    assert [link.name for link in narrowed.links] == ["hb"]  # no address on svc
    assert narrowed.ping_groups == () and narrowed.respawns == ()
    assert narrowed.groups == config.groups  # kept for status: who holds what


def test_witness_config_refuses_a_member(tmp_path: Path) -> None:
    config = load(_write(tmp_path), "web1", host_addresses=frozenset()).config
    with pytest.raises(ConfigError, match="member node"):
        require_witness(config)


def test_agent_in_witness_mode_runs_no_group(tmp_path: Path) -> None:
    loaded = load_witness(_write(tmp_path), "quorum1", host_addresses=frozenset())
    agent = Agent(loaded, AgentOptions(tmp_path / "gossipha.toml", witness=True))
    assert agent._runs == {}
    assert [link.name for link in agent.config.links] == ["hb"]
    assert agent.config.ping_groups == ()


def test_agent_in_witness_mode_refuses_a_member(tmp_path: Path) -> None:
    loaded = load(_write(tmp_path), "web1", host_addresses=frozenset())
    with pytest.raises(ConfigError, match="member node"):
        Agent(Loaded(loaded.config, ()), AgentOptions(tmp_path, witness=True))
