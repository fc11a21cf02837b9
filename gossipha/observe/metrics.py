"""Prometheus collectors for one agent, fed by the runtime from core snapshots and notices.

No global state: everything is registered on the `CollectorRegistry` passed in (built in
cli.py). Names are `gossipha_*` with the unit last. Labels are bounded: `peer` and `link`
and `group` take configured names only (values outside the allow-lists given at
construction are dropped and counted in `gossipha_metrics_label_dropped_total`), `state`,
`phase`, `reason` and `kind` take enum values. Gauges are written only when their value
changed, so a scrape-rate update loop costs a dict lookup per series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
)

from gossipha import __version__
from gossipha.core.membership import LinkState, PeerState
from gossipha.core.node import Phase
from gossipha.core.types import (
    Action,
    Notice,
    NoticeKind,
    ProbeVip,
    StartGroup,
    StopGroup,
    StopReason,
)
from gossipha.observe.status import ClusterStatus
from gossipha.wire.reject import RejectCounter, RejectReason

# Inter-arrival buckets as multiples of keepalive: a healthy link sits around 1.0; the
# tail (2..16) is where warntime and deadtime live.
INTERARRIVAL_FACTORS: Final = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0)
PEER_STATES: Final = tuple(s.value for s in PeerState)
LINK_STATES: Final = tuple(s.value for s in LinkState)
PHASES: Final = tuple(p.value for p in Phase)
# Why this node started a group; inferred from the notices that came before the start.
FAILOVER_REASONS: Final = ("startup", "peer_dead", "ping", "admin", "lease_lost", "other")
DIRECTIONS: Final = ("sent", "received")

_CAUSE: Final = {
    NoticeKind.PEER_DEAD: "peer_dead",
    NoticeKind.PING_LOST: "ping",
    NoticeKind.PING_BACK: "ping",
    NoticeKind.ADMIN: "admin",
    NoticeKind.LEASE_LOST: "lease_lost",
}
_TRANSITIONS: Final = {
    NoticeKind.PEER_JOINED: "alive",
    NoticeKind.PEER_RECOVERED: "alive",
    NoticeKind.PEER_WARN: "warn",
    NoticeKind.PEER_SUSPECT: "suspect",
    NoticeKind.PEER_DEAD: "dead",
}


class Metrics:
    """Every gossipha collector on one registry; the runtime calls the methods below."""

    def __init__(
        self,
        registry: CollectorRegistry,
        cluster: str,
        node: str,
        *,
        keepalive_s: float = 1.0,
        peers: Iterable[str] | None = None,
        links: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        ping_groups: Iterable[str] | None = None,
        process_collector: bool = True,
    ) -> None:
        if not keepalive_s > 0:
            raise ValueError(f"keepalive_s must be positive, got {keepalive_s!r}")
        self.registry = registry
        self.cluster = cluster
        self.node = node
        self._peers = None if peers is None else frozenset(peers)
        self._links = None if links is None else frozenset(links)
        self._groups = None if groups is None else frozenset(groups)
        self._ping_groups = None if ping_groups is None else frozenset(ping_groups)
        self._last: dict[tuple[int, tuple[str, ...]], float] = {}
        self._max_lag_s = 0.0
        self._last_arrival_s: dict[tuple[str, str], float] = {}
        # Label children of the per-packet series, looked up once: `.labels()` takes a
        # lock and validates the labels, and the idle agent counts ~70 packets a second.
        # Never removed, so a cached child is always the registered one.
        self._packet_children: dict[tuple[str, str], tuple[Counter, Counter]] = {}
        self._heartbeat_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._cause: str = "startup"
        self._holders: dict[str, str | None] = {}
        self._rejects_seen: dict[RejectReason, int] = {}
        r = registry

        self.info = Info("gossipha_agent", "This agent: cluster, node, version.", registry=r)
        self.info.info({"cluster": cluster, "node": node, "version": __version__})
        self.label_dropped = Counter(
            "gossipha_metrics_label_dropped_total",
            "Updates ignored because a label value was not a configured name.",
            registry=r,
        )

        # ---- heartbeats, per peer (any path) and per link
        self.interarrival = Histogram(
            "gossipha_heartbeat_interarrival_seconds",
            "Time between consecutive heartbeats from a peer on a link.",
            ["peer", "link"],
            buckets=[keepalive_s * f for f in INTERARRIVAL_FACTORS],
            registry=r,
        )
        self.heartbeats = Counter(
            "gossipha_heartbeats_received_total",
            "Heartbeats received from a peer on a link.",
            ["peer", "link"],
            registry=r,
        )
        self.peer_silence = Gauge(
            "gossipha_peer_silence_seconds",
            "Seconds since the peer was last heard on any path (NaN: never).",
            ["peer"],
            registry=r,
        )
        self.peer_phi = Gauge(
            "gossipha_peer_phi",
            "Phi-accrual suspicion of the peer on any path (+Inf: certainly silent).",
            ["peer"],
            registry=r,
        )
        self.peer_jitter = Gauge(
            "gossipha_peer_jitter_seconds",
            "Standard deviation of the peer's heartbeat inter-arrival (any path).",
            ["peer"],
            registry=r,
        )
        self.peer_mean = Gauge(
            "gossipha_peer_interarrival_mean_seconds",
            "Mean heartbeat inter-arrival from the peer (any path).",
            ["peer"],
            registry=r,
        )
        self.peer_state = Gauge(
            "gossipha_peer_state",
            "1 for the peer's current state (state-set: unknown/alive/warn/suspect/dead).",
            ["peer", "state"],
            registry=r,
        )
        self.peer_incarnation = Gauge(
            "gossipha_peer_incarnation",
            "The peer's incarnation (rises on every restart or refutation).",
            ["peer"],
            registry=r,
        )
        self.peer_transitions = Counter(
            "gossipha_peer_transitions_total",
            "Peer state changes seen here, by the state entered.",
            ["peer", "state"],
            registry=r,
        )
        self.link_silence = Gauge(
            "gossipha_link_silence_seconds",
            "Seconds since the peer was last heard on this link (NaN: never).",
            ["peer", "link"],
            registry=r,
        )
        self.link_phi = Gauge(
            "gossipha_link_phi", "Phi-accrual suspicion per link.", ["peer", "link"], registry=r
        )
        self.link_jitter = Gauge(
            "gossipha_link_jitter_seconds",
            "Standard deviation of heartbeat inter-arrival on this link.",
            ["peer", "link"],
            registry=r,
        )
        self.link_mean = Gauge(
            "gossipha_link_interarrival_mean_seconds",
            "Mean heartbeat inter-arrival on this link.",
            ["peer", "link"],
            registry=r,
        )
        self.link_state = Gauge(
            "gossipha_link_state",
            "1 for the link's current state (state-set: unknown/up/down).",
            ["peer", "link", "state"],
            registry=r,
        )
        self.phi_threshold = Gauge(
            "gossipha_phi_threshold",
            "Configured phi thresholds (level=warn|dead), to draw against phi.",
            ["level"],
            registry=r,
        )
        self.incarnation = Gauge("gossipha_incarnation", "This node's own incarnation.", registry=r)

        # ---- groups and leases
        self.group_held = Gauge(
            "gossipha_group_held",
            "1 while THIS node runs the group (summed across nodes: must never exceed 1).",
            ["group"],
            registry=r,
        )
        self.group_holder = Gauge(
            "gossipha_group_holder",
            "1 for the node this agent believes holds the group (holder label; absent: none).",
            ["group", "holder"],
            registry=r,
        )
        self.group_has_holder = Gauge(
            "gossipha_group_has_holder",
            "1 when this agent knows a live holder of the group, else 0.",
            ["group"],
            registry=r,
        )
        self.lease_epoch = Gauge(
            "gossipha_lease_epoch",
            "Lease epoch (fencing token) of the group.",
            ["group"],
            registry=r,
        )
        self.lease_remaining = Gauge(
            "gossipha_lease_remaining_seconds",
            "Seconds left on the lease this node holds for the group (0 when not holding).",
            ["group"],
            registry=r,
        )
        self.group_phase = Gauge(
            "gossipha_group_phase",
            "1 for this node's phase for the group (idle/acquiring/probing/running/stopping).",
            ["group", "phase"],
            registry=r,
        )
        self.group_healthy = Gauge(
            "gossipha_group_healthy",
            "Last health-check result for the group here: 1 ok, 0 failed, NaN none.",
            ["group"],
            registry=r,
        )
        self.health_checks = Counter(
            "gossipha_health_checks_total",
            "Health-check results for the group here.",
            ["group", "result"],
            registry=r,
        )
        self.last_failover = Gauge(
            "gossipha_last_failover_timestamp_seconds",
            "Wall time (Unix seconds) this node last started the group.",
            ["group"],
            registry=r,
        )
        self.failovers = Counter(
            "gossipha_failovers_total",
            "Times this node started the group, by the cause seen just before.",
            ["group", "reason"],
            registry=r,
        )
        self.stops = Counter(
            "gossipha_group_stops_total",
            "Times this node stopped the group, by stop reason.",
            ["group", "reason"],
            registry=r,
        )
        self.resource_failures = Counter(
            "gossipha_resource_failures_total",
            "Resource start/stop failures for the group here.",
            ["group"],
            registry=r,
        )
        self.vip_probes = Counter(
            "gossipha_vip_probes_total",
            "Duplicate-address probes before a claim.",
            ["group"],
            registry=r,
        )
        self.notices = Counter(
            "gossipha_notices_total",
            "Notices (events) from the core, by kind.",
            ["kind"],
            registry=r,
        )

        # ---- packets
        self.packets = Counter(
            "gossipha_packets_total",
            "Datagrams sent or received (after verification) per link.",
            ["link", "direction"],
            registry=r,
        )
        self.packet_bytes = Counter(
            "gossipha_packet_bytes_total",
            "Bytes of datagrams sent or received per link.",
            ["link", "direction"],
            registry=r,
        )
        self.rejects = Counter(
            "gossipha_packets_rejected_total",
            "Datagrams dropped before reaching the core, by reason.",
            ["reason"],
            registry=r,
        )

        # ---- ping nodes, loop, alerting side channels
        self.ping_reachable = Gauge(
            "gossipha_ping_reachable",
            "1 while the ping group answers, else 0.",
            ["ping_group"],
            registry=r,
        )
        self.ping_rtt = Gauge(
            "gossipha_ping_rtt_seconds",
            "Last round-trip time to the ping group (NaN when lost).",
            ["ping_group"],
            registry=r,
        )
        self.loop_lag = Gauge(
            "gossipha_event_loop_lag_seconds",
            "Latest measured event-loop lag (scheduling delay of a timer).",
            registry=r,
        )
        self.loop_lag_max = Gauge(
            "gossipha_event_loop_lag_max_seconds",
            "Largest event-loop lag since start.",
            registry=r,
        )
        self.hook_runs = Counter(
            "gossipha_hook_runs_total",
            "Alert hook runs by result (ok/failed/timeout/error).",
            ["result"],
            registry=r,
        )
        self.hooks_dropped = Counter(
            "gossipha_hook_events_dropped_total",
            "Hook events dropped because the hook queue was full.",
            registry=r,
        )
        self.alertmanager_pushes = Counter(
            "gossipha_alertmanager_pushes_total",
            "Pushes to Alertmanager by result (ok/failed).",
            ["result"],
            registry=r,
        )
        self.alertmanager_dropped = Counter(
            "gossipha_alertmanager_alerts_dropped_total",
            "Alert updates dropped because the Alertmanager queue was full.",
            registry=r,
        )

        if process_collector:
            ProcessCollector(registry=r)

        for reason in RejectReason:
            self.rejects.labels(reason.value)
        for kind in NoticeKind:
            self.notices.labels(kind.value)
        for result in ("ok", "failed", "timeout", "error"):
            self.hook_runs.labels(result)
        for result in ("ok", "failed"):
            self.alertmanager_pushes.labels(result)
        for g in self._groups or ():
            self._init_group(g)

    # ------------------------------------------------------------------ helpers

    def _ok(self, allowed: frozenset[str] | None, value: str | None) -> bool:
        if value is None or (allowed is not None and value not in allowed):
            self.label_dropped.inc()
            return False
        return True

    def _set(self, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        """Set a gauge child only when its value changed (NaN compares equal to NaN)."""
        key = (id(gauge), labels)
        old = self._last.get(key)
        if old is not None and (old == value or (math.isnan(old) and math.isnan(value))):
            return
        self._last[key] = value
        (gauge.labels(*labels) if labels else gauge).set(value)

    def _state_set(
        self, gauge: Gauge, labels: tuple[str, ...], states: tuple[str, ...], current: str
    ) -> None:
        for s in states:
            self._set(gauge, (*labels, s), 1.0 if s == current else 0.0)

    def _init_group(self, group: str) -> None:
        for reason in FAILOVER_REASONS:
            self.failovers.labels(group, reason)
        for stop in StopReason:
            self.stops.labels(group, stop.value)
        self.resource_failures.labels(group)

    # ------------------------------------------------------------------ the runtime's calls

    def set_thresholds(self, phi_warn: float, phi_dead: float) -> None:
        self._set(self.phi_threshold, ("warn",), phi_warn)
        self._set(self.phi_threshold, ("dead",), phi_dead)

    def observe_heartbeat(self, peer: str, link: str, interarrival_s: float | None) -> None:
        """One heartbeat from `peer` on `link`; `interarrival_s` None for the first."""
        if not (self._ok(self._peers, peer) and self._ok(self._links, link)):
            return
        children = self._heartbeat_children.get((peer, link))
        if children is None:
            children = (self.heartbeats.labels(peer, link), self.interarrival.labels(peer, link))
            self._heartbeat_children[(peer, link)] = children
        children[0].inc()
        if interarrival_s is not None and interarrival_s >= 0:
            children[1].observe(interarrival_s)

    def heartbeat_received(self, peer: str, link: str, now_s: float) -> None:
        """observe_heartbeat with the inter-arrival computed here from monotonic `now_s`."""
        key = (peer, link)
        last = self._last_arrival_s.get(key)
        if self._peers is None or peer in self._peers:
            self._last_arrival_s[key] = now_s
        self.observe_heartbeat(peer, link, None if last is None else now_s - last)

    def update_from(self, status: ClusterStatus, now_s: float | None = None) -> None:
        """Refresh every snapshot-derived gauge from one `ClusterStatus` (scrape or tick rate).

        `now_s` is accepted for symmetry with the core; the status already carries silences.
        """
        del now_s
        self._set(self.incarnation, (), float(status.incarnation))
        for n in status.nodes:
            if n.state == "self" or not self._ok(self._peers, n.name):
                continue
            p = (n.name,)
            self._state_set(self.peer_state, p, PEER_STATES, n.state)
            self._set(self.peer_phi, p, math.inf if n.phi is None else n.phi)
            self._set(self.peer_silence, p, math.nan if n.silence_s is None else n.silence_s)
            if n.incarnation is not None:
                self._set(self.peer_incarnation, p, float(n.incarnation))
            for ln in n.links:
                if not self._ok(self._links, ln.name):
                    continue
                pl = (n.name, ln.name)
                self._state_set(self.link_state, pl, LINK_STATES, ln.state)
                self._set(self.link_phi, pl, math.inf if ln.phi is None else ln.phi)
                self._set(self.link_silence, pl, math.nan if ln.silence_s is None else ln.silence_s)
                self._set(self.link_mean, pl, ln.mean_s)
                self._set(self.link_jitter, pl, ln.std_s)
            if n.links:
                # Any-path figures: the best link is what keeps the peer alive.
                heard = [ln for ln in n.links if ln.silence_s is not None]
                if heard:
                    best = min(heard, key=lambda ln: ln.silence_s or 0.0)
                    self._set(self.peer_mean, p, best.mean_s)
                    self._set(self.peer_jitter, p, best.std_s)
        for g in status.groups:
            if not self._ok(self._groups, g.name):
                continue
            k = (g.name,)
            mine = g.holder == status.node and g.phase in ("running", "stopping")
            self._set(self.group_held, k, 1.0 if mine else 0.0)
            self._set(self.group_has_holder, k, 0.0 if g.holder is None else 1.0)
            old = self._holders.get(g.name)
            if old != g.holder or g.name not in self._holders:
                if old is not None:
                    self.group_holder.remove(g.name, old)
                    self._last.pop((id(self.group_holder), (g.name, old)), None)
                if g.holder is not None:
                    self._set(self.group_holder, (g.name, g.holder), 1.0)
                self._holders[g.name] = g.holder
            self._set(self.lease_epoch, k, float(g.epoch))
            self._set(self.lease_remaining, k, g.lease_remaining_s or 0.0)
            self._state_set(self.group_phase, k, PHASES, g.phase)
            self._set(self.group_healthy, k, math.nan if g.healthy is None else float(g.healthy))
        for pv in status.ping:
            self.set_ping(pv.name, pv.reachable, pv.rtt_s)

    def count_notice(self, notice: Notice, wall_ts: float | None = None) -> None:
        """Count one notice; FAILOVER_COMPLETED also stamps the failover time and cause."""
        self.notices.labels(notice.kind.value).inc()
        to = _TRANSITIONS.get(notice.kind)
        if to is not None and self._ok(self._peers, notice.peer):
            assert notice.peer is not None
            self.peer_transitions.labels(notice.peer, to).inc()
        cause = _CAUSE.get(notice.kind)
        if cause is not None:
            self._cause = cause
        if notice.group is None or not self._ok(self._groups, notice.group):
            return
        g = notice.group
        if notice.kind is NoticeKind.FAILOVER_COMPLETED:
            self.failovers.labels(g, self._cause).inc()
            if wall_ts is not None:
                self.last_failover.labels(g).set(wall_ts)
            self._cause = "other"
        elif notice.kind is NoticeKind.RESOURCE_FAILED:
            self.resource_failures.labels(g).inc()

    def count_action(self, action: Action) -> None:
        """Count a StopGroup by reason and a VIP probe; StartGroup is counted by its notice."""
        match action:
            case StopGroup(group=g, reason=reason):
                if self._ok(self._groups, g):
                    self.stops.labels(g, reason.value).inc()
            case ProbeVip(group=g):
                if self._ok(self._groups, g):
                    self.vip_probes.labels(g).inc()
            case StartGroup():
                pass

    def count_health(self, group: str, healthy: bool) -> None:
        if self._ok(self._groups, group):
            self.health_checks.labels(group, "ok" if healthy else "failed").inc()
            self._set(self.group_healthy, (group,), float(healthy))

    def count_packet(self, link: str, direction: str, size_bytes: int) -> None:
        """A datagram `sent` or `received` (verified) on `link`, of `size_bytes`."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if not self._ok(self._links, link):
            return
        children = self._packet_children.get((link, direction))
        if children is None:
            children = (
                self.packets.labels(link, direction),
                self.packet_bytes.labels(link, direction),
            )
            self._packet_children[(link, direction)] = children
        children[0].inc()
        children[1].inc(size_bytes)

    def count_reject(self, reason: RejectReason) -> None:
        self.rejects.labels(reason.value).inc()

    def sync_rejects(self, counter: RejectCounter) -> None:
        """Catch up with a `RejectCounter` kept elsewhere (the decoder's): adds the deltas."""
        for reason, count in counter.snapshot().items():
            delta = count - self._rejects_seen.get(reason, 0)
            if delta > 0:
                self.rejects.labels(reason.value).inc(delta)
            self._rejects_seen[reason] = count

    def set_loop_lag(self, lag_s: float) -> None:
        self._set(self.loop_lag, (), lag_s)
        if lag_s > self._max_lag_s:
            self._max_lag_s = lag_s
            self.loop_lag_max.set(lag_s)

    def set_ping(self, ping_group: str, reachable: bool, rtt_s: float | None = None) -> None:
        if not self._ok(self._ping_groups, ping_group):
            return
        k = (ping_group,)
        self._set(self.ping_reachable, k, 1.0 if reachable else 0.0)
        self._set(self.ping_rtt, k, math.nan if rtt_s is None or not reachable else rtt_s)

    def metric_names(self) -> frozenset[str]:
        """Every sample name this registry can expose (for dashboard and rule checks)."""
        names: set[str] = set()
        for family in self.registry.collect():
            names.add(family.name)
            for sample in family.samples:
                names.add(sample.name)
            if family.type == "histogram":
                names.update(f"{family.name}_{s}" for s in ("bucket", "sum", "count"))
            if family.type == "counter":
                names.add(f"{family.name}_total")
                names.add(f"{family.name}_created")
        return frozenset(names)
