"""This node's incarnation, persisted so that it only ever goes up.

Peers ignore a node whose incarnation did not rise since they last heard it (an old agent's
late packets, a replay). A restart therefore takes the clock's value unless the file says an
earlier run already used as much or more (the clock stepped back), and writes it before
anything is sent. A state directory we cannot use costs only that guarantee, not the start.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from gossipha.runtime.logs import kv
from gossipha.wire.replay import next_incarnation

# The agent's logger: its lines keep the name operators and bench/failover.py read.
log = logging.getLogger("gossipha.agent")


def incarnation_path(state_dir: Path, cluster: str, node: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{cluster}-{node}")
    return state_dir / f"{safe}.inc"


def read_incarnation(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def write_incarnation(path: Path, value: int) -> None:
    """Atomically (write, fsync, rename): a crash leaves the old or the new value."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, f"{value}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def new_incarnation(path: Path) -> int:
    """Above every incarnation this node used before, persisted before anything is sent."""
    previous: int | None = None
    try:
        previous = read_incarnation(path)
    except OSError as exc:
        log.warning(kv("incarnation file unreadable", path=path, error=exc))
    value = next_incarnation(time.time_ns() // 1000, previous)
    try:
        write_incarnation(path, value)
    except OSError as exc:
        log.warning(
            kv(
                "incarnation not persisted; a restart with the clock stepped back may be "
                "ignored by peers",
                path=path,
                error=exc,
            )
        )
    return value
