"""`gossipha reload`: ask the running agent to re-read its keys and logging (SIGHUP).

The PID comes from `--pid`, or from the pid file the agent writes under its state directory
(`--pidfile`, default $GOSSIPHA_STATE_DIR/gossipha.pid or /var/lib/gossipha/gossipha.pid).
Exit status 1 with a one-line error when no agent runs or it cannot be signalled.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gossipha.runtime.reload import ReloadError, default_pidfile, read_pidfile, send_reload

DEFAULT_STATE_DIR = Path("/var/lib/gossipha")


@click.command("reload")
@click.option("--pid", type=click.IntRange(min=1), help="The agent's process id.")
@click.option(
    "--pidfile",
    type=click.Path(path_type=Path),
    help="The agent's pid file [default: STATE_DIR/gossipha.pid, STATE_DIR from "
    "GOSSIPHA_STATE_DIR or /var/lib/gossipha].",
)
def reload_command(pid: int | None, pidfile: Path | None) -> None:
    """Reload the running agent's authkeys and logging (sends it SIGHUP).

    The agent logs `reloaded` on success; a broken file is logged and the running keys stay.
    """
    import os

    if pid is not None and pidfile is not None:
        raise click.UsageError("give --pid or --pidfile, not both")
    try:
        if pid is None:
            state_dir = Path(os.environ.get("GOSSIPHA_STATE_DIR") or DEFAULT_STATE_DIR)
            pid = read_pidfile(pidfile or default_pidfile(state_dir))
        send_reload(pid)
    except ReloadError as exc:
        click.echo(f"gossipha: error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"sent SIGHUP to agent {pid}; see its log for `reloaded`")


def register(group: click.Group) -> None:
    """Add `reload` to the `gossipha` group (one line in cli.py)."""
    group.add_command(reload_command)
