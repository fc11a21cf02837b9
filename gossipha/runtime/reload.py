"""Reloading a running agent: its pid file, the SIGHUP, and the keyring a reload builds.

The agent writes its PID once its SIGHUP handler is installed (before that, SIGHUP's default
action would kill it) and removes the file on the way out. `gossipha reload` reads the file
and signals that PID only if it still is a gossipha agent, so a stale file whose PID was
reused by another program never sends that program a SIGHUP.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from gossipha.config.model import Auth
from gossipha.wire.keyring import AuthMode, Keyring

PIDFILE_NAME = "gossipha.pid"


class ReloadError(Exception):
    """No agent to reload, or it cannot be signalled (the message says which and why)."""


def keyring_for(auth: Auth) -> Keyring:
    """The keyring for `auth`, in its `[auth] mode` when one is set (KeyringError if unusable)."""
    mode = None if auth.mode is None else AuthMode(auth.mode)
    return Keyring.from_auth(auth, mode=mode)


def default_pidfile(state_dir: Path) -> Path:
    return state_dir / PIDFILE_NAME


def write_pidfile(path: Path, pid: int) -> None:
    """Atomically (write, rename), so a reader sees the old PID or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = path.with_name(f"{path.name}.{pid}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, f"{pid}\n".encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def remove_pidfile(path: Path, pid: int) -> None:
    """Remove the file if it still names `pid` (a newer agent may have replaced it)."""
    with contextlib.suppress(OSError, ReloadError):
        if read_pidfile(path) == pid:
            path.unlink()


def read_pidfile(path: Path) -> int:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ReloadError(f"{path}: no pid file; is the agent running?") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReloadError(f"{path}: cannot read: {exc}") from None
    if not text.isdigit() or int(text) <= 0:
        raise ReloadError(f"{path}: expected a PID, found {text[:40]!r}")
    return int(text)


def agent_cmdline(pid: int) -> list[str] | None:
    """The command line of `pid` if it is a running `gossipha agent`, else None."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    names = [Path(a).name for a in argv]
    if "agent" not in argv:
        return None
    if any(n == "gossipha" or n.startswith("gossipha") for n in names):
        return argv
    return None


def send_reload(pid: int) -> None:
    """SIGHUP to `pid`, once it is known to be a gossipha agent (ReloadError otherwise)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise ReloadError(f"no process {pid}; is the agent running?") from None
    except PermissionError:
        raise ReloadError(
            f"not allowed to signal process {pid} (run as its user or root)"
        ) from None
    if agent_cmdline(pid) is None:
        raise ReloadError(f"process {pid} is not a gossipha agent; not signalling it")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ReloadError(f"process {pid} exited before it could be signalled") from None
    except PermissionError:
        raise ReloadError(
            f"not allowed to signal process {pid} (run as its user or root)"
        ) from None
