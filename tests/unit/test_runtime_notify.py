"""sd_notify over a real unix datagram socket, and the systemd unit checked by systemd."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from gossipha.config.errors import EXIT_CONFIG
from gossipha.runtime.notify import Notifier
from tests.ci import cannot_run

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "gossipha.service"


def _receiver(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    return sock


def test_ready_watchdog_stopping_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with _receiver(path) as sock:
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        assert n.enabled
        assert n.ready("node a running")
        assert sock.recv(4096) == b"READY=1\nSTATUS=node a running"
        assert n.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert n.stopping()
        assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_socket(tmp_path: Path) -> None:
    name = f"gossipha-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(4096) == b"READY=1"


def test_without_systemd_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready()
    assert n.watchdog_s is None


def test_missing_socket_is_not_an_error(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not n.watchdog()
    assert not n.watchdog()  # warned once, never raised


def test_watchdog_interval_only_for_this_process() -> None:
    assert Notifier({"WATCHDOG_USEC": "10000000"}).watchdog_s == 10.0
    mine = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_s == 4.0
    other = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(other).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_s is None


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        cannot_run("systemd-analyze not installed (install systemd)")
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text
    # A configuration error (EX_CONFIG, the agent's exit status for one) is not retried.
    assert f"RestartPreventExitStatus={EXIT_CONFIG}" in text
    # /usr/bin/gossipha exists only once installed: point ExecStart at this interpreter.
    unit = tmp_path / "gossipha.service"
    unit.write_text(text.replace("/usr/bin/gossipha", f"{sys.executable} -m gossipha"))
    # --man=no: likewise gossipha(8) of Documentation= (tests/unit/test_deb.py verifies the
    # installed unit with its page).
    result = subprocess.run(
        [tool, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "gossipha.service" not in result.stderr, result.stderr
