"""What `check-config` checks on this host, as `keepalived -t` does, beyond the files.

validate.py judges the files alone. These checks need the machine the agent will run on:
every interface the configuration names exists; each VIP can be placed by the agent's own
rule (resources/vip.plan_placement, Heartbeat's findif); each link's UDP port can be bound
as the agent binds it (runtime/links.bind_socket, then closed: nothing is sent); and the
scripts, programs, hooks and users the agent will run exist. Every finding names the file
and line where the configuration names the thing. Only `check-config` runs them: a
configuration is checked from other hosts too (a workstation, the lab's root namespace).
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import os
import pwd
import shutil
import socket
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from gossipha.config.model import Config, Link, ServiceKind, ServiceResource, VipResource
from gossipha.config.services import SYSTEMD_DIRS
from gossipha.config.validate import Locations, where
from gossipha.resources.vip import VipError, configured_addresses, find_interface, plan_placement
from gossipha.runtime.links import LinkError, bind_socket

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class Severity(enum.Enum):
    """An error stops the agent on this host (exit 78); a warning may be fine, or not yet."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One host check result; `code` is stable for scripts (`check-config --json`)."""

    code: str
    severity: Severity
    path: Path
    line: int | None
    message: str

    def render(self) -> str:
        """`file:line: message` (errors), `file:line: warning: message`, as config errors."""
        place = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        tag = "warning: " if self.severity is Severity.WARNING else ""
        return f"{place}: {tag}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "file": str(self.path),
            "line": self.line,
            "message": self.message,
            "severity": self.severity.value,
        }


@dataclass(frozen=True, slots=True)
class HostView:
    """This host's network as the agent would find it (read once, in this namespace)."""

    interfaces: Mapping[str, int]  # index by name
    addresses: tuple[tuple[str, IPInterface], ...]


def read_host() -> HostView:
    """The interfaces (socket.if_nameindex) and addresses (rtnetlink) of this host."""
    indexes = {name: index for index, name in socket.if_nameindex()}
    return HostView(MappingProxyType(indexes), tuple(configured_addresses()))


class _Report:
    """Collects findings, each placed at the file and line of a location key."""

    def __init__(self, config: Config, locations: Locations) -> None:
        self.config = config
        self.locations = locations
        self.findings: list[Finding] = []

    def add(self, severity: Severity, code: str, key: str, message: str) -> None:
        path, line = where(self.config, self.locations, key)
        self.findings.append(Finding(code, severity, path, line, message))

    def error(self, code: str, key: str, message: str) -> None:
        self.add(Severity.ERROR, code, key, message)

    def warn(self, code: str, key: str, message: str) -> None:
        self.add(Severity.WARNING, code, key, message)


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)


def check_host(config: Config, locations: Locations, view: HostView | None = None) -> list[Finding]:
    """Every host finding for `config`: interfaces, VIPs, ports, then what the agent runs
    (`view`: this host as read now unless given)."""
    report = _Report(config, locations)
    host = read_host() if view is None else view
    _interfaces(report, host)
    _vips(report, host)
    _ports(report, host)
    _services(report)
    _respawns(report)
    _hooks(report)
    return report.findings


# ---------------------------------------------------------------- network


def _missing_interface(host: HostView, name: str, what: str) -> str:
    known = ", ".join(sorted(host.interfaces)) or "none"
    return f"{what}: interface {name!r} does not exist on this host; expected one of: {known}"


def _vips_with_keys(config: Config) -> Iterator[tuple[str, VipResource]]:
    for group in config.groups:
        for index, resource in enumerate(group.resources):
            if isinstance(resource, VipResource):
                yield f"resource:{group.name}:{index}", resource


def _interfaces(report: _Report, host: HostView) -> None:
    for link in report.config.links:
        if link.interface not in host.interfaces:
            report.error(
                "interface-missing",
                f"link:{link.name}:interface",
                _missing_interface(host, link.interface, f"link {link.name}"),
            )
    for ping in report.config.ping_groups:
        if ping.interface is not None and ping.interface not in host.interfaces:
            report.error(
                "interface-missing",
                f"ping:{ping.name}:interface",
                _missing_interface(host, ping.interface, f"ping {ping.name}"),
            )
    for key, vip in _vips_with_keys(report.config):
        if vip.interface is not None and vip.interface not in host.interfaces:
            report.error(
                "interface-missing",
                key,
                _missing_interface(host, vip.interface, f"VIP {vip.address}"),
            )


def _vips(report: _Report, host: HostView) -> None:
    """Place each VIP as the agent will; a named interface whose subnets miss it is warned."""
    for key, vip in _vips_with_keys(report.config):
        if vip.interface is not None and vip.interface not in host.interfaces:
            continue  # reported by _interfaces
        try:
            placement = plan_placement(vip, host.addresses, host.interfaces.get)
        except VipError as exc:
            report.error(
                "vip-unplaceable",
                key,
                f"{exc}; expected an address of this host in the VIP's subnet, "
                "or the prefix and interface written out (IP/PREFIX/INTERFACE)",
            )
            continue
        if vip.interface is None:
            continue
        own = [(name, iface) for name, iface in host.addresses if name == vip.interface]
        if find_interface(vip.address, own) is not None:
            continue
        elsewhere = find_interface(vip.address, host.addresses)
        hint = f" ({elsewhere[0]} has that subnet)" if elsewhere is not None else ""
        report.warn(
            "vip-subnet-not-on-interface",
            key,
            f"VIP {vip.address}/{placement.prefix} on {vip.interface}: no address of "
            f"{vip.interface} is in its subnet{hint}; the agent adds it there anyway, "
            "and hosts on that network reach it only through a route",
        )


