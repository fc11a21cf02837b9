"""Inputs, outputs and messages of the pure core (`Node.step(now_s, input) -> Output`).

Everything here is a frozen, slotted dataclass or an enum. Messages cross the network:
`to_wire()` gives a JSON object (dict of str/int/float/bool/list) and `from_wire()` reads
one back with strict validation, because a peer's body is untrusted even after its MAC
checked out: unknown type, wrong field type, out-of-range number or over-long list ->
ValueError, never a half-built message.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from gossipha.core.membership import Digest

NodeId: TypeAlias = str
GroupName: TypeAlias = str

# Bounds on untrusted input (a datagram is at most 1400 bytes; these are generous).
MAX_NAME_CHARS = 64
MAX_GROUPS = 32
MAX_RELAY = 4
# Lease requests a heartbeat may carry (one per group the sender claims or runs).
MAX_CARRIED = 16
MAX_EPOCH = (1 << 53) - 1  # exact in JSON doubles
MAX_DURATION_S = 3600.0
DIGEST_KEY = "d"


# --------------------------------------------------------------------------- enums


class ResourceAction(enum.Enum):
    START = "start"
    STOP = "stop"


class AdminKind(enum.Enum):
    STANDBY = "standby"  # give up every group and stay ineligible (hb_standby)
    TAKEOVER = "takeover"  # become the preferred holder of every group (hb_takeover)
    MAINTENANCE_ON = "maintenance_on"  # watch only: nobody claims or hands over
    MAINTENANCE_OFF = "maintenance_off"


class StopReason(enum.Enum):
    LEASE_LOST = "lease_lost"  # could not renew: stop before any voter's promise can lapse
    HANDOVER = "handover"  # a better node is eligible (ping, health, takeover, failback)
    STANDBY = "standby"
    SHUTDOWN = "shutdown"
    START_FAILED = "start_failed"
    SUPERSEDED = "superseded"  # another node holds a higher epoch (adopted group lost)


class NoticeKind(enum.Enum):
    PEER_WARN = "peer_warn"
    PEER_DEAD = "peer_dead"
    PEER_RECOVERED = "peer_recovered"
    LINK_DOWN = "link_down"
    LINK_UP = "link_up"
    PING_LOST = "ping_lost"
    PING_BACK = "ping_back"
    FAILOVER_STARTED = "failover_started"  # we try to acquire a group
    FAILOVER_COMPLETED = "failover_completed"  # we started a group
    LEASE_LOST = "lease_lost"
    SPLIT_BRAIN_RISK = "split_brain_risk"  # the VIP answered while we were about to claim it
    NO_HOLDER = "no_holder"  # no eligible node for a group (alert)
    RESOURCE_FAILED = "resource_failed"
    ADMIN = "admin"
    PEER_JOINED = "peer_joined"
    PEER_SUSPECT = "peer_suspect"
    REFUTED = "refuted"  # we were accused and raised our incarnation


# --------------------------------------------------------------------------- wire helpers


def _obj(raw: object, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{what}: expected an object")
    return raw


def _str(raw: Mapping[str, Any], key: str, *, empty: bool = False) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or (not value and not empty):
        raise ValueError(f"{key}: expected a name of 1..{MAX_NAME_CHARS} characters")
    return value


def _int(raw: Mapping[str, Any], key: str, low: int = 0, high: int = MAX_EPOCH) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{key}: expected an integer in [{low}, {high}]")
    return value


def _inc(raw: Mapping[str, Any]) -> int:
    """The optional incarnation of a lease message (absent from peers before 1.2: 0)."""
    return _int(raw, "i") if "i" in raw else 0


def _float(raw: Mapping[str, Any], key: str, high: float = MAX_DURATION_S) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: expected a number")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= high:
        raise ValueError(f"{key}: expected a number in [0, {high}]")
    return value


def _bool(raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false")
    return value


def _list(raw: Mapping[str, Any], key: str, limit: int) -> list[Any]:
    value = raw.get(key)
    if not isinstance(value, list) or len(value) > limit:
        raise ValueError(f"{key}: expected a list of at most {limit} items")
    return value


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Held:
    """A group a node runs, with the epoch (fencing token) of its lease."""

    group: GroupName
    epoch: int

    def to_wire(self) -> list[Any]:
        return [self.group, self.epoch]

    @staticmethod
    def from_wire(raw: object) -> Held:
        if not isinstance(raw, list) or len(raw) != 2:
            raise ValueError("held: expected [group, epoch]")
        return Held(_str({"g": raw[0]}, "g"), _int({"e": raw[1]}, "e"))


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What a node says about itself; gossiped and relayed, newest (incarnation, version) wins.

    `ping_count` is the number of reachable ping groups; `unhealthy` the groups whose health
    check failed here; `holding` the groups it runs (the lease summary peers place by).
    """

    name: NodeId
    incarnation: int
    version: int
    ping_count: int = 0
    standby: bool = False
    maintenance: bool = False
    takeover: int = 0  # cluster-wide stamp of the latest `takeover` command; highest wins
    unhealthy: tuple[GroupName, ...] = ()
    holding: tuple[Held, ...] = ()

    def newer_than(self, other: NodeStatus) -> bool:
        return (self.incarnation, self.version) > (other.incarnation, other.version)

    def to_wire(self) -> dict[str, Any]:
        return {
            "n": self.name,
            "i": self.incarnation,
            "v": self.version,
            "p": self.ping_count,
            "s": self.standby,
            "m": self.maintenance,
            "t": self.takeover,
            "u": list(self.unhealthy),
            "h": [h.to_wire() for h in self.holding],
        }

    @staticmethod
    def from_wire(raw: object) -> NodeStatus:
        r = _obj(raw, "status")
        unhealthy = _list(r, "u", MAX_GROUPS)
        return NodeStatus(
            name=_str(r, "n"),
            incarnation=_int(r, "i"),
            version=_int(r, "v"),
            ping_count=_int(r, "p", 0, 1024),
            standby=_bool(r, "s"),
            maintenance=_bool(r, "m"),
            takeover=_int(r, "t"),
            unhealthy=tuple(_str({"g": g}, "g") for g in unhealthy),
            holding=tuple(Held.from_wire(h) for h in _list(r, "h", MAX_GROUPS)),
        )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The gossip heartbeat: membership digest, our status, a few relayed statuses, and
    the lease requests for this peer that fell due in the same step.

    `digest` is None for an out-of-round status push (a handover should not wait a beat);
    such a push is not a heartbeat for the failure detector. `requests` is None only in a
    heartbeat from a node that cannot carry them (protocol 1.0 before "lq": the key is
    absent); such a peer gets its requests as separate messages (docs/protocol.md).
    """

    status: NodeStatus
    relay: tuple[NodeStatus, ...] = ()
    digest: Digest | None = None
    requests: tuple[LeaseRequest, ...] | None = ()

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "t": "hb",
            "st": self.status.to_wire(),
            "r": [s.to_wire() for s in self.relay],
            DIGEST_KEY: None if self.digest is None else self.digest.to_wire(),
        }
        if self.requests is not None:
            body["lq"] = [r.to_wire() for r in self.requests]
        return body

    @staticmethod
    def from_wire(raw: Mapping[str, Any]) -> Heartbeat:
        relay = tuple(NodeStatus.from_wire(s) for s in _list(raw, "r", MAX_RELAY))
        d = raw.get(DIGEST_KEY)
        digest = None if d is None else Digest.from_wire(d)
        requests = None
        if "lq" in raw:
            requests = tuple(
                LeaseRequest.from_wire(_obj(q, "lq")) for q in _list(raw, "lq", MAX_CARRIED)
            )
        return Heartbeat(NodeStatus.from_wire(raw.get("st")), relay, digest, requests)


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """Ask a voter to promise `group` to the sender at `epoch` (new holder: a higher epoch).

    `seq` lets the sender time the promise from when it SENT this request. `inc` is the
    sender's incarnation (the run of its agent): a promise, its replies and its release
    belong to one run, so nothing late from an earlier run of the same node is taken for
    the current one (0: a peer from before protocol 1.2, which does not send it).
    """

    group: GroupName
    epoch: int
    seq: int
    inc: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {"t": "lreq", "g": self.group, "e": self.epoch, "q": self.seq, "i": self.inc}

    @staticmethod
    def from_wire(raw: Mapping[str, Any]) -> LeaseRequest:
        return LeaseRequest(_str(raw, "g"), _int(raw, "e", 1), _int(raw, "q"), _inc(raw))


@dataclass(frozen=True, slots=True)
class LeaseReply:
    """A voter's answer. Refused: `holder` is who it promised (may be ""), `busy_s` how long
    its promise still runs on its clock, `max_epoch` the highest epoch it has promised.
    `inc` echoes the request's: the claimant's run it answers."""

    group: GroupName
    epoch: int
    seq: int
    granted: bool
    holder: NodeId = ""
    max_epoch: int = 0
    busy_s: float = 0.0
    inc: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "t": "lrep",
            "g": self.group,
            "e": self.epoch,
            "q": self.seq,
            "ok": self.granted,
            "h": self.holder,
            "m": self.max_epoch,
            "b": self.busy_s,
            "i": self.inc,
        }

    @staticmethod
    def from_wire(raw: Mapping[str, Any]) -> LeaseReply:
        return LeaseReply(
            group=_str(raw, "g"),
            epoch=_int(raw, "e", 1),
            seq=_int(raw, "q"),
            granted=_bool(raw, "ok"),
            holder=_str(raw, "h", empty=True),
            max_epoch=_int(raw, "m"),
            busy_s=_float(raw, "b"),
            inc=_inc(raw),
        )


@dataclass(frozen=True, slots=True)
class LeaseRelease:
    """The holder stopped `group`: voters may promise it to someone else at once. It ends
    only the promise given to the sender's run `inc` (see LeaseRequest)."""

    group: GroupName
    epoch: int
    unused: bool = False  # the promise was never used to start anything
    inc: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {"t": "lrel", "g": self.group, "e": self.epoch, "u": self.unused, "i": self.inc}

    @staticmethod
    def from_wire(raw: Mapping[str, Any]) -> LeaseRelease:
        return LeaseRelease(_str(raw, "g"), _int(raw, "e", 1), _bool(raw, "u"), _inc(raw))


