"""Native configuration: one `gossipha.toml`, identical on every node, read into the model.

tomllib checks the syntax; this module checks every key and type and records where each
item was written (tomllib gives no line numbers, so `KeyLines` scans the text for them),
so that both its own errors and the shared rules in validate.py point at the right line.
Native defaults (fast LAN failover) live in `NATIVE_DEFAULTS`; docs/configuration.md
explains each one.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from gossipha.config.authkeys import active_line, parse_authkeys
from gossipha.config.durations import parse_duration
from gossipha.config.errors import Collector, ConfigError, ConfigErrors, ConfigWarning
from gossipha.config.model import (
    AUTH_MODES,
    DEFAULT_PORT,
    Auth,
    AuthMethod,
    Config,
    HealthCheck,
    HealthCheckKind,
    Hook,
    IPAddress,
    Link,
    LinkKind,
    Logging,
    Node,
    NodeRole,
    Observe,
    PingGroup,
    Resource,
    ResourceGroup,
    Respawn,
    ServiceKind,
    ServiceResource,
    Timings,
    VipResource,
)
from gossipha.config.numbers import is_digits
from gossipha.config.services import ServiceNotFound, ServiceResolver
from gossipha.config.text import read, toml_comment

KeyPath = tuple[str | int, ...]
LocationMap = dict[str, tuple[Path, int | None]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NativeDefaults:
    """Every default of the native format, in one place (reasons: docs/configuration.md).

    Tuned for a LAN: a heartbeat every 200 ms, phi-accrual detection in about half a
    second, `deadtime` 1 s as the hard cap, and a lease (0.6 s) that has run out by about
    the time the old holder is known dead, so the VIP moves at once.
    """

    keepalive_s: float = 0.2
    deadtime_s: float = 1.0
    warntime_s: float = 0.5
    initdead_s: float = 3.0
    ping_interval_s: float = 0.2
    deadping_s: float = 1.0
    phi_warn: float = 3.0
    phi_dead: float = 8.0
    phi_window: int = 100
    phi_min_std_s: float = 0.05
    phi_acceptable_pause_s: float = 0.0
    lease_s: float = 0.6
    max_drift: float = 0.01
    vip_probe_count: int = 3
    vip_probe_interval_s: float = 0.05
    failback_delay_s: float = 5.0
    auto_failback: bool = True
    ping_failover: bool = True
    keyfile: str = "authkeys"
    port: int = DEFAULT_PORT
    service_timeout_s: float = 30.0
    hook_timeout_s: float = 10.0


NATIVE_DEFAULTS = NativeDefaults()

# ---------------------------------------------------------------------------------------
# Where keys are written: a scanner over already-valid TOML text.

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_DECODE_LINE = re.compile(r"at line (\d+)")


class _ScanError(Exception):
    """The scanner met text it does not follow (a bug here, since tomllib accepted it)."""


class KeyLines:
    """Line of every table header, key and array element, by key path.

    Paths are tuples: `("link", 1, "peers", 0)` is the first peer of the second
    `[[link]]`. The text must already have been accepted by tomllib, so the scanner
    only has to follow strings, brackets and comments, not judge them.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1
        self.lines: dict[KeyPath, int] = {}
        self._array_counts: dict[KeyPath, int] = {}
        self._scan()

    def line(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest written ancestor (a default has none)."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None

    # -- low-level cursor -------------------------------------------------------------

    def _peek(self, n: int = 1) -> str:
        return self._text[self._pos : self._pos + n]

    def _advance(self, n: int = 1) -> str:
        chunk = self._text[self._pos : self._pos + n]
        self._line += chunk.count("\n")
        self._pos += n
        return chunk

    def _skip_space(self, newlines: bool) -> None:
        """Skip blanks and comments; newlines too when inside brackets or between lines."""
        while self._pos < len(self._text):
            ch = self._peek()
            if ch in " \t\r" or (newlines and ch == "\n"):
                self._advance()
            elif ch == "#":
                end = self._text.find("\n", self._pos)
                self._advance((len(self._text) if end < 0 else end) - self._pos)
            else:
                return

    # -- grammar ----------------------------------------------------------------------

    def _scan(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip_space(newlines=True)
            if self._pos >= len(self._text):
                return
            if self._peek(2) == "[[":
                line = self._line
                self._advance(2)
                table = self._array_header(self._key(), line)
                self._skip_space(newlines=False)
                self._advance(2)
            elif self._peek() == "[":
                line = self._line
                self._advance()
                table = self._resolve(self._key())
                self.lines.setdefault(table, line)
                self._skip_space(newlines=False)
                self._advance()
            else:
                self._progress(self._key_value, table)

    def _progress(self, step: Callable[[KeyPath], None], path: KeyPath) -> None:
        """Run one grammar step; one that consumes nothing would loop forever, so stop."""
        start = self._pos
        step(path)
        if self._pos == start or self._pos > len(self._text):
            raise _ScanError(f"scanner stuck at line {self._line}")

    def _resolve(self, key: tuple[str, ...]) -> KeyPath:
        """A header's path, entering the last element of each array of tables on the way."""
        path: KeyPath = ()
        for part in key:
            path = (*path, part)
            if path in self._array_counts:
                path = (*path, self._array_counts[path] - 1)
        return path

    def _array_header(self, key: tuple[str, ...], line: int) -> KeyPath:
        parent = self._resolve(key[:-1])
        array = (*parent, key[-1])
        index = self._array_counts.get(array, 0)
        self._array_counts[array] = index + 1
        self.lines.setdefault(array, line)
        self.lines[(*array, index)] = line
        return (*array, index)

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip_space(newlines=False)
            ch = self._peek()
            if ch in "\"'":
                token = self._string()
                parts.append(tomllib.loads(f"k = {token}")["k"])
            else:
                match = _BARE_KEY.match(self._text, self._pos)
                if not match:
                    raise _ScanError(f"key expected at line {self._line}")
                parts.append(self._advance(match.end() - self._pos))
            self._skip_space(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._advance()

    def _key_value(self, table: KeyPath) -> None:
        line = self._line
        path = (*table, *self._key())
        self.lines.setdefault(path, line)
        self._skip_space(newlines=False)
        self._advance()  # "="
        self._value(path)

    def _value(self, path: KeyPath) -> None:
        self._skip_space(newlines=False)
        self.lines.setdefault(path, self._line)
        ch = self._peek()
        if ch in "\"'":
            self._string()
        elif ch == "[":
            self._array(path)
        elif ch == "{":
            self._inline_table(path)
        else:
            while self._pos < len(self._text) and self._peek() not in ",]}#\n":
                self._advance()

    def _array(self, path: KeyPath) -> None:
        self._advance()
        index = 0
        while True:
            self._skip_space(newlines=True)
            if self._peek() == "]":
                self._advance()
                return
            if self._peek() == ",":
                self._advance()
                continue
            self._progress(self._value, (*path, index))
            index += 1

    def _inline_table(self, path: KeyPath) -> None:
        self._advance()
        while True:
            self._skip_space(newlines=True)
            if self._peek() == "}":
                self._advance()
                return
            if self._peek() == ",":
                self._advance()
                continue
            self._progress(self._key_value, path)

    def _string(self) -> str:
        """Consume one string token of any of TOML's four kinds and return its text."""
        start = self._pos
        quote = self._peek()
        if self._peek(3) == quote * 3:
            self._advance(3)
            end = self._text.find(quote * 3, self._pos)
            while quote == '"' and _escaped(self._text, end):
                end = self._text.find(quote * 3, end + 1)
            # A closing run may be up to five quotes; the extra ones belong to the string.
            while self._text[end + 3 : end + 4] == quote:
                end += 1
            self._advance(end + 3 - self._pos)
        else:
            self._advance()
            while self._pos < len(self._text) and self._peek() != quote:
                if quote == '"' and self._peek() == "\\":
                    self._advance()
                self._advance()
            self._advance()
        return self._text[start : self._pos]


def _escaped(text: str, index: int) -> bool:
    """True when the character at `index` is preceded by an odd run of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def format_key(part: str) -> str:
    """A TOML key segment: bare when possible, else a quoted basic string."""
    return part if _BARE_KEY.fullmatch(part) else toml_string(part)


def toml_string(text: str) -> str:
    """A TOML basic string that tomllib reads back as exactly `text`."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif not ch.isprintable() and ch != " ":
            # Control characters must be escaped; other invisibles (U+0085, U+2028) are
            # escaped too, so an editor shows the same lines as TOML counts.
            code = ord(ch)
            out.append(f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def display_path(path: KeyPath) -> str:
    """`link[1].peers[0]`, `nodes."web1.example.com"`: how error messages name a key."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + format_key(part)
    return out


# ---------------------------------------------------------------------------------------
# Keys each table accepts; anything else is a typo and is refused with this list.

_TOP_KEYS = (
    "cluster",
    "timings",
    "auth",
    "nodes",
    "link",
    "ping",
    "group",
    "respawn",
    "logging",
    "observe",
)
_CLUSTER_KEYS = ("name", "auto_failback", "failback_delay", "ping_failover")
_TIMING_DURATIONS = {
    "keepalive": "keepalive_s",
    "deadtime": "deadtime_s",
    "warntime": "warntime_s",
    "initdead": "initdead_s",
    "ping_interval": "ping_interval_s",
    "deadping": "deadping_s",
    "phi_min_std": "phi_min_std_s",
    "phi_acceptable_pause": "phi_acceptable_pause_s",
    "lease": "lease_s",
    "vip_probe_interval": "vip_probe_interval_s",
}
_TIMING_FLOATS = ("phi_warn", "phi_dead", "max_drift")
_TIMING_INTS = ("phi_window", "vip_probe_count")
_TIMING_KEYS = (*_TIMING_DURATIONS, *_TIMING_FLOATS, *_TIMING_INTS)
_AUTH_KEYS = ("keyfile", "allow_unauthenticated", "mode")
_NODE_KEYS = ("role", "voter", "addresses")
_LINK_KEYS = ("name", "kind", "interface", "port", "peers", "group", "ttl", "loop")
_PING_KEYS = ("name", "addresses", "interface")
_GROUP_KEYS = ("name", "preferred", "priorities", "resources", "check")
_VIP_KEYS = ("vip", "interface", "label", "broadcast")
_SERVICE_KEYS = (
    "service",
    "kind",
    "args",
    "path",
    "unit",
    "provider",
    "type",
    "start",
    "stop",
    "status",
    "timeout",
)
# Which optional service keys each explicit kind takes (args and timeout: every kind).
_SERVICE_KIND_KEYS = {
    ServiceKind.RESOURCE_D: ("path",),
    ServiceKind.LSB: ("path",),
    ServiceKind.SYSTEMD: ("unit",),
    ServiceKind.OCF: ("path", "provider", "type"),
    ServiceKind.COMMAND: ("start", "stop", "status"),
}
_CHECK_KEYS = (
    "name",
    "kind",
    "interval",
    "timeout",
    "url",
    "expect_status",
    "expect_body",
    "command",
    "failures",
    "max_restarts",
)
_CHECK_KIND_KEYS = {
    HealthCheckKind.HTTP: ("url", "expect_status", "expect_body"),
    HealthCheckKind.COMMAND: ("command",),
}
_RESPAWN_KEYS = ("user", "command")
_LOGGING_KEYS = ("logfile", "debugfile", "facility", "debug")
_OBSERVE_KEYS = ("listen", "admin_socket", "max_concurrent_hooks", "alertmanager_url", "hook")
_HOOK_KEYS = ("path", "events", "timeout")

_TOML_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
)


def _describe(value: object) -> str:
    """`a string ("x")`: what was found, in TOML words, for type errors."""
    for kind, name in _TOML_TYPE_NAMES:
        if isinstance(value, kind):
            if isinstance(value, list | dict):
                return name
            shown = repr(value) if not isinstance(value, bool) else str(value).lower()
            return f"{name} ({shown[:60]})"
    return f"a {type(value).__name__}"  # dates and times


# ---------------------------------------------------------------------------------------
# The reader: typed accessors that know the file and the line of every key.


class _Reader:
    """Turns the tomllib tree into model values; every failure names file, line and key."""

    def __init__(self, path: Path, lines: KeyLines) -> None:
        self.path = path
        self.lines = lines
        self.locations: LocationMap = {}
        # Errors of items already passed over, so one run reports them all.
        self.errors = Collector()

    def fail(self, where: KeyPath, message: str, code: str = "bad-value") -> NoReturn:
        raise self.error(where, message, code)

    def missing(self, where: KeyPath, key: str, expected: str) -> NoReturn:
        """`key` is required at `where`: `expected` says what it holds, or why it is needed."""
        self.fail(where, f"missing key {key!r}; {expected}", "missing")

    def error(self, where: KeyPath, message: str, code: str = "bad-value") -> ConfigError:
        return ConfigError(
            self.path, self.lines.line(where), f"{display_path(where)}: {message}", code
        )

    def attempt(self, read: Callable[[], T], fallback: T) -> T:
        """`read()`, or `fallback` with its error recorded: the next item is still read."""
        with self.errors.attempt():
            return read()
        return fallback

    def locate(self, key: str, where: KeyPath) -> None:
        """Record `key` (validate.py's scheme) at the line of `where`."""
        self.locations[key] = (self.path, self.lines.line(where))

    def table(self, value: object, where: KeyPath, allowed: tuple[str, ...]) -> dict[str, Any]:
        """`value` as a table with no key outside `allowed` (unknown keys are typos)."""
        if not isinstance(value, dict):
            self.fail(where, f"found {_describe(value)}; expected a table")
        unknown = [key for key in value if key not in allowed]
        for key in unknown:
            # Recorded, not raised: every typo of the file is reported in one run.
            self.errors.add(
                self.error(
                    (*where, key),
                    f"unknown key {key!r}; expected one of: {', '.join(allowed)}",
                    "unknown-directive",
                )
            )
        return {key: item for key, item in value.items() if key not in unknown}

    def tables(
        self, value: object, where: KeyPath, allowed: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        """An array of tables (`[[x]]` or an array of inline tables)."""
        if isinstance(value, dict):
            header = display_path(tuple(p for p in where if isinstance(p, str)))
            self.fail(
                where, f"found a table; expected [[{header}]] (double brackets), one per item"
            )
        items = self.array(value, where)
        return [self.table(item, (*where, i), allowed) for i, item in enumerate(items)]

    def array(self, value: object, where: KeyPath) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, f"found {_describe(value)}; expected an array")
        return value

    def string(self, value: object, where: KeyPath, *, empty: bool = False) -> str:
        if not isinstance(value, str):
            self.fail(where, f"found {_describe(value)}; expected a string")
        if not empty and not value.strip():
            self.fail(where, "is empty; expected a non-empty string")
        return value

    def boolean(self, value: object, where: KeyPath) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"found {_describe(value)}; expected true or false")
        return value

    def integer(self, value: object, where: KeyPath, low: int, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"found {_describe(value)}; expected an integer")
        if value < low or (high is not None and value > high):
            bounds = f"{low} to {high}" if high is not None else f"{low} or more"
            self.fail(where, f"is {value}; expected {bounds}", "bad-number")
        return value

    def number(self, value: object, where: KeyPath) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(where, f"found {_describe(value)}; expected a number")
        if not math.isfinite(value):
            self.fail(where, f"is {value}; expected a finite number")
        return float(value)

    def duration(self, value: object, where: KeyPath) -> float:
        """A number of seconds, or a string such as "200ms", "2s", "1500us"."""
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError as exc:
                self.fail(where, str(exc), "bad-duration")
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(
                where,
                f'found {_describe(value)}; expected a duration like "200ms" or 0.2',
                "bad-duration",
            )
        if not math.isfinite(value) or value < 0:
            self.fail(
                where, f"is {value}; expected a duration of 0 seconds or more", "bad-duration"
            )
        return float(value)

    def strings(self, value: object, where: KeyPath, *, empty: bool = False) -> tuple[str, ...]:
        items = self.array(value, where)
        return tuple(self.string(v, (*where, i), empty=empty) for i, v in enumerate(items))

    def address(self, value: object, where: KeyPath) -> IPAddress:
        text = self.string(value, where)
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            self.fail(where, f"{text!r} is not an IPv4 or IPv6 address", "bad-address")

    def addresses(self, value: object, where: KeyPath) -> tuple[IPAddress, ...]:
        items = self.array(value, where)
        return tuple(self.address(v, (*where, i)) for i, v in enumerate(items))

    def filepath(self, value: object, where: KeyPath) -> Path:
        """A path; a relative one is relative to the directory of the TOML file."""
        path = Path(self.string(value, where))
        return path if path.is_absolute() else self.path.parent / path

    def choice(self, value: object, where: KeyPath, enum_values: Mapping[str, T]) -> T:
        text = self.string(value, where)
        if text not in enum_values:
            self.fail(where, f"{text!r}; expected one of: {', '.join(enum_values)}")
        return enum_values[text]

    def optional(
        self, data: Mapping[str, Any], key: str, where: KeyPath, read: Callable[[Any, KeyPath], T]
    ) -> T | None:
        return read(data[key], (*where, key)) if key in data else None


def _enum_map(enum_type: type[T]) -> dict[str, T]:
    return {member.value: member for member in enum_type}  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# Sections.


def _timings(r: _Reader, data: Mapping[str, Any], failback_delay_s: float) -> Timings:
    where: KeyPath = ("timings",)
    table = r.table(data, where, _TIMING_KEYS)
    values: dict[str, Any] = {"failback_delay_s": failback_delay_s}

    # Each key on its own: a bad one is recorded (r.attempt) and the next still read.
    def read(key: str, reader: Callable[[object, KeyPath], T], default: T) -> T:
        if key not in table:
            return default
        return r.attempt(lambda: reader(table[key], (*where, key)), default)

    for key, field_name in _TIMING_DURATIONS.items():
        values[field_name] = read(key, r.duration, getattr(NATIVE_DEFAULTS, field_name))
    for key in _TIMING_FLOATS:
        values[key] = read(key, r.number, getattr(NATIVE_DEFAULTS, key))
    for key in _TIMING_INTS:
        values[key] = read(key, lambda v, w: r.integer(v, w, 1), getattr(NATIVE_DEFAULTS, key))
    for key in (*_TIMING_DURATIONS, "phi_window", "vip_probe_count"):
        if key != "lease":
            r.locate(key, (*where, key))
    r.locate("lease", (*where, "lease") if "lease" in table else (*where, "max_drift"))
    return Timings(**values)


@dataclass(frozen=True, slots=True)
class _LinkDraft:
    """A link before its ucast peers are known (they may come from the nodes' addresses)."""

    link: Link
    peers_written: bool


def _links(r: _Reader, data: object) -> list[_LinkDraft]:
    drafts: list[_LinkDraft] = []
    for i, table in enumerate(r.tables(data, ("link",), _LINK_KEYS)):
        with r.errors.attempt():
            where: KeyPath = ("link", i)
            if "interface" not in table:
                r.missing(where, "interface", "expected the network interface, e.g. eth1")
            interface = r.string(table["interface"], (*where, "interface"))
            name = r.optional(table, "name", where, r.string) or interface
            kind = r.choice(table.get("kind", "ucast"), (*where, "kind"), _enum_map(LinkKind))
            port = r.optional(table, "port", where, lambda v, w: r.integer(v, w, 1, 65535))
            for key, allowed_kind in (("peers", LinkKind.UCAST), ("group", LinkKind.MCAST)):
                if key in table and kind is not allowed_kind:
                    r.fail((*where, key), f"only a {allowed_kind.value} link takes {key!r}")
            for key in ("ttl", "loop"):
                if key in table and kind is not LinkKind.MCAST:
                    r.fail((*where, key), f"only an mcast link takes {key!r}")
            group = r.optional(table, "group", where, r.address)
            if kind is LinkKind.MCAST and group is None:
                r.missing(where, "group", "an mcast link needs its multicast group")
            link = Link(
                name=name,
                kind=kind,
                interface=interface,
                port=NATIVE_DEFAULTS.port if port is None else port,
                peers=r.optional(table, "peers", where, r.addresses) or (),
                group=group,
                ttl=r.optional(table, "ttl", where, lambda v, w: r.integer(v, w, 1, 255)) or 1,
                loop=bool(r.optional(table, "loop", where, r.boolean)),
            )
            r.locate(f"link:{name}", where)
            r.locate(f"link:{name}:interface", (*where, "interface"))
            r.locate(f"link:{name}:port", (*where, "port"))
            for j, peer in enumerate(link.peers):
                r.locate(f"link:{name}:peer:{peer}", (*where, "peers", j))
            drafts.append(_LinkDraft(link, "peers" in table))
    return drafts


def _nodes(r: _Reader, data: object, link_names: list[str]) -> tuple[Node, ...]:
    where: KeyPath = ("nodes",)
    if not isinstance(data, dict):
        r.fail(where, f"found {_describe(data)}; expected tables like [nodes.NAME]")
    nodes: list[Node] = []
    for name, value in data.items():
        with r.errors.attempt():
            nwhere: KeyPath = (*where, name)
            table = r.table(value, nwhere, _NODE_KEYS)
            if not name.strip():
                r.fail(nwhere, "empty node name; expected the node's `uname -n`")
            role = r.choice(table.get("role", "member"), (*nwhere, "role"), _enum_map(NodeRole))
            voter = r.optional(table, "voter", nwhere, r.boolean)
            addresses: list[tuple[str, IPAddress]] = []
            if "addresses" in table:
                awhere: KeyPath = (*nwhere, "addresses")
                if not isinstance(table["addresses"], dict):
                    r.fail(awhere, f"found {_describe(table['addresses'])}; expected a table")
                for link_name, text in table["addresses"].items():
                    if link_name not in link_names:
                        known = ", ".join(link_names) or "none"
                        r.fail(
                            (*awhere, link_name), f"no link named {link_name!r} (links: {known})"
                        )
                    addresses.append((link_name, r.address(text, (*awhere, link_name))))
            nodes.append(Node(name, role, voter, tuple(addresses)))
            r.locate(f"node:{name}", nwhere)
            if voter is not None:
                r.locate(f"voter:{name}", (*nwhere, "voter"))
    return tuple(nodes)


def _finish_links(
    r: _Reader, drafts: list[_LinkDraft], nodes: tuple[Node, ...], node_name: str
) -> tuple[Link, ...]:
    """ucast links without `peers` send to every other node's address on that link."""
    links: list[Link] = []
    for draft in drafts:
        link = draft.link
        if link.kind is LinkKind.UCAST and not draft.peers_written:
            peers = derived_peers(link.name, nodes, node_name)
            for node in nodes:
                for link_name, address in node.addresses:
                    if link_name == link.name and address in peers:
                        r.locate(
                            f"link:{link.name}:peer:{address}",
                            ("nodes", node.name, "addresses", link_name),
                        )
            link = dataclasses.replace(link, peers=peers)
        links.append(link)
    return tuple(links)


def derived_peers(link_name: str, nodes: tuple[Node, ...], node_name: str) -> tuple[IPAddress, ...]:
    """The addresses a ucast link sends to when `peers` is not written: every other node's."""
    return tuple(
        address
        for node in nodes
        if node.name != node_name
        for name, address in node.addresses
        if name == link_name
    )


def _pings(r: _Reader, data: object) -> tuple[PingGroup, ...]:
    groups: list[PingGroup] = []
    for i, table in enumerate(r.tables(data, ("ping",), _PING_KEYS)):
        with r.errors.attempt():
            where: KeyPath = ("ping", i)
            if "addresses" not in table:
                r.missing(where, "addresses", 'expected the ping nodes, e.g. ["192.0.2.1"]')
            addresses = r.addresses(table["addresses"], (*where, "addresses"))
            if not addresses:
                r.fail((*where, "addresses"), "is empty; expected at least one ping node address")
            name = r.optional(table, "name", where, r.string)
            if name is None:
                if len(addresses) > 1:
                    r.missing(where, "name", "a ping group of several addresses needs one")
                name = str(addresses[0])
            interface = r.optional(table, "interface", where, r.string)
            groups.append(PingGroup(name, addresses, interface))
            r.locate(f"ping:{name}", where)
            r.locate(f"ping:{name}:interface", (*where, "interface"))
    return tuple(groups)


def _vip(r: _Reader, table: Mapping[str, Any], where: KeyPath) -> VipResource:
    text = r.string(table["vip"], (*where, "vip"))
    address_text, slash, prefix_text = text.partition("/")
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        r.fail((*where, "vip"), f"{text!r}: expected ADDRESS or ADDRESS/PREFIX")
    prefix: int | None = None
    if slash:
        if not is_digits(prefix_text) or int(prefix_text) > address.max_prefixlen:
            r.fail(
                (*where, "vip"),
                f"{text!r}: prefix {prefix_text!r}; expected 0 to {address.max_prefixlen}",
            )
        prefix = int(prefix_text)
    return VipResource(
        address=address,
        prefix=prefix,
        interface=r.optional(table, "interface", where, r.string),
        label=r.optional(table, "label", where, r.string),
        broadcast=r.optional(table, "broadcast", where, r.address),
    )


def _service(
    r: _Reader, table: Mapping[str, Any], where: KeyPath, resolver: ServiceResolver
) -> ServiceResource:
    name = r.string(table["service"], (*where, "service"))
    args = r.optional(table, "args", where, r.strings) or ()
    timeout = r.optional(table, "timeout", where, r.duration)
    timeout_s = NATIVE_DEFAULTS.service_timeout_s if timeout is None else timeout
    if "kind" not in table:
        for key in table:
            if key not in ("service", "args", "timeout"):
                r.fail((*where, key), f"{key!r} needs an explicit `kind` beside it")
        try:
            found = resolver.resolve(name, args)
        except ServiceNotFound as exc:
            r.fail(where, str(exc))
        return dataclasses.replace(found, timeout_s=timeout_s)
    kind = r.choice(table["kind"], (*where, "kind"), _enum_map(ServiceKind))
    for key in table:
        if key not in ("service", "kind", "args", "timeout", *_SERVICE_KIND_KEYS[kind]):
            r.fail((*where, key), f"kind {kind.value!r} does not take {key!r}")
    service = ServiceResource(name, kind, args, timeout_s=timeout_s)
    return _explicit_service(r, table, where, resolver, service)


def _explicit_service(
    r: _Reader,
    table: Mapping[str, Any],
    where: KeyPath,
    resolver: ServiceResolver,
    service: ServiceResource,
) -> ServiceResource:
    """A service whose kind is written: taken as written, missing parts by convention only."""
    name, kind = service.name, service.kind
    path = r.optional(table, "path", where, r.filepath)
    if kind is ServiceKind.RESOURCE_D:
        return dataclasses.replace(service, path=path or resolver.resource_d / name)
    if kind is ServiceKind.LSB:
        return dataclasses.replace(service, path=path or resolver.init_d / name)
    if kind is ServiceKind.SYSTEMD:
        unit = r.optional(table, "unit", where, r.string)
        default = name if name.endswith((".service", ".target")) else f"{name}.service"
        return dataclasses.replace(service, unit=unit or default)
    if kind is ServiceKind.OCF:
        parts = name.split(":")
        named = parts[1:] if len(parts) == 3 and parts[0] == "ocf" else [None, None]
        provider = r.optional(table, "provider", where, r.string) or named[0]
        agent = r.optional(table, "type", where, r.string) or named[1]
        if provider is None or agent is None:
            r.fail(
                where,
                "an OCF service needs `provider` and `type`, or a name ocf:PROVIDER:TYPE",
                "missing",
            )
        return dataclasses.replace(
            service,
            path=path or resolver.ocf_root / provider / agent,
            ocf_provider=provider,
            ocf_type=agent,
        )
    for key in ("start", "stop"):
        if key not in table:
            r.missing(where, key, "a command service needs start and stop commands")
    commands = [
        r.optional(table, key, where, r.strings) or () for key in ("start", "stop", "status")
    ]
    for key, command in zip(("start", "stop", "status"), commands, strict=True):
        if key in table and not command:
            r.fail((*where, key), "is empty; expected a command and its arguments")
    return dataclasses.replace(service, start=commands[0], stop=commands[1], status=commands[2])


def _resources(
    r: _Reader, data: object, where: KeyPath, resolver: ServiceResolver, group: str
) -> tuple[Resource, ...]:
    resources: list[Resource] = []
    for i, item in enumerate(r.array(data, where)):
        rwhere: KeyPath = (*where, i)
        if not isinstance(item, dict):
            r.fail(
                rwhere, f"found {_describe(item)}; expected {{ vip = ... }} or {{ service = ... }}"
            )
        if "vip" in item and "service" in item:
            r.fail(rwhere, "has both 'vip' and 'service'; expected one resource per table")
        if "vip" in item:
            resources.append(_vip(r, r.table(item, rwhere, _VIP_KEYS), rwhere))
        elif "service" in item:
            resources.append(_service(r, r.table(item, rwhere, _SERVICE_KEYS), rwhere, resolver))
        else:
            r.fail(rwhere, "expected a table with 'vip' (a floating address) or 'service'")
        r.locate(f"resource:{group}:{i}", rwhere)
    return tuple(resources)


def _check(r: _Reader, table: Mapping[str, Any], where: KeyPath) -> HealthCheck:
    if "name" not in table or "kind" not in table:
        r.fail(where, "a health check needs 'name' and 'kind' (http or command)", "missing")
    kind = r.choice(table["kind"], (*where, "kind"), _enum_map(HealthCheckKind))
    for key in table:
        others = [k for k in _CHECK_KIND_KEYS.values() if k is not _CHECK_KIND_KEYS[kind]]
        if any(key in keys for keys in others):
            r.fail((*where, key), f"a {kind.value} check does not take {key!r}")
    check = HealthCheck(
        name=r.string(table["name"], (*where, "name")),
        kind=kind,
        url=r.optional(table, "url", where, r.string),
        expect_body=r.optional(
            table, "expect_body", where, lambda v, w: r.string(v, w, empty=True)
        ),
        command=r.optional(table, "command", where, r.strings) or (),
    )
    if kind is HealthCheckKind.HTTP and check.url is None:
        r.missing(where, "url", "an http check needs the URL to fetch")
    if kind is HealthCheckKind.COMMAND and not check.command:
        r.missing(where, "command", "a command check needs a command line")
    changes: dict[str, Any] = {}
    for key, field_name in (("interval", "interval_s"), ("timeout", "timeout_s")):
        if key in table:
            changes[field_name] = r.duration(table[key], (*where, key))
    for key, low, high in (("expect_status", 100, 599), ("failures", 1, None)):
        if key in table:
            changes[key] = r.integer(table[key], (*where, key), low, high)
    if "max_restarts" in table:
        changes["max_restarts"] = r.integer(table["max_restarts"], (*where, "max_restarts"), 0)
    return dataclasses.replace(check, **changes)


def _groups(r: _Reader, data: object, resolver: ServiceResolver) -> tuple[ResourceGroup, ...]:
    groups: list[ResourceGroup] = []
    for i, table in enumerate(r.tables(data, ("group",), _GROUP_KEYS)):
        with r.errors.attempt():
            where: KeyPath = ("group", i)
            if "name" not in table:
                r.missing(where, "name", "expected a name for the resource group")
            name = r.string(table["name"], (*where, "name"))
            r.locate(f"group:{name}", where)
            priorities: list[tuple[str, int]] = []
            if "priorities" in table:
                pwhere: KeyPath = (*where, "priorities")
                if not isinstance(table["priorities"], dict):
                    r.fail(pwhere, f"found {_describe(table['priorities'])}; expected a table")
                for node, value in table["priorities"].items():
                    priorities.append(
                        (node, r.integer(value, (*pwhere, node), -(2**31), 2**31 - 1))
                    )
            checks = r.tables(table.get("check", []), (*where, "check"), _CHECK_KEYS)
            for j in range(len(checks)):
                r.locate(f"check:{name}:{j}", (*where, "check", j))
            groups.append(
                ResourceGroup(
                    name=name,
                    resources=_resources(
                        r, table.get("resources", []), (*where, "resources"), resolver, name
                    ),
                    preferred=r.optional(table, "preferred", where, r.string),
                    priorities=tuple(priorities),
                    health_checks=tuple(
                        _check(r, c, (*where, "check", j)) for j, c in enumerate(checks)
                    ),
                )
            )
    return tuple(groups)


def _respawns(r: _Reader, data: object) -> tuple[Respawn, ...]:
    respawns: list[Respawn] = []
    for i, table in enumerate(r.tables(data, ("respawn",), _RESPAWN_KEYS)):
        with r.errors.attempt():
            where: KeyPath = ("respawn", i)
            if "user" not in table or "command" not in table:
                r.fail(
                    where,
                    "a respawn needs 'user' and 'command' (an array: program, arguments)",
                    "missing",
                )
            command = r.strings(table["command"], (*where, "command"))
            if not command:
                r.fail((*where, "command"), "is empty; expected the program and its arguments")
            respawns.append(Respawn(r.string(table["user"], (*where, "user")), command))
            r.locate(f"respawn:{i}", (*where, "command"))
            r.locate(f"respawn:{i}:user", (*where, "user"))
    return tuple(respawns)


def _logging(r: _Reader, data: object) -> Logging:
    where: KeyPath = ("logging",)
    table = r.table(data, where, _LOGGING_KEYS)
    return Logging(
        logfile=r.optional(table, "logfile", where, r.filepath),
        debugfile=r.optional(table, "debugfile", where, r.filepath),
        facility=r.optional(table, "facility", where, r.string),
        debug=r.optional(table, "debug", where, lambda v, w: r.integer(v, w, 0, 255)) or 0,
    )


def _listen(r: _Reader, value: object, where: KeyPath) -> tuple[str, int]:
    """ "HOST:PORT" or "[IPV6]:PORT" for the metrics/status HTTP endpoint."""
    text = r.string(value, where)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            r.fail(where, f'{text!r}: write an IPv6 address in brackets, e.g. "[::1]:9694"')
    if not sep or not host or not is_digits(port) or not 1 <= int(port) <= 65535:
        r.fail(where, f'{text!r}: expected HOST:PORT with a port 1-65535, e.g. "127.0.0.1:9694"')
    return host, int(port)


def _observe(r: _Reader, data: object) -> Observe:
    where: KeyPath = ("observe",)
    table = r.table(data, where, _OBSERVE_KEYS)
    defaults = Observe()
    host, port = defaults.listen_address, defaults.listen_port
    if "listen" in table:
        host, port = _listen(r, table["listen"], (*where, "listen"))
    hooks: list[Hook] = []
    for i, hook in enumerate(r.tables(table.get("hook", []), (*where, "hook"), _HOOK_KEYS)):
        hwhere: KeyPath = (*where, "hook", i)
        if "path" not in hook:
            r.missing(hwhere, "path", "expected the executable to run on events")
        timeout = r.optional(hook, "timeout", hwhere, r.duration)
        events = r.optional(hook, "events", hwhere, r.strings) or ()
        r.locate(f"hook:{i}", (*hwhere, "path"))
        r.locate(f"hook:{i}:timeout", (*hwhere, "timeout"))
        for j in range(len(events)):
            r.locate(f"hook:{i}:events:{j}", (*hwhere, "events", j))
        hooks.append(
            Hook(
                path=r.filepath(hook["path"], (*hwhere, "path")),
                events=events,
                timeout_s=NATIVE_DEFAULTS.hook_timeout_s if timeout is None else timeout,
            )
        )
    concurrent = r.optional(
        table, "max_concurrent_hooks", where, lambda v, w: r.integer(v, w, 1, 1024)
    )
    return Observe(
        listen_address=host,
        listen_port=port,
        admin_socket=r.optional(table, "admin_socket", where, r.filepath) or defaults.admin_socket,
        hooks=tuple(hooks),
        max_concurrent_hooks=defaults.max_concurrent_hooks if concurrent is None else concurrent,
        alertmanager_url=r.optional(table, "alertmanager_url", where, r.string),
    )


# ---------------------------------------------------------------------------------------
# Entry point.


def _auth_mode(r: _Reader) -> Callable[[Any, KeyPath], str]:
    """`[auth] mode`: one step of the staged turn-on of authentication (docs/security.md)."""
    modes = {m: m for m in AUTH_MODES}
    return lambda value, where: r.choice(value, where, modes)


def _key_lines(text: str) -> KeyLines:
    """Line numbers for `text`; if the scanner fails, errors just carry no line."""
    try:
        return KeyLines(text)
    except (_ScanError, IndexError, tomllib.TOMLDecodeError):
        return KeyLines("")


def _read_text(path: Path) -> tuple[str, dict[str, Any]]:
    """The text and its TOML tree. Lines with bytes that are not UTF-8 are all reported,
    and then nothing else: TOML read with holes in it would report errors that are not."""
    decoded = read(path, "a gossipha.toml", toml_comment)
    if decoded.errors:
        raise ConfigErrors(decoded.errors)
    text = decoded.text
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _DECODE_LINE.search(str(exc))
        line = int(match.group(1)) if match else None
        raise ConfigError(path, line, f"TOML syntax error: {exc}", "syntax") from None


def read_observe(path: Path) -> Observe:
    """Only the `[observe]` table of the gossipha.toml at `path`, for `gossipha status`: it
    needs no node name, keys or services, so any user who can read the file can use it."""
    text, data = _read_text(path)
    r = _Reader(path, _key_lines(text))
    observe = r.attempt(lambda: _observe(r, data.get("observe", {})), Observe())
    r.errors.raise_if_any()  # unknown keys are recorded, not raised, by r.table
    return observe


def _flag(r: _Reader, cluster: Mapping[str, Any], key: str, default: bool) -> bool:
    return r.boolean(cluster[key], ("cluster", key)) if key in cluster else default


def load_toml(
    path: Path,
    node_name: str,
    *,
    resolver: ServiceResolver,
    allow_unauthenticated: bool = False,
) -> tuple[Config, dict[str, tuple[Path, int | None]], list[ConfigWarning]]:
    """Read a gossipha.toml for `node_name`: the model, where each item was, and warnings.

    Cross-field rules (deadtime > keepalive, ...) are validate.py's; run it on the result.
    """
    text, data = _read_text(path)
    r = _Reader(path, _key_lines(text))
    r.locations["node_name"] = (path, None)
    # Each table is read on its own, so one run reports the errors of all of them; an
    # item in error reads as an empty fallback and nothing is built from the result.
    top = r.table(data, (), _TOP_KEYS)
    cluster: dict[str, Any] = r.attempt(lambda: _cluster(r, top.get("cluster", {})), {})
    failback: float | None = r.attempt(
        lambda: r.optional(cluster, "failback_delay", ("cluster",), r.duration), None
    )
    r.locate("failback_delay", ("cluster", "failback_delay"))
    failback_s = NATIVE_DEFAULTS.failback_delay_s if failback is None else failback
    timings: Timings | None = r.attempt(
        lambda: _timings(r, top.get("timings", {}), failback_s), None
    )
    drafts: list[_LinkDraft] = r.attempt(lambda: _links(r, top.get("link", [])), [])
    link_names = _written_link_names(top.get("link", []))
    nodes: tuple[Node, ...] = r.attempt(lambda: _nodes(r, top.get("nodes", {}), link_names), ())
    auth_read: tuple[Auth, list[ConfigWarning]] | None = r.attempt(
        lambda: _auth(r, top.get("auth", {}), allow_unauthenticated), None
    )
    name = r.attempt(lambda: r.string(cluster.get("name"), ("cluster", "name")), "")
    links: tuple[Link, ...] = r.attempt(lambda: _finish_links(r, drafts, nodes, node_name), ())
    pings: tuple[PingGroup, ...] = r.attempt(lambda: _pings(r, top.get("ping", [])), ())
    groups: tuple[ResourceGroup, ...] = r.attempt(
        lambda: _groups(r, top.get("group", []), resolver), ()
    )
    flags = r.attempt(
        lambda: (
            _flag(r, cluster, "auto_failback", NATIVE_DEFAULTS.auto_failback),
            _flag(r, cluster, "ping_failover", NATIVE_DEFAULTS.ping_failover),
        ),
        (False, False),
    )
    respawns: tuple[Respawn, ...] = r.attempt(lambda: _respawns(r, top.get("respawn", [])), ())
    logging = r.attempt(lambda: _logging(r, top.get("logging", {})), Logging())
    observe = r.attempt(lambda: _observe(r, top.get("observe", {})), Observe())
    r.errors.errors.sort(key=lambda e: e.line or 0)
    r.errors.raise_if_any()
    assert timings is not None and auth_read is not None
    auth, warnings = auth_read
    config = Config(
        source=path,
        cluster_name=name,
        node_name=node_name,
        nodes=nodes,
        links=links,
        ping_groups=pings,
        timings=timings,
        auth=auth,
        groups=groups,
        auto_failback=flags[0],
        ping_failover=flags[1],
        respawns=respawns,
        logging=logging,
        observe=observe,
    )
    return config, r.locations, warnings


def _cluster(r: _Reader, data: object) -> dict[str, Any]:
    cluster = r.table(data, ("cluster",), _CLUSTER_KEYS)
    if "name" not in cluster:
        r.missing(("cluster",), "name", 'expected the cluster\'s name, e.g. "web"')
    return cluster


def _written_link_names(data: object) -> list[str]:
    """Link names as written, even of a link in error, so nodes' addresses are checked
    against what the file says and not against what was read without error."""
    names: list[str] = []
    for table in data if isinstance(data, list) else []:
        if isinstance(table, dict):
            name = table.get("name", table.get("interface"))
            if isinstance(name, str):
                names.append(name)
    return names


def _auth(
    r: _Reader, data: object, allow_unauthenticated: bool
) -> tuple[Auth, list[ConfigWarning]]:
    """`[auth]` and the key file it names (read with the same rules as Heartbeat's)."""
    auth_table = r.table(data, ("auth",), _AUTH_KEYS)
    keyfile = r.filepath(auth_table.get("keyfile", NATIVE_DEFAULTS.keyfile), ("auth", "keyfile"))
    if not keyfile.is_file():
        r.fail(
            ("auth", "keyfile") if "keyfile" in auth_table else ("auth",),
            f"{keyfile} not found; expected an authkeys file, mode 600 "
            "(make one with `gossipha keygen`)",
            "not-found",
        )
    allow = r.optional(auth_table, "allow_unauthenticated", ("auth",), r.boolean)
    auth, warnings = parse_authkeys(
        keyfile, allow_unauthenticated=allow_unauthenticated or bool(allow)
    )
    r.locations["auth"] = (keyfile, active_line(keyfile))
    mode = r.optional(auth_table, "mode", ("auth",), _auth_mode(r))
    if mode is not None:
        if mode != "accept-unsigned" and auth.active_key.method is AuthMethod.CRC:
            r.fail(
                ("auth", "mode"),
                f"{mode!r} signs, but {keyfile}'s active key {auth.active} is crc; "
                'expected "accept-unsigned" or a signing key in `auth N`',
                "rule",
            )
        auth = dataclasses.replace(auth, mode=mode)
    return auth, warnings
