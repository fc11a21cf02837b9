"""Heartbeat's ha.cf, read the way Heartbeat reads it, into pieces of gossipha's model.

Heartbeat's parser (heartbeat/config.c, parse_config) is the reference:
- `#` anywhere on a line starts a comment; there is no line continuation in ha.cf;
- directive names are case-sensitive (`Keepalive` is an illegal directive there too);
- values are whitespace-separated; `node` may list several names on one line;
- node names are lower-cased (add_node: g_strdown), so they match `uname -n` in any case;
- a repeated single-valued directive replaces the earlier value (we warn about it).
Defaults are Heartbeat's (init_config): keepalive 1s, deadtime 30s, warntime deadtime/2,
initdead = deadtime if deadtime > 10s, else 12s if deadtime < 6s, else 2 x deadtime;
deadping = deadtime; udpport 694. Cross-field rules live in validate.py, not here.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Final, NoReturn

from gossipha.config.durations import parse_duration
from gossipha.config.errors import Collector, ConfigError, ConfigWarning
from gossipha.config.model import (
    DEFAULT_PORT,
    IPAddress,
    Link,
    LinkKind,
    Logging,
    Node,
    PingGroup,
    Respawn,
    Timings,
)
from gossipha.config.numbers import is_digits
from gossipha.config.text import ConfigText, hash_anywhere, read, words

Where = tuple[Path, int | None]

# Heartbeat's defaults (init_config in heartbeat/config.c), in seconds.
DEFAULT_KEEPALIVE_S: Final = 1.0
DEFAULT_DEADTIME_S: Final = 30.0
DEFAULT_CLUSTER_NAME: Final = "heartbeat"

# cl_str_to_boolean (clplumbing/cl_misc.c) accepts these, case-insensitively.
_TRUE: Final = frozenset({"true", "on", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "off", "no", "n", "0"})

_FACILITIES: Final = frozenset(
    {
        "auth",
        "authpriv",
        "cron",
        "daemon",
        "ftp",
        "kern",
        "lpr",
        "mail",
        "news",
        "syslog",
        "user",
        "uucp",
        *(f"local{n}" for n in range(8)),
    }
)
# Linux interface names: at most 15 bytes, no slash, colon or whitespace.
_IFACE: Final = re.compile(r"^[^\s/:]{1,15}$")


@dataclass(frozen=True, slots=True)
class HaCf:
    """What ha.cf says, resolved to model values, with where each item was written."""

    cluster_name: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    ping_groups: tuple[PingGroup, ...]
    timings: Timings
    auto_failback: bool
    ping_failover: bool
    respawns: tuple[Respawn, ...]
    logging: Logging
    locations: Mapping[str, Where]
    warnings: tuple[ConfigWarning, ...]


@dataclass(frozen=True, slots=True)
class _Line:
    """One directive line; `fail` raises a ConfigError that names this file and line."""

    path: Path
    number: int
    directive: str
    args: tuple[str, ...]

    def fail(self, message: str, code: str = "bad-value") -> NoReturn:
        raise ConfigError(self.path, self.number, f"{self.directive}: {message}", code)

    def one(self, expected: str) -> str:
        """The single value of a one-value directive; anything else is an error."""
        if len(self.args) != 1:
            found = " ".join(self.args) if self.args else "nothing"
            self.fail(f"found {found!r}; expected one value: {expected}", "syntax")
        return self.args[0]

    def at_least(self, count: int, usage: str) -> None:
        if len(self.args) < count:
            found = " ".join(self.args) if self.args else "nothing"
            self.fail(f"found {found!r}; expected `{self.directive} {usage}`", "syntax")


@dataclass(slots=True)
class _State:
    """Everything gathered while reading lines; turned into a HaCf at the end."""

    path: Path
    warnings: list[ConfigWarning] = field(default_factory=list)
    single: dict[str, int] = field(default_factory=dict)  # directive -> line, for repeats
    durations: dict[str, tuple[float, int]] = field(default_factory=dict)
    udpport: tuple[int, int] | None = None
    nodes: dict[str, int] = field(default_factory=dict)
    # Peers per interface in file order, with the line each was on; a dict, so a repeat
    # is found by hashing (a scan of the list made 20,000 ucast lines take 12 s).
    ucast: dict[str, dict[IPAddress, int]] = field(default_factory=dict)
    bcast: dict[str, int] = field(default_factory=dict)
    mcast: list[tuple[Link, int]] = field(default_factory=list)
    link_order: list[tuple[LinkKind, str, int]] = field(default_factory=list)
    pings: dict[str, tuple[PingGroup, int]] = field(default_factory=dict)
    respawns: list[Respawn] = field(default_factory=list)
    respawn_lines: list[int] = field(default_factory=list)
    ipfail_line: int | None = None
    auto_failback: bool | None = None
    cluster_name: str | None = None
    logfile: Path | None = None
    debugfile: Path | None = None
    facility: str | None = None
    debug: int = 0

    def warn(self, line: int | None, message: str) -> None:
        self.warnings.append(ConfigWarning(self.path, line, message))

    def once(self, line: _Line, key: str | None = None) -> None:
        """Note a single-valued directive; a repeat replaces the earlier value, as in Heartbeat."""
        key = key or line.directive
        if key in self.single:
            self.warn(
                line.number,
                f"{line.directive} repeats line {self.single[key]}; this later value is used",
            )
        self.single[key] = line.number


_Handler = Callable[[_State, _Line], None]


def parse_hacf(text: str | ConfigText, path: Path) -> HaCf:
    """Read ha.cf text; ConfigErrors lists every bad line (file:line, code), in file order.

    A bad line is skipped and the rest still read, so one run reports them all.
    """
    lines = text.lines if isinstance(text, ConfigText) else tuple(text.split("\n"))
    errors = Collector()
    for error in text.errors if isinstance(text, ConfigText) else ():
        errors.add(error)
    state = _State(path)
    for number, raw in enumerate(lines, start=1):
        found = words(raw.split("#", 1)[0])
        if not found:
            continue
        line = _Line(path, number, found[0], tuple(found[1:]))
        with errors.attempt():
            handler = _HANDLERS.get(line.directive)
            if handler is None:
                _unknown(line)
            handler(state, line)
    errors.errors.sort(key=lambda e: e.line or 0)
    errors.raise_if_any()
    return _finish(state)


def read_hacf(path: Path) -> HaCf:
    """Read the ha.cf file at `path`; a missing file is a ConfigError naming it."""
    return parse_hacf(read_hacf_text(path), path)


def read_hacf_text(path: Path) -> ConfigText:
    """ha.cf's lines by the shared rule (config/text.py); `#` anywhere starts a comment."""
    return read(path, "Heartbeat's ha.cf", hash_anywhere)


