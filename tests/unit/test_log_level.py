"""`--log-level` on `agent` and `witness`: the standard names, applied to the agent's logging,
and still applied after a SIGHUP reload re-reads the logging settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gossipha.cli import main
from gossipha.config.load import load
from gossipha.config.model import Logging
from gossipha.runtime import logs
from gossipha.runtime.agent import Agent, AgentOptions
from gossipha.wire.codec import Decoder, Encoder, cluster_id
from gossipha.wire.keyring import Keyring

log = logging.getLogger("gossipha.test")


@pytest.fixture(autouse=True)
def _closed_logs() -> Iterator[None]:
    yield
    logs.close()
    logging.getLogger(logs.LOGGER).setLevel(logging.NOTSET)


def test_level_drops_what_is_below_it(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(Logging(debug=1), level=logging.WARNING)
    log.debug("a debug line")
    log.info("an info line")
    log.warning("a warning line")
    err = capsys.readouterr().err
    assert "a warning line" in err
    assert "an info line" not in err and "a debug line" not in err


def test_debug_level_shows_debug_without_debug_in_the_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure(Logging(), level=logging.DEBUG)
    log.debug("a debug line")
    assert "a debug line" in capsys.readouterr().err


def test_without_a_level_the_configuration_decides(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(Logging())
    log.debug("a debug line")
    log.info("an info line")
    err = capsys.readouterr().err
    assert "an info line" in err and "a debug line" not in err


def _captured_options(monkeypatch: pytest.MonkeyPatch) -> list[AgentOptions]:
    seen: list[AgentOptions] = []

    def fake_run(_loaded: Any, options: AgentOptions) -> None:
        seen.append(options)

    monkeypatch.setattr("gossipha.cli._run", fake_run)
    return seen


@pytest.mark.parametrize(
    ("name", "level"),
    [("debug", logging.DEBUG), ("info", logging.INFO), ("WARNING", logging.WARNING)],
)
def test_agent_takes_log_level(
    master_ha_d: Path, monkeypatch: pytest.MonkeyPatch, name: str, level: int
) -> None:
    seen = _captured_options(monkeypatch)
    args = ["agent", "--config", str(master_ha_d), "--node-name", "masternginx"]
    result = CliRunner().invoke(main, [*args, "--log-level", name])
    assert result.exit_code == 0, result.output
    assert [o.log_level for o in seen] == [level]


def test_log_level_from_the_environment_and_none_by_default(
    master_ha_d: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _captured_options(monkeypatch)
    args = ["agent", "--config", str(master_ha_d), "--node-name", "masternginx"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, args, env={"GOSSIPHA_LOG_LEVEL": "error"}).exit_code == 0
    assert [o.log_level for o in seen] == [None, logging.ERROR]


def test_an_unknown_log_level_is_a_usage_error(master_ha_d: Path) -> None:
    args = ["agent", "--config", str(master_ha_d), "--log-level", "loud"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "--log-level" in result.output and "warning" in result.output


def test_witness_takes_log_level_too() -> None:
    result = CliRunner().invoke(main, ["witness", "--help"])
    assert result.exit_code == 0 and "--log-level" in result.output


async def test_a_reload_keeps_the_log_level(master_ha_d: Path) -> None:
    loaded = load(master_ha_d, "masternginx", host_addresses=frozenset())
    options = AgentOptions(master_ha_d, node_name="masternginx", log_level=logging.ERROR)
    agent = Agent(loaded, options)
    keyring = Keyring.from_auth(loaded.config.auth)
    cid = cluster_id(loaded.config.cluster_name)
    agent._encoder = Encoder(cluster=cid, node="masternginx", incarnation=1, keyring=keyring)
    agent._decoder = Decoder(
        cluster=cid, node="masternginx", incarnation=1, senders=["slavenginx"], keyring=keyring
    )
    await agent._reload()
    assert logging.getLogger(logs.LOGGER).level == logging.ERROR