Message: TypeAlias = Heartbeat | LeaseRequest | LeaseReply | LeaseRelease


def message_from_wire(raw: object) -> Message:
    """The message in a packet body; ValueError for anything that is not exactly one."""
    body = _obj(raw, "body")
    kind = body.get("t")
    if kind == "hb":
        return Heartbeat.from_wire(body)
    if kind == "lreq":
        return LeaseRequest.from_wire(body)
    if kind == "lrep":
        return LeaseReply.from_wire(body)
    if kind == "lrel":
        return LeaseRelease.from_wire(body)
    raise ValueError(f"unknown message type {kind!r}")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; sent at (or after) the last Output's next_wakeup_s."""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    link: str
    sender: NodeId
    message: Message


@dataclass(frozen=True, slots=True)
class PingResult:
    """Reachability of one ping group (debounced by the runtime with deadping)."""

    group: str
    reachable: bool


@dataclass(frozen=True, slots=True)
class VipProbeResult:
    """Outcome of the duplicate-address probe asked by ProbeVip(group)."""

    group: GroupName
    answered_by_other: bool


@dataclass(frozen=True, slots=True)
class ResourceResult:
    """The outcome of a StartGroup/StopGroup. `epoch` is the action's: a stop that outlives
    its claim reports after the next claim began, and must not count as that one's (swarm
    seed 14,805)."""

    group: GroupName
    action: ResourceAction
    ok: bool
    epoch: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class HealthResult:
    group: GroupName
    healthy: bool