# ---------------------------------------------------------------- timings and ports


def _duration(state: _State, line: _Line) -> None:
    text = line.one("a duration like 2, 2s or 500ms")
    try:
        value = parse_duration(text)
    except ValueError as exc:
        line.fail(str(exc), "bad-duration")
    state.once(line)
    state.durations[line.directive] = (value, line.number)


def _udpport(state: _State, line: _Line) -> None:
    port = _int(line, line.one("a UDP port number"), 1, 65535, "a UDP port (1-65535)")
    state.once(line)
    state.udpport = (port, line.number)


def _int(line: _Line, text: str, low: int, high: int, expected: str) -> int:
    if not is_digits(text) or not low <= int(text) <= high:
        line.fail(f"found {text!r}; expected {expected}", "bad-number")
    return int(text)


def _bool(line: _Line, text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    line.fail(f"found {text!r}; expected on or off (also yes/no, true/false, 1/0)")


# ---------------------------------------------------------------- nodes and links


def _node(state: _State, line: _Line) -> None:
    line.at_least(1, "NAME...")
    for word in line.args:
        name = word.lower()  # Heartbeat's add_node lower-cases node names
        if name in state.nodes:
            line.fail(f"node {name!r} is already listed on line {state.nodes[name]}", "duplicate")
        state.nodes[name] = line.number


def _address(line: _Line, text: str, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        line.fail(
            f"found {text!r}; expected {what} as an IP address "
            "(gossipha does not resolve host names in ha.cf)",
            "bad-address",
        )


def _interface(line: _Line, text: str) -> str:
    if not _IFACE.match(text):
        line.fail(f"found {text!r}; expected a network interface name such as eth1", "bad-address")
    return text


def _ucast(state: _State, line: _Line) -> None:
    line.at_least(2, "INTERFACE PEER-ADDRESS...")
    iface = _interface(line, line.args[0])
    if iface not in state.ucast:
        state.ucast[iface] = {}
        state.link_order.append((LinkKind.UCAST, iface, line.number))
    peers = state.ucast[iface]
    for text in line.args[1:]:
        address = _address(line, text, "the peer's address")
        if address in peers:
            state.warn(line.number, f"ucast {iface} {address} is listed twice; using it once")
            continue
        peers[address] = line.number


def _bcast(state: _State, line: _Line) -> None:
    line.at_least(1, "INTERFACE...")
    for text in line.args:
        iface = _interface(line, text)
        if iface in state.bcast:
            state.warn(line.number, f"bcast {iface} repeats line {state.bcast[iface]}; ignored")
            continue
        state.bcast[iface] = line.number
        state.link_order.append((LinkKind.BCAST, iface, line.number))


def _udp_alias(state: _State, line: _Line) -> None:
    """Heartbeat's DIRTYALIASKLUDGE: the old `udp` directive is `bcast`."""
    state.warn(line.number, "`udp` is the old name of `bcast`; read as bcast")
    _bcast(state, _Line(line.path, line.number, "bcast", line.args))


def _mcast(state: _State, line: _Line) -> None:
    if len(line.args) != 5:
        line.fail(
            f"found {' '.join(line.args) or 'nothing'!r}; "
            "expected `mcast INTERFACE GROUP PORT TTL LOOP`, e.g. mcast eth1 225.0.0.1 694 1 0",
            "syntax",
        )
    iface_text, group_text, port_text, ttl_text, loop_text = line.args
    iface = _interface(line, iface_text)
    group = _address(line, group_text, "a multicast group")
    port = _int(line, port_text, 1, 65535, "a UDP port (1-65535)")
    ttl = _int(line, ttl_text, 1, 255, "a TTL from 1 to 255")
    if loop_text not in ("0", "1"):
        line.fail(f"loop is {loop_text!r}; expected 0 or 1")
    link = Link("", LinkKind.MCAST, iface, port, group=group, ttl=ttl, loop=loop_text == "1")
    state.mcast.append((link, line.number))
    state.link_order.append((LinkKind.MCAST, iface, line.number))


def _ping(state: _State, line: _Line) -> None:
    line.at_least(1, "ADDRESS...")
    for text in line.args:
        address = _address(line, text, "a ping node")
        _add_ping(state, line, PingGroup(str(address), (address,)))


def _ping_group(state: _State, line: _Line) -> None:
    line.at_least(2, "NAME ADDRESS...")
    name = line.args[0]
    addresses = tuple(_address(line, text, "a ping node") for text in line.args[1:])
    _add_ping(state, line, PingGroup(name, addresses))


def _add_ping(state: _State, line: _Line, group: PingGroup) -> None:
    if group.name in state.pings:
        line.fail(
            f"ping node {group.name!r} is already defined on line {state.pings[group.name][1]}",
            "duplicate",
        )
    state.pings[group.name] = (group, line.number)


# ---------------------------------------------------------------- respawn, failback, logging


def _respawn(state: _State, line: _Line) -> None:
    line.at_least(1, "USER /PATH/TO/PROGRAM [ARGS...]")
    user, command = line.args[0], line.args[1:]
    if user.startswith("/"):
        line.fail(f"found {user!r} where the user goes; expected `respawn USER /PATH [ARGS...]`")
    if "/" in user and (not command or not command[0].startswith("/")):
        # The tutorial prints `respawn hacluster/usr/lib64/heartbeat/ipfail` (lost space).
        glued = user
        user, slash, path = glued.partition("/")
        command = (slash + path, *command)
        state.warn(
            line.number,
            f"read {glued!r} as user {user!r} running {command[0]!r}; "
            "put a space between the user and the program",
        )
    if not command:
        line.fail(f"no program after user {user!r}; expected `respawn USER /PATH [ARGS...]`")
    if not command[0].startswith("/"):
        line.fail(f"program {command[0]!r} is not a full path; expected it to start with /")
    if PurePosixPath(command[0]).name == "ipfail":
        # ipfail is built in: the lease core moves groups off a node that lost its ping nodes.
        state.ipfail_line = line.number
        return
    state.respawns.append(Respawn(user, tuple(command)))
    state.respawn_lines.append(line.number)


def _auto_failback(state: _State, line: _Line) -> None:
    text = line.one("on, off or legacy")
    state.once(line, "failback")
    if text.lower() == "legacy":
        state.warn(
            line.number,
            "auto_failback legacy is read as off; write `auto_failback on` if groups "
            "should return to their preferred node",
        )
        state.auto_failback = False
        return
    state.auto_failback = _bool(line, text)


def _nice_failback(state: _State, line: _Line) -> None:
    nice = _bool(line, line.one("on or off"))
    state.once(line, "failback")
    state.auto_failback = not nice
    state.warn(
        line.number,
        f"nice_failback is obsolete; read as `auto_failback {'off' if nice else 'on'}`",
    )


def _logfile(state: _State, line: _Line) -> None:
    value = Path(line.one("a file path"))
    state.once(line)
    if line.directive == "logfile":
        state.logfile = value
    else:
        state.debugfile = value


def _logfacility(state: _State, line: _Line) -> None:
    text = line.one("a syslog facility such as local0, or none")
    if text != "none" and text not in _FACILITIES:
        line.fail(f"found {text!r}; expected none or one of {', '.join(sorted(_FACILITIES))}")
    state.once(line)
    state.facility = None if text == "none" else text


def _debug(state: _State, line: _Line) -> None:
    state.debug = _int(line, line.one("a level 0-255"), 0, 255, "a debug level from 0 to 255")
    state.once(line)


def _cluster(state: _State, line: _Line) -> None:
    state.cluster_name = line.one("a cluster name")
    state.once(line)


# ------------------------------------------------ accepted with a caveat, or refused


def _crm(state: _State, line: _Line) -> None:
    text = line.one("off")
    if text.lower() in _FALSE:
        return
    line.fail(
        f"`crm {text}`: crm on means Pacemaker manages resources; gossipha runs "
        "haresources itself; expected `crm off` or no crm line",
        "unsupported",
    )


def _hopfudge(state: _State, line: _Line) -> None:
    _int(line, line.one("a number 0-255"), 0, 255, "a number from 0 to 255")
    state.warn(line.number, "hopfudge is ignored: it only mattered for serial rings")


def _serial(state: _State, line: _Line) -> None:
    line.fail(
        "serial links are not supported; use a second network link "
        "(another ucast, bcast or mcast line on a separate interface)",
        "unsupported",
    )


def _stonith(state: _State, line: _Line) -> None:
    line.fail(
        "STONITH is not supported: gossipha fences with quorum leases and probes the VIP "
        "before claiming it; remove this line",
        "unsupported",
    )


def _watchdog(state: _State, line: _Line) -> None:
    line.one("a watchdog device")
    state.warn(
        line.number,
        "watchdog is ignored: gossipha uses systemd's watchdog (WatchdogSec= in its unit)",
    )


def _autojoin(state: _State, line: _Line) -> None:
    text = line.one("none")
    if text.lower() != "none":
        line.fail(
            f"`autojoin {text}`: gossipha has a fixed member list; expected `autojoin none` "
            "and every node on a `node` line",
            "unsupported",
        )


def _use_logd(state: _State, line: _Line) -> None:
    if _bool(line, line.one("on or off")):
        state.warn(
            line.number,
            "use_logd is ignored: gossipha logs to stderr and to logfile/debugfile/logfacility",
        )


def _env(state: _State, line: _Line) -> None:
    line.at_least(1, "NAME=VALUE")
    state.warn(line.number, "env is ignored: respawned programs get no HA_ variables from it")


def _ignored(check: Callable[[_Line], object]) -> _Handler:
    """A directive about Heartbeat's internals: its value is checked, then it is ignored."""

    def handler(state: _State, line: _Line) -> None:
        check(line)

    return handler


def _one_bool(line: _Line) -> None:
    _bool(line, line.one("on or off"))


def _one_int(line: _Line) -> None:
    _int(line, line.one("a number"), 0, 1_000_000, "a whole number")


def _one_of(*choices: str) -> Callable[[_Line], None]:
    def check(line: _Line) -> None:
        text = line.one(" or ".join(choices))
        if text not in choices:
            line.fail(f"found {text!r}; expected {' or '.join(choices)}")

    return check


def _any_value(line: _Line) -> None:
    line.at_least(1, "VALUE")


def _one_duration(line: _Line) -> None:
    try:
        parse_duration(line.one("a duration"))
    except ValueError as exc:
        line.fail(str(exc), "bad-duration")


def _refuse(reason: str) -> _Handler:
    def handler(state: _State, line: _Line) -> None:
        line.fail(reason, "unsupported")

    return handler


_HANDLERS: Final[Mapping[str, _Handler]] = MappingProxyType(
    {
        "keepalive": _duration,
        "deadtime": _duration,
        "warntime": _duration,
        "initdead": _duration,
        "deadping": _duration,
        "udpport": _udpport,
        "node": _node,
        "ucast": _ucast,
        "bcast": _bcast,
        "udp": _udp_alias,
        "mcast": _mcast,
        "ping": _ping,
        "ping_group": _ping_group,
        "respawn": _respawn,
        "auto_failback": _auto_failback,
        "nice_failback": _nice_failback,
        "logfile": _logfile,
        "debugfile": _logfile,
        "logfacility": _logfacility,
        "debug": _debug,
        "cluster": _cluster,
        "crm": _crm,
        "hopfudge": _hopfudge,
        "baud": _serial,
        "serial": _serial,
        "stonith": _stonith,
        "stonith_host": _stonith,
        "watchdog": _watchdog,
        "autojoin": _autojoin,
        "use_logd": _use_logd,
        "env": _env,
        "realtime": _ignored(_one_bool),
        "coredumps": _ignored(_one_bool),
        "traditional_compression": _ignored(_one_bool),
        "log_badpack": _ignored(_one_bool),
        "use_apphbd": _ignored(_one_bool),
        "syslogmsgfmt": _ignored(_one_bool),
        "record_config_changes": _ignored(_one_bool),
        "record_pengine_inputs": _ignored(_one_bool),
        "enable_config_writes": _ignored(_one_bool),
        "rtprio": _ignored(_one_int),
        "compression_threshold": _ignored(_one_int),
        "max_rexmit_delay": _ignored(_one_int),
        "memreserve": _ignored(_one_int),
        "compression": _ignored(_any_value),
        "coreroot": _ignored(_any_value),
        "apiauth": _ignored(_any_value),
        "conn_logd_time": _ignored(_one_duration),
        "msgfmt": _ignored(_one_of("classic", "netstring")),
        "uuidfrom": _ignored(_one_of("file", "nodename")),
        "hbgenmethod": _ignored(_one_of("file", "time")),
        "failfast": _refuse(
            "failfast (reboot when the program dies) is not supported; use respawn"
        ),
        "quorum_server": _refuse(
            "quorum_server is not supported: quorum comes from the nodes' leases and ping nodes"
        ),
        "mcast6": _refuse("mcast6 is not supported; use ucast to the peers' IPv6 addresses"),
        "hbaping": _refuse("hbaping is not supported; use ping with an IP address"),
        "openais": _refuse("openais links are not supported; use ucast, bcast or mcast"),
        "tipc": _refuse("tipc links are not supported; use ucast, bcast or mcast"),
    }
)


def _unknown(line: _Line) -> NoReturn:
    name = line.directive
    known = list(_HANDLERS)
    if name.lower() in _HANDLERS:
        hint = f"; directive names are lower-case, as in Heartbeat: write {name.lower()!r}"
    else:
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else "; expected an ha.cf directive"
    raise ConfigError(
        line.path, line.number, f"unknown directive {name!r}{hint}", "unknown-directive"
    )


# ---------------------------------------------------------------- assembling the result


def _finish(state: _State) -> HaCf:
    locations: dict[str, Where] = {}
    timings = _timings(state, locations)
    links = _links(state, locations)
    for name, number in state.nodes.items():
        locations[f"node:{name}"] = (state.path, number)
    for name, (_group, number) in state.pings.items():
        locations[f"ping:{name}"] = (state.path, number)
    for index, number in enumerate(state.respawn_lines):
        locations[f"respawn:{index}"] = (state.path, number)
    if state.ipfail_line is not None and not state.pings:
        state.warn(state.ipfail_line, "ipfail without a `ping` line has nothing to watch")
    if state.auto_failback is None:
        state.warn(
            None,
            "no auto_failback line: Heartbeat's default (legacy) is read as off; "
            "write `auto_failback on` or `off` to choose",
        )
    return HaCf(
        cluster_name=state.cluster_name or DEFAULT_CLUSTER_NAME,
        nodes=tuple(Node(name) for name in state.nodes),
        links=links,
        ping_groups=tuple(group for group, _ in state.pings.values()),
        timings=timings,
        auto_failback=bool(state.auto_failback),
        ping_failover=state.ipfail_line is not None,
        respawns=tuple(state.respawns),
        logging=Logging(state.logfile, state.debugfile, state.facility, state.debug),
        locations=MappingProxyType(locations),
        warnings=tuple(state.warnings),
    )


def _timings(state: _State, locations: dict[str, Where]) -> Timings:
    """Heartbeat's defaults for what is absent; a derived value points at its source line."""
    keepalive_s, keepalive_line = state.durations.get("keepalive", (DEFAULT_KEEPALIVE_S, None))
    deadtime_s, deadtime_line = state.durations.get("deadtime", (DEFAULT_DEADTIME_S, None))
    if deadtime_s > 10:
        initdead_default = deadtime_s
    elif deadtime_s < 6:
        initdead_default = 12.0
    else:
        initdead_default = 2 * deadtime_s
    warntime_s, warntime_line = state.durations.get("warntime", (deadtime_s / 2, deadtime_line))
    initdead_s, initdead_line = state.durations.get("initdead", (initdead_default, deadtime_line))
    deadping_s, deadping_line = state.durations.get("deadping", (deadtime_s, deadtime_line))
    for key, number in (
        ("keepalive", keepalive_line),
        ("ping_interval", keepalive_line),  # ping nodes are probed once per keepalive
        ("deadtime", deadtime_line),
        ("warntime", warntime_line),
        ("initdead", initdead_line),
        ("deadping", deadping_line),
    ):
        locations[key] = (state.path, number)
    return Timings(
        keepalive_s=keepalive_s,
        deadtime_s=deadtime_s,
        warntime_s=warntime_s,
        initdead_s=initdead_s,
        ping_interval_s=keepalive_s,
        deadping_s=deadping_s,
    )


def _links(state: _State, locations: dict[str, Where]) -> tuple[Link, ...]:
    """One link per interface and kind; named after the interface unless kinds share it."""
    port = state.udpport[0] if state.udpport else DEFAULT_PORT
    per_iface: dict[str, int] = {}
    for _kind, iface, _number in state.link_order:
        per_iface[iface] = per_iface.get(iface, 0) + 1
    links: list[Link] = []
    names: set[str] = set()
    mcasts = iter(state.mcast)
    for kind, iface, number in state.link_order:
        base = iface if per_iface[iface] == 1 else f"{kind.value}-{iface}"
        name, suffix = base, 2
        while name in names:
            name, suffix = f"{base}-{suffix}", suffix + 1
        names.add(name)
        locations[f"link:{name}"] = (state.path, number)
        if state.udpport is not None and kind is not LinkKind.MCAST:
            locations[f"link:{name}:port"] = (state.path, state.udpport[1])
        if kind is LinkKind.MCAST:
            template, _ = next(mcasts)
            links.append(
                Link(
                    name,
                    kind,
                    iface,
                    template.port,
                    (),
                    template.group,
                    template.ttl,
                    template.loop,
                )
            )
        elif kind is LinkKind.UCAST:
            peers = state.ucast[iface]
            for address, peer_line in peers.items():
                locations[f"link:{name}:peer:{address}"] = (state.path, peer_line)
            links.append(Link(name, kind, iface, port, tuple(peers)))
        else:
            links.append(Link(name, kind, iface, port))
    return tuple(links)
