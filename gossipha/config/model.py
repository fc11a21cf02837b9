"""The configuration model every other part of gossipha reads.

Both sources (the tutorial's /etc/ha.d and native gossipha.toml) fill these frozen
dataclasses; nothing downstream knows which source it came from. Durations are float
seconds (`_s`), rates are plain floats, addresses are `ipaddress` objects.
The model is resolved for one node: `Config.node_name` is the node this agent runs as.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORT = 694
# The default voter set's size: witnesses, then members in config order, up to this many
# (fewer when there are fewer nodes; odd above two). See `select_voters`.
DEFAULT_MAX_VOTERS = 5
# `[auth] mode` values, in roll-out order (gossipha.wire.keyring.AuthMode has the same values).
AUTH_MODES = ("accept-unsigned", "sign-accept-both", "enforce")


class LinkKind(enum.Enum):
    """How heartbeats travel on a link (Heartbeat's ucast / bcast / mcast)."""

    UCAST = "ucast"
    BCAST = "bcast"
    MCAST = "mcast"


class AuthMethod(enum.Enum):
    """Packet authentication; `crc` is Heartbeat's "no authentication"."""

    CRC = "crc"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"

    @property
    def legacy(self) -> bool:
        """Heartbeat's weak methods: accepted for migration, warned about at start."""
        return self in (AuthMethod.CRC, AuthMethod.MD5, AuthMethod.SHA1)


class NodeRole(enum.Enum):
    """A member can hold resource groups; a witness only votes on leases."""

    MEMBER = "member"
    WITNESS = "witness"


class ServiceKind(enum.Enum):
    """Where a service resource's start/stop/status come from."""

    RESOURCE_D = "resource.d"  # <confdir>/resource.d/NAME, Heartbeat's own LSB-ish scripts
    LSB = "lsb"  # /etc/init.d/NAME
    SYSTEMD = "systemd"  # NAME.service
    OCF = "ocf"  # /usr/lib/ocf/resource.d/PROVIDER/TYPE
    COMMAND = "command"  # plain commands given in native config


class HealthCheckKind(enum.Enum):
    HTTP = "http"
    COMMAND = "command"


@dataclass(frozen=True, slots=True)
class Node:
    """A cluster member or witness, by the name it reports (`uname -n`)."""

    name: str
    role: NodeRole = NodeRole.MEMBER
    # What the config says (native `voter = true/false`); None: not said. Whether the node
    # votes is decided for the whole cluster by `select_voters` (Config.voters).
    voter: bool | None = None
    # Address of this node on each link, by link name (native config; optional).
    addresses: tuple[tuple[str, IPAddress], ...] = ()


@dataclass(frozen=True, slots=True)
class Link:
    """One heartbeat path, bound to one interface so redundant links are separate paths.

    ucast: `peers` are the addresses heartbeats are sent to (Heartbeat: one `ucast` line each).
    bcast: `peers` is empty; packets go to the interface's broadcast address.
    mcast: `group` is the multicast group; `ttl` and `loop` as Heartbeat's mcast line.
    """

    name: str
    kind: LinkKind
    interface: str
    port: int = DEFAULT_PORT
    peers: tuple[IPAddress, ...] = ()
    group: IPAddress | None = None
    ttl: int = 1
    loop: bool = False


@dataclass(frozen=True, slots=True)
class PingGroup:
    """Ping nodes that count as one: reachable while any member answers (Heartbeat ping_group).

    A plain `ping ADDR` line is a group of one named after the address.
    """

    name: str
    addresses: tuple[IPAddress, ...]
    interface: str | None = None


@dataclass(frozen=True, slots=True)
class Timings:
    """Failure-detection and lease timings, all in seconds (see docs/failure-detection.md)."""

    keepalive_s: float
    deadtime_s: float
    warntime_s: float
    initdead_s: float
    # Ping nodes: probe interval and how long without an answer before a ping node is lost.
    ping_interval_s: float
    deadping_s: float
    # Phi-accrual thresholds and window (Hayashibara et al.).
    phi_warn: float = 3.0
    phi_dead: float = 8.0
    phi_window: int = 100
    phi_min_std_s: float = 0.05
    phi_acceptable_pause_s: float = 0.0
    # Quorum lease: duration of a voter's promise, and the clock-drift rate bound.
    lease_s: float = 2.0
    max_drift: float = 0.01
    # Duplicate-address probe of a VIP before it is claimed (RFC 5227 style).
    vip_probe_count: int = 3
    vip_probe_interval_s: float = 0.05
    # auto_failback waits this long after the preferred node is back and healthy.
    failback_delay_s: float = 5.0


@dataclass(frozen=True, slots=True)
class AuthKey:
    key_id: int
    method: AuthMethod
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Auth:
    """The keyring from an authkeys file: `active` signs, every key in `keys` verifies."""

    path: Path
    active: int
    keys: tuple[AuthKey, ...]
    # `crc` (no authentication) is refused unless this is set explicitly.
    allow_unauthenticated: bool = False
    # One of AUTH_MODES, set for a staged turn-on of authentication (docs/security.md);
    # None: enforce (accept-unsigned when the active key is crc and that is allowed).
    mode: str | None = None

    @property
    def active_key(self) -> AuthKey:
        for key in self.keys:
            if key.key_id == self.active:
                return key
        raise AssertionError(f"active key {self.active} not in keyring")  # validated on load


@dataclass(frozen=True, slots=True)
class VipResource:
    """A floating address: `ip/prefix` on `interface` with `label` (e.g. eth0:0).

    `prefix` and `interface` may be None: the runtime then uses the interface whose
    subnet holds the address, and that subnet's prefix (Heartbeat's findif).
    """

    address: IPAddress
    prefix: int | None = None
    interface: str | None = None
    label: str | None = None
    broadcast: IPAddress | None = None


@dataclass(frozen=True, slots=True)
class ServiceResource:
    """A service started in group order: `name` with `args` as haresources `name::a::b`.

    `path` is the script for RESOURCE_D/LSB/OCF; `unit` for SYSTEMD; `start`/`stop`/`status`
    command lines for COMMAND.
    """

    name: str
    kind: ServiceKind
    args: tuple[str, ...] = ()
    path: Path | None = None
    unit: str | None = None
    ocf_provider: str | None = None
    ocf_type: str | None = None
    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    timeout_s: float = 30.0


Resource: TypeAlias = VipResource | ServiceResource


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A periodic check of a group; failures restart it locally, then give it up."""

    name: str
    kind: HealthCheckKind
    interval_s: float = 1.0
    timeout_s: float = 1.0
    # HTTP
    url: str | None = None
    expect_status: int = 200
    expect_body: str | None = None
    # COMMAND
    command: tuple[str, ...] = ()
    # Consecutive failures before a local restart; restarts before giving the group up.
    failures: int = 3
    max_restarts: int = 2


@dataclass(frozen=True, slots=True)
class ResourceGroup:
    """Resources that move together, started in order and stopped in reverse.

    Placement: the preferred node (haresources' first word) or per-node priorities
    (higher wins); `priorities` is empty when only `preferred` is given.
    """

    name: str
    resources: tuple[Resource, ...]
    preferred: str | None = None
    priorities: tuple[tuple[str, int], ...] = ()
    health_checks: tuple[HealthCheck, ...] = ()

    @property
    def vips(self) -> tuple[VipResource, ...]:
        return tuple(r for r in self.resources if isinstance(r, VipResource))


@dataclass(frozen=True, slots=True)
class Respawn:
    """A program the agent keeps running (Heartbeat's `respawn USER COMMAND`)."""

    user: str
    command: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Logging:
    """Heartbeat's log destinations; stderr is always on."""

    logfile: Path | None = None
    debugfile: Path | None = None
    facility: str | None = None  # syslog facility, e.g. local0; None = no syslog
    debug: int = 0


@dataclass(frozen=True, slots=True)
class Hook:
    """An executable run on events, with the event in its environment."""

    path: Path
    events: tuple[str, ...] = ()  # empty = every event
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Observe:
    """Metrics/status HTTP address, the admin socket, hooks and Alertmanager."""

    listen_address: str = "127.0.0.1"
    listen_port: int = 9694
    admin_socket: Path = Path("/run/gossipha/admin.sock")
    hooks: tuple[Hook, ...] = ()
    max_concurrent_hooks: int = 4
    alertmanager_url: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """Everything one agent needs, resolved for `node_name`."""

    source: Path  # the ha.d directory or the TOML file
    cluster_name: str
    node_name: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    ping_groups: tuple[PingGroup, ...]
    timings: Timings
    auth: Auth
    groups: tuple[ResourceGroup, ...]
    auto_failback: bool
    # Heartbeat's ipfail: move groups away from a node that lost its ping nodes
    # while a peer still reaches them.
    ping_failover: bool = True
    respawns: tuple[Respawn, ...] = ()
    logging: Logging = Logging()
    observe: Observe = Observe()

    @property
    def peers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.name != self.node_name)

    @property
    def members(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role is NodeRole.MEMBER)

    @property
    def voters(self) -> tuple[Node, ...]:
        """The nodes that vote on leases, in config order (`select_voters`)."""
        return select_voters(self.nodes)

    @property
    def voters_explicit(self) -> bool:
        """True when some node says `voter`: the set is as written, not the default rule."""
        return any(n.voter is not None for n in self.nodes)

    def votes(self, name: str) -> bool:
        return any(n.name == name for n in self.voters)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key reading digit runs as numbers: n2 before n10, as an operator expects."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    )


def select_voters(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
    """Who votes on leases, from the node list alone, so every node computes the same set.

    No node says `voter`: every witness, then members by name (sorted, so hosts whose
    files list the nodes in another order still agree) until there are
    `DEFAULT_MAX_VOTERS` voters, or as many as there are nodes rounded down to an odd
    number when there are more than two (4 members -> 3 voters: a fourth voter raises
    the majority to 3 and tolerates no more failures; 2 members -> 2, as the two-node
    rules of docs/design.md section 2 expect).
    Some node says `voter`: as written. A witness votes unless it says `voter = false`.
    When some member says `voter = true`, exactly those members vote; otherwise every
    member votes except those saying `voter = false` (the rule before the default bound).
    """
    witnesses = [n for n in nodes if n.role is NodeRole.WITNESS]
    members = [n for n in nodes if n.role is NodeRole.MEMBER]
    if all(n.voter is None for n in nodes):
        total = len(nodes)
        target = total if total <= 2 else min(DEFAULT_MAX_VOTERS, total - (1 - total % 2))
        chosen = {n.name for n in witnesses}
        by_name = sorted(members, key=lambda n: natural_key(n.name))
        chosen |= {n.name for n in by_name[: max(0, target - len(witnesses))]}
    else:
        named = any(n.voter is True for n in members)
        chosen = {n.name for n in witnesses if n.voter is not False}
        chosen |= {n.name for n in members if (n.voter is True if named else n.voter is not False)}
    return tuple(n for n in nodes if n.name in chosen)
