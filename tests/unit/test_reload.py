"""`gossipha reload`, the agent's pid file, and `[auth] mode` -> the keyring a reload builds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gossipha.cli import main
from gossipha.config.errors import ConfigError
from gossipha.config.model import AUTH_MODES, Auth, AuthKey, AuthMethod
from gossipha.config.native import load_toml
from gossipha.config.services import ServiceResolver
from gossipha.runtime.reload import (
    ReloadError,
    agent_cmdline,
    keyring_for,
    read_pidfile,
    remove_pidfile,
    send_reload,
    write_pidfile,
)
from gossipha.wire.keyring import AuthMode

TOML = """\
[cluster]
name = "c"
[auth]
keyfile = "authkeys"
{extra}
[nodes.a]
[nodes.b]
[[link]]
name = "hb"
kind = "bcast"
interface = "eth1"
"""


def _load(tmp_path: Path, extra: str, keys: str = "auth 1\n1 sha256 s\n") -> Auth:
    (tmp_path / "authkeys").write_text(keys)
    (tmp_path / "authkeys").chmod(0o600)
    (tmp_path / "g.toml").write_text(TOML.format(extra=extra))
    config, _, _ = load_toml(tmp_path / "g.toml", "a", resolver=ServiceResolver(tmp_path))
    return config.auth


def test_auth_modes_match_the_keyring_modes() -> None:
    assert tuple(m.value for m in AuthMode) == AUTH_MODES


@pytest.mark.parametrize("mode", AUTH_MODES)
def test_auth_mode_reaches_the_keyring(tmp_path: Path, mode: str) -> None:
    auth = _load(tmp_path, f'mode = "{mode}"')
    assert auth.mode == mode
    assert keyring_for(auth).mode is AuthMode(mode)


def test_no_mode_means_enforce(tmp_path: Path) -> None:
    auth = _load(tmp_path, "")
    assert auth.mode is None and keyring_for(auth).mode is AuthMode.ENFORCE


def test_unknown_mode_is_refused_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, 'mode = "sign"')
    assert err.value.line == 5 and "accept-unsigned, sign-accept-both, enforce" in str(err.value)


def test_signing_mode_with_a_crc_active_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="active key 1 is crc"):
        _load(tmp_path, 'allow_unauthenticated = true\nmode = "enforce"', "auth 1\n1 crc\n")
    auth = _load(tmp_path, 'mode = "accept-unsigned"', "auth 1\n1 crc\n")
    keyring = keyring_for(auth)
    assert keyring.mode is AuthMode.ACCEPT_UNSIGNED and keyring.signing_key is None


def test_staged_mode_signs_with_the_active_key_only_when_the_mode_says_so() -> None:
    auth = Auth(Path("k"), 2, (AuthKey(2, AuthMethod.SHA256, b"s"),), mode="accept-unsigned")
    assert keyring_for(auth).signing_key is None
    signing = keyring_for(Auth(auth.path, 2, auth.keys, mode="sign-accept-both"))
    assert signing.signing_key == auth.keys[0] and signing.mode.accepts_unsigned


def test_pidfile_round_trip_and_removal_only_of_our_own(tmp_path: Path) -> None:
    path = tmp_path / "run" / "gossipha.pid"
    write_pidfile(path, 1234)
    assert read_pidfile(path) == 1234
    remove_pidfile(path, 999)  # another agent's file: kept
    assert path.exists()
    remove_pidfile(path, 1234)
    assert not path.exists()
    remove_pidfile(path, 1234)  # twice is fine


def test_bad_pidfiles_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ReloadError, match="no pid file; is the agent running"):
        read_pidfile(tmp_path / "missing.pid")
    (tmp_path / "junk.pid").write_text("hello\n")
    with pytest.raises(ReloadError, match="expected a PID"):
        read_pidfile(tmp_path / "junk.pid")


def test_reload_refuses_a_process_that_is_not_an_agent() -> None:
    # A stale pid file naming a reused PID must not SIGHUP (by default: kill) that program.
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as proc:
        try:
            assert agent_cmdline(proc.pid) is None
            with pytest.raises(ReloadError, match="not a gossipha agent"):
                send_reload(proc.pid)
            assert proc.poll() is None
        finally:
            proc.kill()


def test_reload_command_without_an_agent(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["reload", "--pidfile", str(tmp_path / "none.pid")])
    assert result.exit_code == 1
    assert "no pid file; is the agent running?" in result.output
    result = runner.invoke(main, ["reload"], env={"GOSSIPHA_STATE_DIR": str(tmp_path)})
    assert result.exit_code == 1 and str(tmp_path / "gossipha.pid") in result.output
    result = runner.invoke(main, ["reload", "--pid", "1", "--pidfile", "x"])
    assert result.exit_code == 2 and "not both" in result.output


def test_reload_command_signals_a_running_agent(tmp_path: Path) -> None:
    # A stand-in whose command line looks like `python -m gossipha agent` and that counts HUPs.
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGHUP, lambda *a: print('hup', flush=True))\n"
        "print('ready', flush=True)\n"
        "time.sleep(10)\n"
    )
    stub = tmp_path / "gossipha"
    stub.write_text(script)
    with subprocess.Popen(
        [sys.executable, str(stub), "agent"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            write_pidfile(tmp_path / "gossipha.pid", proc.pid)
            result = CliRunner().invoke(main, ["reload"], env={"GOSSIPHA_STATE_DIR": str(tmp_path)})
            assert result.exit_code == 0, result.output
            assert f"sent SIGHUP to agent {proc.pid}" in result.output
            assert proc.stdout.readline() == "hup\n"
        finally:
            proc.kill()
    assert os.path.exists(tmp_path / "gossipha.pid")
