"""Heartbeat's haresources: one resource group per line, `PREFERRED-NODE RESOURCE...`.

As in Heartbeat, a line ending in a backslash continues on the next one, and resources
are listed in start order (stopped in reverse). A resource is a floating address
(`IP[/prefix[/iface[:label][/broadcast]]]`, also written `IPaddr::...` or `IPaddr2::...`)
or a service `name[::arg::arg]` found by the ServiceResolver (`ocf:PROVIDER:TYPE::k=v` too).

Group names: Heartbeat has none, but logs, metrics and validate.py need one. A group is
named after its first VIP (e.g. "192.168.171.100"), else after its first service; a repeat
gets "-2", "-3"... so names stay unique and stable while the file is unchanged.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, NoReturn

from gossipha.config.errors import Collector, ConfigError, ConfigWarning
from gossipha.config.hacf import Where
from gossipha.config.model import IPAddress, Resource, ResourceGroup, VipResource
from gossipha.config.numbers import is_digits
from gossipha.config.services import ServiceNotFound, ServiceResolver
from gossipha.config.text import ConfigText, hash_at_word, read, words

# Resource agents whose argument is an address spec, as in Heartbeat's resource.d.
_VIP_AGENTS: Final = frozenset({"IPaddr", "IPaddr2", "IPv6addr"})
_IFACE: Final = re.compile(r"^[^\s/:]{1,15}$")
_LABEL_MAX: Final = 15  # IFNAMSIZ - 1: Linux rejects longer address labels
_COMMENT: Final = re.compile(r"(?:^|[ \t\f\v])#")
# Looks like someone meant an address (so a typo is reported as a bad address).
_ADDRESS_LIKE: Final = re.compile(r"^(?:[0-9.]+|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)$")


@dataclass(frozen=True, slots=True)
class HaResources:
    groups: tuple[ResourceGroup, ...]
    locations: Mapping[str, Where]
    warnings: tuple[ConfigWarning, ...]


@dataclass(frozen=True, slots=True)
class _Token:
    """A word of a logical line with the physical line it sits on (lines may continue)."""

    text: str
    path: Path
    line: int

    def fail(self, message: str, code: str = "bad-value") -> NoReturn:
        raise ConfigError(self.path, self.line, message, code)


def parse_haresources(text: str | ConfigText, path: Path, resolver: ServiceResolver) -> HaResources:
    """Groups in file order; ConfigErrors lists every bad group line (file:line, code)."""
    lines = text.lines if isinstance(text, ConfigText) else tuple(text.split("\n"))
    errors = Collector()
    for error in text.errors if isinstance(text, ConfigText) else ():
        errors.add(error)
    groups: list[ResourceGroup] = []
    locations: dict[str, Where] = {}
    taken: set[str] = set()
    for tokens in _logical_lines(lines, path):
        with errors.attempt():
            group = _group(tokens, resolver, taken)
            taken.add(group.name)
            locations[f"group:{group.name}"] = (path, tokens[0].line)
            for index, token in enumerate(tokens[1:]):
                locations[f"resource:{group.name}:{index}"] = (path, token.line)
            groups.append(group)
    errors.errors.sort(key=lambda e: e.line or 0)
    errors.raise_if_any()
    warnings: list[ConfigWarning] = []
    if not groups:
        warnings.append(ConfigWarning(path, None, "no resource groups: this cluster moves nothing"))
    return HaResources(tuple(groups), MappingProxyType(locations), tuple(warnings))


def read_haresources(path: Path, resolver: ServiceResolver) -> HaResources:
    """Read the haresources file at `path`; a missing file is a ConfigError naming it."""
    return parse_haresources(read(path, "Heartbeat's haresources", hash_at_word), path, resolver)


def _logical_lines(lines: tuple[str, ...], path: Path) -> list[list[_Token]]:
    """Join backslash-continued lines; drop comments (`#` at a word's start) and blanks."""
    result: list[list[_Token]] = []
    current: list[_Token] = []
    for number, raw in enumerate(lines, start=1):
        body = _COMMENT.split(raw, maxsplit=1)[0].rstrip(" \t\r\f\v")
        continued = body.endswith("\\")
        if continued:
            body = body[:-1]
        current.extend(_Token(word, path, number) for word in words(body))
        if not continued and current:
            result.append(current)
            current = []
    if current:
        result.append(current)
    return result


def _group(tokens: list[_Token], resolver: ServiceResolver, taken: set[str]) -> ResourceGroup:
    head, rest = tokens[0], tokens[1:]
    if _is_resource_like(head.text):
        head.fail(
            f"found {head.text!r} first; expected the preferred node's name, then resources "
            "(e.g. `masternginx 192.168.171.100/24/eth0:0 nginx`)",
            "syntax",
        )
    if not rest:
        head.fail(f"node {head.text!r} has no resources; expected `NODE RESOURCE...`", "syntax")
    resources = tuple(_resource(token, resolver) for token in rest)
    first = resources[0]
    vips = [r for r in resources if isinstance(r, VipResource)]
    base = str(vips[0].address) if vips else getattr(first, "name", "group")
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}-{suffix}", suffix + 1
    # Heartbeat lower-cases node names, so the preferred node matches in any case.
    return ResourceGroup(name, resources, preferred=head.text.lower())


