"""gossipha(8), written from the click command tree, so the manual page says what `--help`
says: every command, argument and option, with the same help texts and defaults.

Run at package build time (debian/rules): `python -m gossipha.manpage > gossipha.8`. The
date comes from SOURCE_DATE_EPOCH when set (dpkg-buildpackage sets it from
debian/changelog), so the same sources give the same page.
"""

from __future__ import annotations

import inspect
import os
import sys
import time

import click

from gossipha import __version__
from gossipha.config.errors import EXIT_CONFIG
from gossipha.config.load import DEFAULT_SEARCH

NATIVE_PATH, HEARTBEAT_DIR = DEFAULT_SEARCH

DOC_DIR = "/usr/share/doc/gossipha"


def escape(text: str) -> str:
    """Text as roff prints it: backslashes and hyphens literal, no line read as a request."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in out.splitlines()
    )


def paragraphs(help_text: str) -> list[str]:
    """click's help text as paragraphs: lines rejoined, as `--help` rewraps them, except a
    paragraph after click's \\b marker, which keeps its lines."""
    out: list[str] = []
    for block in inspect.cleandoc(help_text).split("\n\n"):
        lines = block.strip("\n").splitlines()
        if lines and lines[0].strip() == "\b":
            out.append("\n.br\n".join(escape(line) for line in lines[1:]))
        elif lines:
            out.append(escape(" ".join(line.strip() for line in lines)))
    return out


def _options(ctx: click.Context, command: click.Command) -> list[str]:
    """One tagged paragraph per option, as click's help record shows it (with defaults)."""
    roff: list[str] = []
    for param in command.get_params(ctx):
        if isinstance(param, click.Argument):
            continue  # listed under the command's usage line, with their choices
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        roff += [".TP", f"\\fB{escape(names)}\\fR"]
        roff.append(escape(" ".join(help_text.split())) if help_text else "")
    return roff


def _command(parent: click.Context, name: str, command: click.Command) -> list[str]:
    ctx = click.Context(command, info_name=name, parent=parent)
    usage = " ".join(command.collect_usage_pieces(ctx))
    roff = [f'.SS "{escape(ctx.command_path)} {escape(usage)}"']
    for paragraph in paragraphs(command.help or ""):
        roff += [".PP", paragraph]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    for argument in arguments:
        metavar = argument.human_readable_name
        choices = getattr(argument.type, "choices", None)
        if choices:
            roff += [".TP", f"\\fI{escape(metavar)}\\fR", "one of: " + escape(", ".join(choices))]
    options = _options(ctx, command)
    if options:
        roff += [".PP", "Options:", ".RS", *options, ".RE"]
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            subcommand = command.get_command(ctx, sub)
            if subcommand is not None and not subcommand.hidden:
                roff += _command(ctx, sub, subcommand)
    return roff


def render(group: click.Group, *, date: str, doc_dir: str = DOC_DIR) -> str:
    """The whole page, section 8 (a system daemon and its administration commands)."""
    ctx = click.Context(group, info_name="gossipha", **group.context_settings)
    summary, *rest = paragraphs(group.help or "gossipha")
    name_line = summary.removeprefix("gossipha: ").removesuffix(".")
    roff = [
        f'.TH GOSSIPHA 8 "{date}" "gossipha {escape(__version__)}" "System Administration"',
        ".SH NAME",
        f"gossipha \\- {name_line}",
        ".SH SYNOPSIS",
        ".B gossipha",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        ".PP",
        "gossipha replaces Linux\\-HA Heartbeat: nodes exchange signed gossip heartbeats, detect"
        " failure with phi\\-accrual, and elect the one node that holds the floating IP and runs"
        " its services with a quorum lease. It reads Heartbeat's",
        f"\\fI{escape(str(HEARTBEAT_DIR))}\\fR (ha.cf, authkeys, haresources) as it is, or a"
        " native gossipha.toml. With no path, a command reads"
        f" \\fI{escape(str(NATIVE_PATH))}\\fR if present, else"
        f" \\fI{escape(str(HEARTBEAT_DIR))}\\fR.",
    ]
    for paragraph in rest:
        roff += [".PP", paragraph]
    roff += [".SH OPTIONS", *_options(ctx, group), ".SH COMMANDS"]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            roff += _command(ctx, name, command)
    roff += [
        ".SH EXIT STATUS",
        ".TP",
        "0",
        "Success.",
        ".TP",
        "1",
        "A failure at run time.",
        ".TP",
        "2",
        "A usage error (an unknown command or option, a bad value).",
        ".TP",
        str(EXIT_CONFIG),
        "An error in the configuration files or, with host checks, on this host"
        " (EX_CONFIG); the message names file and line. systemd does not restart the agent"
        " after it.",
        ".SH FILES",
        ".TP",
        f"\\fI{escape(str(HEARTBEAT_DIR))}\\fR",
        "Heartbeat's configuration: ha.cf, authkeys (mode 600), haresources, resource.d.",
        ".TP",
        f"\\fI{escape(str(NATIVE_PATH))}\\fR",
        "The native configuration (gossipha migrate writes it from /etc/ha.d); read first when"
        " no path is given.",
        ".TP",
        "\\fI/var/lib/gossipha\\fR",
        "State kept across restarts (the incarnation number).",
        ".TP",
        f"\\fI{escape(doc_dir)}\\fR",
        "The manual (README.md, quickstart.md, ...) and examples, among them the tutorial's"
        " /etc/ha.d for two nodes.",
        ".SH SEE ALSO",
        "\\fBsystemctl\\fR(1) (the unit is gossipha.service),",
        f"\\fI{escape(doc_dir)}/README.md\\fR",
    ]
    return "\n".join(roff) + "\n"


def build_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return time.strftime("%Y-%m-%d", time.gmtime(int(epoch) if epoch else None))


def main() -> None:
    from gossipha.cli import main as cli

    assert isinstance(cli, click.Group)
    sys.stdout.write(render(cli, date=build_date()))


if __name__ == "__main__":
    main()