@dataclass(frozen=True, slots=True)
class LoopLag:
    lag_s: float


@dataclass(frozen=True, slots=True)
class Stalled:
    duration_s: float


@dataclass(frozen=True, slots=True)
class Resumed:
    pass


@dataclass(frozen=True, slots=True)
class AdminCommand:
    kind: AdminKind


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Graceful stop: stop every group, then release its lease so a peer takes over at once."""


@dataclass(frozen=True, slots=True)
class FoundRunning:
    """At start: groups whose VIP is already on this host (left by an agent that was killed)."""

    groups: tuple[GroupName, ...]


Input: TypeAlias = (
    Tick
    | MessageReceived
    | PingResult
    | VipProbeResult
    | ResourceResult
    | HealthResult
    | LoopLag
    | Stalled
    | Resumed
    | AdminCommand
    | Shutdown
    | FoundRunning
)


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class StartGroup:
    group: GroupName
    epoch: int


@dataclass(frozen=True, slots=True)
class StopGroup:
    group: GroupName
    epoch: int
    reason: StopReason


@dataclass(frozen=True, slots=True)
class ProbeVip:
    group: GroupName


Action: TypeAlias = StartGroup | StopGroup | ProbeVip


@dataclass(frozen=True, slots=True)
class Send:
    """Send `message` to node `to`; `link` None means every link that reaches it."""

    to: NodeId
    message: Message
    link: str | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """Something for logs, metrics and alert hooks."""

    kind: NoticeKind
    peer: NodeId | None = None
    group: GroupName | None = None
    link: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Output:
    """All the work one step asks for. The runtime performs `actions` in order (stops first),
    then `sends`, logs `notices`, and calls step(Tick) again at `next_wakeup_s`."""

    sends: tuple[Send, ...] = ()
    actions: tuple[Action, ...] = ()
    notices: tuple[Notice, ...] = ()
    next_wakeup_s: float = math.inf