def _is_resource_like(text: str) -> bool:
    return "/" in text or "::" in text or bool(_ADDRESS_LIKE.match(text))


def _resource(token: _Token, resolver: ServiceResolver) -> Resource:
    agent, sep, rest = token.text.partition("::")
    if agent in _VIP_AGENTS:
        if not rest:
            token.fail(
                f"{agent} needs an address; expected {agent}::IP[/prefix[/iface[/broadcast]]]"
            )
        return _vip(token, rest)
    if _ADDRESS_LIKE.match(token.text.split("/", 1)[0]):
        return _vip(token, token.text)
    if "/" in token.text and not sep:
        token.fail(
            f"found {token.text!r}; expected an address like 192.168.171.100/24/eth0:0 "
            "or a service name"
        )
    args = tuple(rest.split("::")) if sep else ()
    try:
        return resolver.resolve(agent, args)
    except ServiceNotFound as exc:
        token.fail(str(exc))


def _vip(token: _Token, spec: str) -> VipResource:
    """IP[/prefix[/iface[:label][/broadcast]]]; empty parts are left for the runtime to find."""
    parts = spec.split("/")
    if len(parts) > 4:
        token.fail(
            f"found {spec!r}; expected at most IP/prefix/interface/broadcast "
            "(e.g. 192.168.171.100/24/eth0:0)"
        )
    parts += [""] * (4 - len(parts))
    address_text, prefix_text, iface_text, broadcast_text = parts
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        token.fail(
            f"found {address_text!r} in {spec!r}; expected an IPv4 or IPv6 address", "bad-address"
        )
    prefix = _prefix(token, address, prefix_text) if prefix_text else None
    interface, label = _interface(token, iface_text) if iface_text else (None, None)
    broadcast = _broadcast(token, address, broadcast_text) if broadcast_text else None
    return VipResource(address, prefix, interface, label, broadcast)


def _prefix(token: _Token, address: IPAddress, text: str) -> int:
    bits = address.max_prefixlen
    if is_digits(text) and 1 <= int(text) <= bits:
        return int(text)
    if address.version == 4 and "." in text:
        try:  # old IPaddr also took a dotted netmask such as 255.255.255.0
            return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
        except ValueError:
            pass
    token.fail(
        f"prefix {text!r} for {address}; expected a prefix length from 1 to {bits}", "bad-number"
    )


def _interface(token: _Token, text: str) -> tuple[str, str | None]:
    iface, colon, suffix = text.partition(":")
    if not _IFACE.match(iface) or (colon and not suffix) or len(text) > _LABEL_MAX:
        token.fail(
            f"found {text!r}; expected an interface such as eth0, or eth0:0 with a label "
            f"(at most {_LABEL_MAX} characters)",
            "bad-address",
        )
    return iface, (text if colon else None)


def _broadcast(token: _Token, address: IPAddress, text: str) -> IPAddress:
    try:
        broadcast = ipaddress.ip_address(text)
    except ValueError:
        token.fail(f"broadcast {text!r}; expected an IPv4 address", "bad-address")
    if address.version != 4 or broadcast.version != 4:
        token.fail(f"broadcast {text!r} for {address}; broadcast exists only for IPv4 addresses")
    return broadcast
