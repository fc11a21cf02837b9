"""The `gossipha` command: parse arguments, load configuration, hand over to the parts.

Configuration errors print one line each (file:line: message), every error found, and
exit with status 78 (EXIT_CONFIG); usage errors exit 2 (click's), failures at run time 1.
docs/operations.md lists them. With no configuration path a command looks where
config/load.py's resolve_path says (docs/configuration.md).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import click
import orjson

from gossipha import __version__
from gossipha.config.errors import EXIT_CONFIG, ConfigError, ConfigWarning
from gossipha.config.load import DEFAULT_HELP, Loaded, load, local_node_name, resolve_path
from gossipha.config.numbers import is_digits
from gossipha.observe.commands import register as register_observe
from gossipha.runtime.agent import AgentOptions
from gossipha.runtime.commands import register as register_runtime
from gossipha.runtime.host_checks import Finding, Severity, check_host, has_errors
from gossipha.runtime.logs import LEVELS


def _config_failure(exc: ConfigError) -> NoReturn:
    _print_errors(exc)
    sys.exit(EXIT_CONFIG)


def _print_errors(exc: ConfigError) -> None:
    for error in exc.each():
        click.echo(f"gossipha: error: {error.render()}", err=True)


def _resolve(path: Path | None) -> Path:
    """The configuration path to read (the default rule when none is given)."""
    try:
        return resolve_path(path)
    except ConfigError as exc:
        _config_failure(exc)


def _print_warnings(warnings: tuple[ConfigWarning, ...]) -> None:
    for warning in warnings:
        click.echo(f"gossipha: {warning.render()}", err=True)


def _load(path: Path | None, node_name: str | None, allow_unauthenticated: bool) -> Loaded:
    path = _resolve(path)
    try:
        loaded = load(path, node_name, allow_unauthenticated=allow_unauthenticated)
    except ConfigError as exc:
        _config_failure(exc)
    _print_warnings(loaded.warnings)
    return loaded


_node_name = click.option(
    "--node-name",
    metavar="NAME",
    help="This node's name among the configured nodes (default: uname -n).",
)
_allow_unauth = click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="Accept `crc` (no authentication) in authkeys: anyone on the wire can forge heartbeats.",
)


def _parse_listen(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[str, int] | None:
    """HOST:PORT (IPv6 as [ADDR]:PORT) for --listen."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not is_digits(port) or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


