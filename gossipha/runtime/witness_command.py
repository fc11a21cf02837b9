"""`gossipha witness`: run this node as a witness (votes on leases, holds nothing).

Only native TOML can name a witness (`role = "witness"`); Heartbeat's ha.cf has no such
line, so a directory is refused with a pointer to `gossipha migrate`. Configuration errors
print one line (file:line: message) and exit with status 2, as for `gossipha agent`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from gossipha.config.errors import ConfigError
from gossipha.config.load import Loaded, load
from gossipha.config.model import IPAddress

EXIT_CONFIG = 2


def load_witness(
    path: Path,
    node_name: str | None = None,
    *,
    allow_unauthenticated: bool = False,
    host_addresses: frozenset[IPAddress] | None = None,
) -> Loaded:
    """The configuration at `path` for a witness node; ConfigError unless it is one."""
    from gossipha.runtime.witness import require_witness

    if path.is_dir():
        raise ConfigError(
            path,
            None,
            "a Heartbeat directory (ha.cf) has no way to name a witness; write a "
            'gossipha.toml with the witness as [nodes.NAME] role = "witness" '
            f"(`gossipha migrate {path}` converts the rest) and pass it to --config",
        )
    loaded = load(
        path,
        node_name,
        allow_unauthenticated=allow_unauthenticated,
        host_addresses=host_addresses,
        allow_witness=True,
    )
    require_witness(loaded.config)
    return loaded


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("/etc/gossipha/gossipha.toml"),
    show_default=True,
    help="The cluster's gossipha.toml (the same file as on the members).",
)
@click.option(
    "--node-name",
    metavar="NAME",
    help="This witness's name among the configured nodes (default: uname -n).",
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="Accept `crc` (no authentication) in authkeys: anyone on the wire can forge heartbeats.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    envvar="GOSSIPHA_STATE_DIR",
    default=Path("/var/lib/gossipha"),
    show_default=True,
    help="Where the incarnation number is kept across restarts (env GOSSIPHA_STATE_DIR).",
)
@click.option("--no-mlock", is_flag=True, help="Do not lock the witness's memory (mlockall).")
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Serve /metrics, /status, /healthz here instead of observe.listen_address:listen_port.",
)
@click.option(
    "--admin-socket",
    type=click.Path(path_type=Path),
    help="Admin socket path instead of observe.admin_socket.",
)
def witness(
    config_path: Path,
    node_name: str | None,
    allow_unauthenticated: bool,
    state_dir: Path,
    no_mlock: bool,
    listen: str | None,
    admin_socket: Path | None,
) -> None:
    """Run this node as a witness until SIGTERM: it votes on leases and holds nothing
    (no VIP, services, ping nodes or health checks). SIGHUP reloads keys and logging."""
    from prometheus_client import CollectorRegistry

    from gossipha.runtime.agent import AgentOptions, run_agent
    from gossipha.runtime.observe_glue import metrics_for
    from gossipha.runtime.witness import witness_config

    try:
        loaded = load_witness(config_path, node_name, allow_unauthenticated=allow_unauthenticated)
    except ConfigError as exc:
        click.echo(f"gossipha: error: {exc.render()}", err=True)
        sys.exit(EXIT_CONFIG)
    for warning in loaded.warnings:
        click.echo(f"gossipha: {warning.render()}", err=True)
    options = AgentOptions(
        config_path=config_path,
        node_name=node_name,
        allow_unauthenticated=allow_unauthenticated,
        state_dir=state_dir,
        mlock=not no_mlock,
        listen=_parse_listen(listen),
        admin_socket=admin_socket,
        witness=True,
    )
    registry = CollectorRegistry()  # the one registry of this process, passed down
    metrics = metrics_for(witness_config(loaded.config), registry)
    sys.exit(asyncio.run(run_agent(loaded, options, registry=registry, metrics=metrics)))


def _parse_listen(value: str | None) -> tuple[str, int] | None:
    """HOST:PORT (IPv6 as [ADDR]:PORT), as `gossipha agent --listen`."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--listen")
    return host, int(port)


__all__ = ["load_witness", "witness"]