def _ports(report: _Report, host: HostView) -> None:
    """Bind each link's port as the agent does, then close it; nothing is sent.

    The agent's own sockets use SO_REUSEADDR, so a running agent never makes this bind
    fail: "address in use" means another program holds the port (Heartbeat, during a
    migration), which is a warning since it may be stopped before the agent starts.
    """
    for link in report.config.links:
        if link.interface not in host.interfaces:
            continue  # reported by _interfaces
        key = f"link:{link.name}:port"
        try:
            bind_socket(link, unbound_ok=False).close()
        except LinkError:
            continue  # the interface went away since it was listed
        except OSError as exc:
            _port_failure(report, key, link, exc)


def _port_failure(report: _Report, key: str, link: Link, exc: OSError) -> None:
    where_to = f"UDP port {link.port} on {link.interface} (link {link.name})"
    if exc.errno == errno.EADDRINUSE:
        report.warn(
            "port-in-use",
            key,
            f"{where_to} is held by another program (Heartbeat still running?); "
            "the agent cannot open this link until that program stops",
        )
    elif exc.errno in (errno.EACCES, errno.EPERM):
        report.warn(
            "port-not-checked",
            key,
            f"{where_to}: cannot bind as this user ({exc.strerror}); the agent needs root, "
            "or CAP_NET_BIND_SERVICE and CAP_NET_RAW; run check-config as the agent runs",
        )
    else:
        report.error("port-unusable", key, f"{where_to}: cannot bind: {exc.strerror or exc}")


# ---------------------------------------------------------------- what the agent runs


def _executable(report: _Report, code: str, key: str, what: str, path: Path) -> None:
    """`path` must be a file the agent can run directly (it is exec'd, not sourced)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        report.error(
            f"{code}-missing",
            key,
            f"{what}: {path} does not exist ({exc.strerror}); expected an executable there",
        )
        return
    if not stat.S_ISREG(mode):
        report.error(f"{code}-missing", key, f"{what}: {path} is not a file; expected a program")
    elif not os.access(path, os.X_OK):
        report.error(
            f"{code}-not-executable",
            key,
            f"{what}: {path} is not executable (mode {stat.S_IMODE(mode):04o}); "
            "expected chmod +x: the agent runs it directly",
        )


def _program(report: _Report, code: str, key: str, what: str, argv: Sequence[str]) -> None:
    """A command line's program: a path must be executable; a bare name is looked up on
    PATH (a warning only: the agent's PATH may differ from this shell's)."""
    if not argv:
        return
    program = argv[0]
    if "/" in program:
        _executable(report, code, key, what, Path(program))
    elif shutil.which(program) is None:
        report.warn(
            f"{code}-not-on-path",
            key,
            f"{what}: {program!r} is not on this PATH ({os.environ.get('PATH', '')}); "
            "expected a full path, or the program installed",
        )


def _services(report: _Report) -> None:
    for group in report.config.groups:
        for index, resource in enumerate(group.resources):
            if isinstance(resource, ServiceResource):
                _service(report, f"resource:{group.name}:{index}", resource)
        for index, check in enumerate(group.health_checks):
            key = f"check:{group.name}:{index}"
            _program(report, "command", key, f"health check {check.name}", check.command)


def _service(report: _Report, key: str, service: ServiceResource) -> None:
    what = f"service {service.name}"
    if service.kind in (ServiceKind.RESOURCE_D, ServiceKind.LSB, ServiceKind.OCF):
        if service.path is not None:
            _executable(report, "script", key, what, service.path)
    elif service.kind is ServiceKind.SYSTEMD:
        unit = service.unit or f"{service.name}.service"
        if not any((directory / unit).is_file() for directory in SYSTEMD_DIRS):
            looked = ", ".join(str(d) for d in SYSTEMD_DIRS)
            report.warn(
                "unit-missing",
                key,
                f"{what}: systemd unit {unit} is not in {looked}; "
                "expected it installed (a unit made by a generator is not seen here)",
            )
    else:
        for action, argv in (
            ("start", service.start),
            ("stop", service.stop),
            ("status", service.status),
        ):
            _program(report, "command", key, f"{what} {action}", argv)


def _respawns(report: _Report) -> None:
    for index, respawn in enumerate(report.config.respawns):
        key = f"respawn:{index}"
        _program(report, "program", key, "respawn", respawn.command)
        try:
            pwd.getpwnam(respawn.user)
        except KeyError:
            report.error(
                "user-missing",
                f"{key}:user",
                f"respawn: user {respawn.user!r} does not exist on this host; "
                "expected an account to run the program as",
            )


def _hooks(report: _Report) -> None:
    for index, hook in enumerate(report.config.observe.hooks):
        _executable(report, "hook", f"hook:{index}", "hook", hook.path)