class _Main(click.Group):
    """The command group; `demo` and `sim` are imported only when asked for.

    The lab (`demo`) imports pyroute2 and the simulator its harness: about a megabyte and
    more of an agent's resident memory that `gossipha agent` never uses.
    """

    LAZY: ClassVar[dict[str, tuple[str, str]]] = {
        "demo": ("gossipha.lab.demo", "demo"),
        "sim": ("gossipha.sim.command", "sim"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            module, attr = self.LAZY[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gossipha")
def main() -> None:
    """gossipha: a high-availability agent for a floating IP and its services."""


@main.command("check-config")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@_node_name
@_allow_unauth
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the effective configuration as JSON, with `errors`: each error's file, "
    "line, code and message (docs/configuration.md lists the codes).",
)
@click.option(
    "--host-checks/--no-host-checks",
    default=None,
    help="Also check this host, as `keepalived -t` does: the interfaces named exist, each "
    "VIP has a subnet to go on, the UDP port can be bound, scripts and hooks are "
    "executable. --no-host-checks: check the files only, not this host. "
    "[default: on when the node checked is this host: no --node-name, or uname -n]",
)
def check_config(
    path: Path | None,
    node_name: str | None,
    allow_unauthenticated: bool,
    as_json: bool,
    host_checks: bool | None,
) -> None:
    """Validate PATH (/etc/ha.d or gossipha.toml) and print the effective configuration.

    Every error of every file is reported in one run, each as file:line: message. Exits 78
    on an error in the files or, with host checks, on this host. Never writes anything.

    \b
    PATH [default: /etc/gossipha/gossipha.toml if present, else /etc/ha.d;
    a directory holding gossipha.toml and no ha.cf means that file]
    """
    from gossipha.config.render import as_dict, as_text

    try:
        loaded = load(resolve_path(path), node_name, allow_unauthenticated=allow_unauthenticated)
    except ConfigError as exc:
        _print_errors(exc)
        if as_json:
            # The same keys as a good file's document has beside the configuration.
            failed = {
                "errors": [e.as_dict() for e in exc.each()],
                "host_checks_ran": False,
                "host_checks": [],
            }
            click.echo(orjson.dumps(failed, option=orjson.OPT_INDENT_2).decode())
        sys.exit(EXIT_CONFIG)
    _print_warnings(loaded.warnings)
    findings = _host_findings(loaded, node_name, host_checks)
    if as_json:
        doc = as_dict(loaded.config)
        doc["errors"] = []
        doc["host_checks_ran"] = findings is not None
        doc["host_checks"] = [f.as_dict() for f in findings or ()]
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(as_text(loaded.config))
    if findings and has_errors(findings):
        sys.exit(EXIT_CONFIG)


def _host_findings(
    loaded: Loaded, node_name: str | None, wanted: bool | None
) -> list[Finding] | None:
    """Run the host checks (None: not run), printing each finding as config errors are.

    By default they run only when the node checked is this host: the same files are
    checked for every node, from a workstation or the lab's root namespace, and this
    host's interfaces say nothing about another node's.
    """
    this_host = local_node_name()
    if wanted is None:
        wanted = node_name is None or node_name.lower() == this_host.lower()
        if not wanted:
            click.echo(
                f"gossipha: note: host checks skipped: node {node_name!r} is not this host "
                f"({this_host!r}); --host-checks runs them here",
                err=True,
            )
    if not wanted:
        return None
    findings = check_host(loaded.config, loaded.locations)
    for finding in findings:
        tag = "error: " if finding.severity is Severity.ERROR else ""
        click.echo(f"gossipha: {tag}{finding.render()}", err=True)
    return findings


@main.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@_node_name
@_allow_unauth
def migrate(path: Path | None, node_name: str | None, allow_unauthenticated: bool) -> None:
    """Write the gossipha.toml equivalent to the configuration at PATH to stdout.

    \b
    PATH [default: /etc/gossipha/gossipha.toml if present, else /etc/ha.d;
    a directory holding gossipha.toml and no ha.cf means that file]
    """
    from gossipha.config.migrate import config_to_toml

    loaded = _load(path, node_name, allow_unauthenticated)
    click.echo(config_to_toml(loaded.config), nl=False)


@main.command()
@click.option(
    "--output",
    "-o",
    # A str, not a Path: Path("./-") is Path("-"), and `./-` must stay a file named -.
    type=click.Path(allow_dash=True),
    default="authkeys",
    show_default=True,
    help="File to create (mode 600); an existing file is never overwritten. "
    "`-` writes the key file to stdout.",
)
def keygen(output: str) -> None:
    """Create a new authkeys file with a random sha256 key (copy it to every node)."""
    from gossipha.config.authkeys import new_keyfile_text, write_new_keyfile

    if output == "-":
        click.echo(new_keyfile_text(), nl=False)
        return
    try:
        write_new_keyfile(Path(output))
    except FileExistsError:
        click.echo(f"gossipha: error: {output}: already exists; not overwriting keys", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"gossipha: error: {output}: {exc.strerror}", err=True)
        sys.exit(1)
    click.echo(f"wrote {output} (sha256, mode 600); copy it to every node")


def _runtime_options(command: Callable[..., None]) -> Callable[..., None]:
    """Options shared by `agent` and `witness`: one process runtime, two roles."""
    options = [
        _node_name,
        _allow_unauth,
        click.option(
            "--state-dir",
            type=click.Path(path_type=Path),
            envvar="GOSSIPHA_STATE_DIR",
            default=Path("/var/lib/gossipha"),
            show_default=True,
            help="Where the incarnation number is kept across restarts (env GOSSIPHA_STATE_DIR).",
        ),
        click.option(
            "--shutdown-timeout",
            "shutdown_timeout_s",
            type=float,
            default=30.0,
            show_default=True,
            help="Seconds a graceful stop may take before resources are stopped anyway.",
        ),
        click.option("--no-mlock", is_flag=True, help="Do not lock memory (mlockall)."),
        click.option(
            "--log-level",
            type=click.Choice(list(LEVELS), case_sensitive=False),
            envvar="GOSSIPHA_LOG_LEVEL",
            help="Log this level and up, wherever the configuration sends logs "
            "[default: info, or debug with the configuration's debug] (env GOSSIPHA_LOG_LEVEL).",
        ),
        click.option(
            "--listen",
            metavar="HOST:PORT",
            callback=_parse_listen,
            help="Serve /metrics, /status, /healthz here instead of observe.listen.",
        ),
        click.option(
            "--admin-socket",
            type=click.Path(path_type=Path),
            help="Admin socket for standby/takeover/maintenance instead of observe.admin_socket.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _run(loaded: Loaded, options: AgentOptions) -> NoReturn:
    """Run the runtime until it exits; the one metrics registry is built here (no global)."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from gossipha.runtime.agent import run_agent
    from gossipha.runtime.observe_glue import metrics_for
    from gossipha.runtime.witness import witness_config

    registry = CollectorRegistry()
    config = witness_config(loaded.config) if options.witness else loaded.config
    metrics = metrics_for(config, registry)
    sys.exit(asyncio.run(run_agent(loaded, options, registry=registry, metrics=metrics)))


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help=f"/etc/ha.d (Heartbeat's files, as they are) or a gossipha.toml {DEFAULT_HELP}.",
)
@_runtime_options
def agent(
    config_path: Path | None, node_name: str | None, allow_unauthenticated: bool, **kw: Any
) -> None:
    """Run the cluster agent on this node until SIGTERM (SIGHUP reloads keys and logging)."""
    config_path = _resolve(config_path)
    loaded = _load(config_path, node_name, allow_unauthenticated)
    _run(loaded, _agent_options(config_path, node_name, allow_unauthenticated, kw, witness=False))


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help=f"The cluster's gossipha.toml (the same file as on the members) {DEFAULT_HELP}.",
)
@_runtime_options
def witness(
    config_path: Path | None, node_name: str | None, allow_unauthenticated: bool, **kw: Any
) -> None:
    """Run this node as a witness until SIGTERM: it votes on leases and holds nothing
    (no VIP, services, ping nodes or health checks). SIGHUP reloads keys and logging."""
    from gossipha.runtime.witness import load_witness

    config_path = _resolve(config_path)
    try:
        loaded = load_witness(config_path, node_name, allow_unauthenticated=allow_unauthenticated)
    except ConfigError as exc:
        _config_failure(exc)
    _print_warnings(loaded.warnings)
    _run(loaded, _agent_options(config_path, node_name, allow_unauthenticated, kw, witness=True))


def _agent_options(
    config_path: Path,
    node_name: str | None,
    allow_unauthenticated: bool,
    kw: dict[str, Any],
    *,
    witness: bool,
) -> AgentOptions:
    return AgentOptions(
        config_path=config_path,
        node_name=node_name,
        allow_unauthenticated=allow_unauthenticated,
        state_dir=kw["state_dir"],
        shutdown_timeout_s=kw["shutdown_timeout_s"],
        mlock=not kw["no_mlock"],
        listen=kw["listen"],
        admin_socket=kw["admin_socket"],
        witness=witness,
        log_level=None if kw["log_level"] is None else LEVELS[kw["log_level"].lower()],
    )


register_observe(main)
register_runtime(main)
