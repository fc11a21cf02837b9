"""The agent's observability side: notices to logs, metrics, alerts and hooks; /status.

Everything here is called on the loop from the agent and must stay cheap: counting,
queueing (HookRunner, AlertmanagerClient only queue), and one status rebuild about once a
second (`refresh`). The HTTP API serves the last `ClusterStatus` built, never computes one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry

from gossipha.config.model import Config
from gossipha.core.node import Node
from gossipha.core.types import Action, GroupName, NodeId, Notice, NoticeKind, Output
from gossipha.observe.alerts import AlertmanagerClient, AlertState, HookRunner
from gossipha.observe.metrics import Metrics
from gossipha.observe.status import (
    ClusterStatus,
    EventLog,
    PingView,
    build_status,
    group_views,
)
from gossipha.wire.reject import RejectCounter

log = logging.getLogger("gossipha.observe")

STATUS_REFRESH_S: Final = 1.0
# A peer declared dead that is heard again: the partition healed, re-fire what still fires.
_BACK: Final = frozenset({NoticeKind.PEER_RECOVERED, NoticeKind.PEER_JOINED, NoticeKind.REFUTED})


class ObserveGlue:
    """Metrics, event log, alert state, hooks and Alertmanager for one agent.

    `metrics` None: no registry (tests, or metrics disabled); hooks and Alertmanager exist
    only when configured. `hook_runner.run()` and `am_client.run()` belong in the agent's
    TaskGroup (see `tasks`).
    """

    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        obs = config.observe
        self.config = config
        self.metrics = metrics
        self.event_log = EventLog()
        self.alert_state = AlertState(config.node_name)
        self.hook_runner: HookRunner | None = (
            HookRunner(
                obs.hooks,
                obs.max_concurrent_hooks,
                cluster=config.cluster_name,
                node=config.node_name,
                metrics=metrics,
            )
            if obs.hooks
            else None
        )
        self.am_client: AlertmanagerClient | None = (
            AlertmanagerClient(
                obs.alertmanager_url,
                cluster=config.cluster_name,
                node=config.node_name,
                metrics=metrics,
            )
            if obs.alertmanager_url
            else None
        )
        self.latest: ClusterStatus | None = None
        self.healthy: dict[GroupName, bool] = {}
        self._ping: dict[str, PingView] = {}
        self._dead_peers: set[NodeId] = set()
        self._max_lag_s = 0.0
        self.reannounced = 0

    # ------------------------------------------------------------------ per step

    def on_output(self, out: Output, epoch_of: Callable[[str], int], wall_ts: float) -> None:
        """What the core asked, seen by people: each notice and action counted/queued."""
        for action in out.actions:
            self.on_action(action)
        for notice in out.notices:
            self.on_notice(notice, epoch_of, wall_ts)

    def on_action(self, action: Action) -> None:
        if self.metrics is not None:
            self.metrics.count_action(action)

    def on_notice(self, n: Notice, epoch_of: Callable[[str], int], wall_ts: float) -> None:
        self.event_log.record(n, wall_ts)
        if self.metrics is not None:
            self.metrics.count_notice(n, wall_ts)
        epoch = epoch_of(n.group) if n.group is not None else 0
        if self.hook_runner is not None:
            self.hook_runner.submit(n, epoch)
        changed = self.alert_state.apply(n, wall_ts)
        if self.am_client is not None and changed:
            self.am_client.update(changed)
        if n.peer is None:
            return
        if n.kind is NoticeKind.PEER_DEAD:
            self._dead_peers.add(n.peer)
        elif n.kind in _BACK and n.peer in self._dead_peers:
            self._dead_peers.discard(n.peer)
            self.healed(epoch_of)

    def healed(self, epoch_of: Callable[[str], int]) -> int:
        """After a partition heals: run the hooks again for everything still firing."""
        if self.hook_runner is None:
            return 0
        n = self.hook_runner.reannounce(self.alert_state.current_notices(), epoch_of)
        self.reannounced += n
        return n

    def on_packet(self, link: str, direction: str, size_bytes: int) -> None:
        if self.metrics is not None:
            self.metrics.count_packet(link, direction, size_bytes)

    def on_heartbeat(self, peer: str, link: str, now_s: float) -> None:
        if self.metrics is not None:
            self.metrics.heartbeat_received(peer, link, now_s)

    def on_lag(self, lag_s: float) -> None:
        """Keep the worst lag until the next refresh (the gauge is set once a second)."""
        self._max_lag_s = max(self._max_lag_s, lag_s)

    def on_ping(self, group: str, reachable: bool, rtt_s: float | None = None) -> None:
        old = self._ping.get(group)
        if rtt_s is None and reachable and old is not None:
            rtt_s = old.rtt_s
        self._ping[group] = PingView(group, reachable, rtt_s if reachable else None)

    def on_health(self, group: str, healthy: bool) -> None:
        self.healthy[group] = healthy
        if self.metrics is not None:
            self.metrics.count_health(group, healthy)

    # ------------------------------------------------------------------ about once a second

    def refresh(
        self, node: Node, now_s: float, wall_ts: float, rejects: RejectCounter | None = None
    ) -> ClusterStatus:
        """Rebuild the /status snapshot from the core's accessors; feed gauges and alerts."""
        groups = [g.name for g in self.config.groups]
        holders: dict[str, tuple[str, int]] = {}
        remaining: dict[str, float] = {}
        for g in groups:
            h = node.holder(g)
            if h is not None:
                holders[g] = (h, node.holder_epoch(g))
            left = node.lease_remaining_s(g, now_s)
            if left is not None:
                remaining[g] = left
        status = build_status(
            cluster=self.config.cluster_name,
            membership=node.membership_snapshot(now_s),
            groups=group_views(node, holders, remaining, self.healthy),
            wall_ts=wall_ts,
            ping=[self._ping[p.name] for p in self.config.ping_groups if p.name in self._ping],
            events=self.event_log.items(),
            standby=node.standby,
            maintenance=node.maintenance,
        )
        self.latest = status
        if self.metrics is not None:
            self.metrics.update_from(status)
            if rejects is not None:
                self.metrics.sync_rejects(rejects)
            self.metrics.set_loop_lag(self._max_lag_s)
        self._max_lag_s = 0.0
        changed = self.alert_state.expire(wall_ts)
        changed += self.alert_state.holders(holder_names(status), wall_ts)
        if self.am_client is not None and changed:
            self.am_client.update(changed)
        return status

    def status(self) -> ClusterStatus | None:
        """The status provider for the API: the last snapshot, never computed per request."""
        return self.latest


def holder_names(status: ClusterStatus) -> Mapping[str, str | None]:
    return {g.name: g.holder for g in status.groups}


def metrics_for(
    config: Config, registry: CollectorRegistry, *, process_collector: bool = True
) -> Metrics:
    """A `Metrics` with the configured names as label allow-lists and thresholds set."""
    t = config.timings
    m = Metrics(
        registry,
        config.cluster_name,
        config.node_name,
        keepalive_s=t.keepalive_s,
        peers=[p.name for p in config.peers],
        links=[ln.name for ln in config.links] or ["default"],
        groups=[g.name for g in config.groups],
        ping_groups=[p.name for p in config.ping_groups],
        process_collector=process_collector,
    )
    m.set_thresholds(t.phi_warn, t.phi_dead)
    return m


__all__ = ["STATUS_REFRESH_S", "ObserveGlue", "holder_names", "metrics_for"]
