"""The cluster at a glance: the /status document, its builder and its text rendering.

`ClusterStatus` is built by the runtime from core snapshots (membership snapshot, the
node's public accessors, recent notices); `to_json` gives the stable /status schema
(documented in docs/observability.md, `schema` bumps on incompatible change) and
`render_text` is what `gossipha status` prints, crm_mon style. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gossipha.core.membership import MembershipSnapshot
from gossipha.core.node import Node
from gossipha.core.types import Notice

SCHEMA_VERSION = 1
DEFAULT_EVENTS = 50


@dataclass(frozen=True, slots=True)
class LinkView:
    name: str
    state: str  # unknown | up | down
    phi: float | None  # None: infinite or not computable
    silence_s: float | None  # None: never heard on this link
    mean_s: float
    std_s: float


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    state: str  # self | unknown | alive | warn | suspect | dead
    incarnation: int | None
    phi: float | None = None
    silence_s: float | None = None
    links: tuple[LinkView, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupView:
    name: str
    holder: str | None
    epoch: int  # our lease epoch, or the holder's as gossiped; 0 unknown
    phase: str  # our phase for the group: idle | acquiring | probing | running | stopping
    lease_remaining_s: float | None = None  # only known on the holder
    healthy: bool | None = None  # last health check here; None: none configured/run


@dataclass(frozen=True, slots=True)
class PingView:
    name: str
    reachable: bool
    rtt_s: float | None = None


@dataclass(frozen=True, slots=True)
class EventView:
    wall_ts: float
    kind: str
    peer: str | None = None
    group: str | None = None
    link: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """Everything /status serves; one value, built in one step so a reader never sees a mix."""

    node: str
    cluster: str
    wall_ts: float
    incarnation: int
    nodes: tuple[NodeView, ...]
    groups: tuple[GroupView, ...]
    ping: tuple[PingView, ...] = ()
    events: tuple[EventView, ...] = ()
    standby: bool = False
    maintenance: bool = False


class EventLog:
    """The last `capacity` notices with their wall time; bounded, oldest dropped first."""

    __slots__ = ("_events",)

    def __init__(self, capacity: int = DEFAULT_EVENTS) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._events: deque[EventView] = deque(maxlen=capacity)

    def record(self, notice: Notice, wall_ts: float) -> None:
        self._events.append(
            EventView(
                wall_ts=wall_ts,
                kind=notice.kind.value,
                peer=notice.peer,
                group=notice.group,
                link=notice.link,
                detail=notice.detail,
            )
        )

    def items(self) -> tuple[EventView, ...]:
        return tuple(self._events)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def node_views(snapshot: MembershipSnapshot) -> tuple[NodeView, ...]:
    """Ourselves first (state "self"), then each peer as the membership snapshot sees it."""
    views = [NodeView(snapshot.name, "self", snapshot.incarnation)]
    for p in snapshot.peers:
        links = tuple(
            LinkView(
                name=ln.link,
                state=ln.state.value,
                phi=_finite(ln.phi),
                silence_s=ln.silence_s,
                mean_s=ln.mean_s,
                std_s=ln.std_s,
            )
            for ln in p.links
        )
        views.append(
            NodeView(
                name=p.name,
                state=p.state.value,
                incarnation=p.incarnation,
                phi=_finite(p.phi),
                silence_s=p.silence_s,
                links=links,
            )
        )
    return tuple(views)


def group_views(
    node: Node,
    holders: Mapping[str, tuple[str, int]] | None = None,
    lease_remaining_s: Mapping[str, float] | None = None,
    healthy: Mapping[str, bool] | None = None,
) -> tuple[GroupView, ...]:
    """Groups of `node`'s config from its public accessors; `holders` maps a group we do
    not run to (holder, epoch) as gossiped, when the runtime knows it."""
    running = set(node.running())
    out = []
    for g in node.config.groups:
        name = g.name
        if name in running:
            holder: str | None = node.name
            epoch = node.epoch(name)
        elif holders is not None and name in holders:
            holder, epoch = holders[name]
        else:
            holder, epoch = None, 0
        try:
            phase = node.phase(name).value
            epoch = epoch or node.epoch(name)
        except KeyError:  # a witness keeps no group state
            phase = "idle"
        out.append(
            GroupView(
                name=name,
                holder=holder,
                epoch=epoch,
                phase=phase,
                lease_remaining_s=(lease_remaining_s or {}).get(name),
                healthy=(healthy or {}).get(name),
            )
        )
    return tuple(out)


def build_status(
    *,
    cluster: str,
    membership: MembershipSnapshot,
    groups: Sequence[GroupView],
    wall_ts: float,
    ping: Sequence[PingView] = (),
    events: Iterable[EventView] = (),
    standby: bool = False,
    maintenance: bool = False,
) -> ClusterStatus:
    return ClusterStatus(
        node=membership.name,
        cluster=cluster,
        wall_ts=wall_ts,
        incarnation=membership.incarnation,
        nodes=node_views(membership),
        groups=tuple(groups),
        ping=tuple(ping),
        events=tuple(events),
        standby=standby,
        maintenance=maintenance,
    )


# ---------------------------------------------------------------------------- JSON


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def to_json(status: ClusterStatus) -> dict[str, Any]:
    """The /status document (schema 1). Non-finite numbers become null."""
    return {
        "schema": SCHEMA_VERSION,
        "node": status.node,
        "cluster": status.cluster,
        "wall_ts": status.wall_ts,
        "incarnation": status.incarnation,
        "standby": status.standby,
        "maintenance": status.maintenance,
        "nodes": [
            {
                "name": n.name,
                "state": n.state,
                "incarnation": n.incarnation,
                "phi": _num(n.phi),
                "silence_s": _num(n.silence_s),
                "links": [
                    {
                        "name": ln.name,
                        "state": ln.state,
                        "phi": _num(ln.phi),
                        "silence_s": _num(ln.silence_s),
                        "mean_s": _num(ln.mean_s),
                        "std_s": _num(ln.std_s),
                    }
                    for ln in n.links
                ],
            }
            for n in status.nodes
        ],
        "groups": [
            {
                "name": g.name,
                "holder": g.holder,
                "epoch": g.epoch,
                "phase": g.phase,
                "lease_remaining_s": _num(g.lease_remaining_s),
                "healthy": g.healthy,
            }
            for g in status.groups
        ],
        "ping": [
            {"name": p.name, "reachable": p.reachable, "rtt_s": _num(p.rtt_s)} for p in status.ping
        ],
        "events": [
            {
                "wall_ts": e.wall_ts,
                "time": _iso(e.wall_ts),
                "kind": e.kind,
                "peer": e.peer,
                "group": e.group,
                "link": e.link,
                "detail": e.detail,
            }
            for e in status.events
        ],
    }


def _iso(wall_ts: float) -> str:
    return datetime.fromtimestamp(wall_ts, UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------------- text


def _fmt(x: object, spec: str = ".2f", none: str = "-") -> str:
    if x is None:
        return none
    if isinstance(x, int | float) and not isinstance(x, bool):
        return format(x, spec)
    return str(x)


def render_text(doc: Mapping[str, Any], max_events: int = 10) -> str:
    """crm_mon-like view of a /status document (the JSON form, so the CLI needs no core)."""
    lines: list[str] = []
    flags = [f for f in ("standby", "maintenance") if doc.get(f)]
    head = f"Cluster {doc.get('cluster', '?')}  node {doc.get('node', '?')}"
    if doc.get("wall_ts") is not None:
        head += f"  at {_iso(float(doc['wall_ts']))}"
    if flags:
        head += "  [" + ", ".join(flags) + "]"
    lines.append(head)
    lines.append("")
    lines.append("Nodes:")
    for n in doc.get("nodes", []):
        inc = _fmt(n.get("incarnation"), "d")
        if n.get("state") == "self":
            lines.append(f"  * {n['name']:<20} self      incarnation {inc}")
            continue
        lines.append(
            f"    {n['name']:<20} {n.get('state', '?'):<9} incarnation {inc}"
            f"  phi {_fmt(n.get('phi'), '.2f', 'inf')}  silent {_fmt(n.get('silence_s'))}s"
        )
        for ln in n.get("links", []):
            lines.append(
                f"      link {ln['name']:<14} {ln.get('state', '?'):<7}"
                f" phi {_fmt(ln.get('phi'), '.2f', 'inf'):>6}"
                f"  silent {_fmt(ln.get('silence_s')):>6}s"
                f"  mean {_fmt(ln.get('mean_s'), '.3f')}s  jitter {_fmt(ln.get('std_s'), '.3f')}s"
            )
    lines.append("")
    lines.append("Groups:")
    groups = doc.get("groups", [])
    if not groups:
        lines.append("    (none)")
    for g in groups:
        holder = g.get("holder") or "NO HOLDER"
        extra = ""
        if g.get("lease_remaining_s") is not None:
            extra += f"  lease {_fmt(g['lease_remaining_s'])}s"
        if g.get("healthy") is False:
            extra += "  UNHEALTHY"
        lines.append(
            f"    {g['name']:<20} holder {holder:<16} epoch {_fmt(g.get('epoch'), 'd')}"
            f"  phase {g.get('phase', '?')}{extra}"
        )
    ping = doc.get("ping", [])
    if ping:
        lines.append("")
        lines.append("Ping nodes:")
        for p in ping:
            state = "reachable" if p.get("reachable") else "LOST"
            rtt = p.get("rtt_s")
            rtt_txt = f"  rtt {rtt * 1000:.1f}ms" if isinstance(rtt, int | float) else ""
            lines.append(f"    {p['name']:<20} {state}{rtt_txt}")
    events = list(doc.get("events", []))[-max_events:]
    if events:
        lines.append("")
        lines.append("Recent events:")
        for e in events:
            what = " ".join(
                f"{k}={e[k]}" for k in ("peer", "group", "link") if e.get(k) is not None
            )
            detail = f" ({e['detail']})" if e.get("detail") else ""
            when = e.get("time") or _iso(float(e.get("wall_ts", 0.0)))
            lines.append(f"    {when}  {e.get('kind', '?'):<18} {what}{detail}".rstrip())
    return "\n".join(lines) + "\n"
