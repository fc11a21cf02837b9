"""`gossipha status|standby|takeover|maintenance`: the operator's commands.

`status` reads the agent's /status over HTTP and prints it crm_mon style, or as JSON; it
finds the agent's address in the agent's configuration (`--config`, else found by the
same rule as for `gossipha agent`: config/load.py resolve_path) unless given `--url`. The
others send one command on the admin socket. Exit status 1 with a one-line error when the
agent is not running or refuses, 78 (EXIT_CONFIG) when the configuration cannot be read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from gossipha.config.errors import EXIT_CONFIG, ConfigError
from gossipha.config.load import DEFAULT_HELP
from gossipha.core.types import AdminKind
from gossipha.observe.admin import AdminError, send_admin
from gossipha.observe.status import render_text

DEFAULT_SOCKET = Path("/run/gossipha/admin.sock")
FETCH_TIMEOUT_S = 3.0


def _fail(msg: str) -> NoReturn:
    click.echo(f"gossipha: error: {msg}", err=True)
    sys.exit(1)


def agent_url(host: str, port: int) -> str:
    """The URL of an agent listening on host:port, from this host: a wildcard address
    (0.0.0.0, ::) is reached on loopback; an IPv6 address goes in brackets."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}"  # a host name
    if addr.is_unspecified:
        addr = ipaddress.ip_address("::1" if addr.version == 6 else "127.0.0.1")
    return f"http://[{addr}]:{port}" if addr.version == 6 else f"http://{addr}:{port}"


def url_from_config(path: Path | None) -> str:
    """The status API the agent configured by `path` (None: the default) serves."""
    from gossipha.config.load import load_observe, resolve_path

    try:
        observe = load_observe(resolve_path(path))
    except ConfigError as exc:
        for error in exc.each():
            click.echo(
                f"gossipha: error: {error.render()} (read to find the agent's status API; "
                "give --config PATH or --url URL)",
                err=True,
            )
        sys.exit(EXIT_CONFIG)
    return agent_url(observe.listen_address, observe.listen_port)


def fetch_status(url: str, timeout_s: float = FETCH_TIMEOUT_S) -> dict[str, Any]:
    """GET {url}/status; RuntimeError with a readable message on any failure."""
    target = url.rstrip("/") + "/status"
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as resp:
            doc = orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{target}: HTTP {exc.code} (agent starting?)") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeError(
            f"cannot reach the agent at {target} ({reason}); is it running?"
        ) from exc
    except orjson.JSONDecodeError as exc:
        raise RuntimeError(f"{target}: not a gossipha status document") from exc
    if not isinstance(doc, dict):
        raise RuntimeError(f"{target}: not a gossipha status document")
    return doc


_socket_opt = click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_SOCKET,
    show_default=True,
    help="The agent's admin socket (observe.admin_socket).",
)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the /status document as JSON.")
@click.option("--watch", is_flag=True, help="Refresh until interrupted.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option(
    "--url",
    help="The agent's status API, e.g. http://127.0.0.1:9694 [default: from --config].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="The agent's /etc/ha.d or gossipha.toml, to find its status API ([observe] listen) "
    f"{DEFAULT_HELP}, as for `gossipha agent`.",
)
def status(
    as_json: bool, watch: bool, interval: float, url: str | None, config_path: Path | None
) -> None:
    """Show the cluster at a glance: nodes, links, phi, groups, holders, recent events."""
    if url is not None and config_path is not None:
        raise click.UsageError("give --url or --config, not both")
    if url is None:
        url = url_from_config(config_path)
    while True:
        try:
            doc = fetch_status(url)
        except RuntimeError as exc:
            if not watch:
                _fail(str(exc))
            click.echo(f"gossipha: {exc}", err=True)
        else:
            if as_json:
                text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
            else:
                text = render_text(doc)
            if watch and not as_json:
                click.clear()
            click.echo(text, nl=False)
        if not watch:
            return
        try:
            time.sleep(max(interval, 0.1))
        except KeyboardInterrupt:
            return


def _send(socket_path: Path, kind: AdminKind) -> None:
    try:
        reply = asyncio.run(send_admin(socket_path, kind))
    except AdminError as exc:
        _fail(str(exc))
    if not reply.ok:
        _fail(f"agent refused {kind.value}: {reply.detail}")
    click.echo(reply.detail or f"{kind.value}: ok")


@click.command()
@_socket_opt
def standby(socket_path: Path) -> None:
    """Give up every group here and stay ineligible (Heartbeat's hb_standby)."""
    _send(socket_path, AdminKind.STANDBY)


@click.command()
@_socket_opt
def takeover(socket_path: Path) -> None:
    """Become the preferred holder of every group (Heartbeat's hb_takeover)."""
    _send(socket_path, AdminKind.TAKEOVER)


@click.command()
@click.argument("state", type=click.Choice(["on", "off"]))
@_socket_opt
def maintenance(state: str, socket_path: Path) -> None:
    """Cluster-wide watch-only mode: nobody claims or hands over groups while on."""
    _send(socket_path, AdminKind.MAINTENANCE_ON if state == "on" else AdminKind.MAINTENANCE_OFF)


COMMANDS = (status, standby, takeover, maintenance)


def register(group: click.Group) -> None:
    """Add the observe commands to the `gossipha` group (one line in cli.py)."""
    for command in COMMANDS:
        group.add_command(command)
