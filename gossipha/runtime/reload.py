"""Reloading a running agent: its pid file, the SIGHUP, and the keyring a reload builds.

The agent writes its PID once its SIGHUP handler is installed (before that, SIGHUP's default
action would kill it) and removes the file on the way out. `gossipha reload` reads the file
and signals that PID only if it still is a gossipha agent, so a stale file whose PID was
reused by another program never sends that program a SIGHUP.

A reload reads the files again (bounded by RELOAD_TIMEOUT_S) and applies only keys and
logging; files that do not load keep the running configuration, and other changes are
logged as needing a restart, since nodes, links, timings and resources are fixed at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path

from gossipha.aio import within
from gossipha.config.errors import ConfigError
from gossipha.config.load import load
from gossipha.config.model import Auth, Config
from gossipha.runtime.logs import kv
from gossipha.runtime.witness import witness_config
from gossipha.wire.keyring import AuthMode, Keyring, KeyringError

# The agent's logger: its lines keep the name operators and bench/failover.py read.
log = logging.getLogger("gossipha.agent")

PIDFILE_NAME = "gossipha.pid"
RELOAD_TIMEOUT_S = 10.0


class ReloadError(Exception):
    """No agent to reload, or it cannot be signalled (the message says which and why)."""


def keyring_for(auth: Auth) -> Keyring:
    """The keyring for `auth`, in its `[auth] mode` when one is set (KeyringError if unusable)."""
    mode = None if auth.mode is None else AuthMode(auth.mode)
    return Keyring.from_auth(auth, mode=mode)


async def load_for_reload(
    path: Path, node_name: str, *, allow_unauthenticated: bool, witness: bool
) -> tuple[Config, Keyring] | None:
    """The configuration a SIGHUP reads and its keyring; None (logged) if they are unusable."""
    try:
        loaded = await within(
            asyncio.to_thread(
                load,
                path,
                node_name,
                allow_unauthenticated=allow_unauthenticated,
                allow_witness=witness,
            ),
            RELOAD_TIMEOUT_S,
        )
        keyring = keyring_for(loaded.config.auth)
        # A witness compares like with like (its narrowed config); a node that became
        # a member needs a restart as `gossipha agent` (ConfigError).
        new = witness_config(loaded.config) if witness else loaded.config
    except ConfigError as exc:
        for error in exc.each():  # one log line per error (ConfigErrors holds several)
            log.error(kv("reload failed; keeping the running configuration", error=error.render()))
        return None
    except (KeyringError, OSError, TimeoutError) as exc:
        log.error(kv("reload failed; keeping the running configuration", error=exc))
        return None
    for warning in loaded.warnings:
        log.warning(kv("config warning", detail=warning.render()))
    for weakness in keyring.weaknesses():
        log.warning(kv("weak authentication", detail=weakness))
    return new, keyring


def reloaded(old: Config, new: Config) -> Config:
    """The running configuration with `new`'s keys and logging; other changes are logged."""
    running = replace(old, auth=new.auth, logging=new.logging)
    if replace(new, auth=old.auth, logging=old.logging) != old:
        log.warning(
            "reload: keys and logging applied; other changes (nodes, links, timings, "
            "resources) need a restart"
        )
    return running


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
