"""Which node should run a group, from one node's view: a pure function of that view.

Every node computes the same answer from the same view, so only one node asks voters for
a free group; views that differ for a moment cost a refused request, never safety (the
lease decides safety). Order: a takeover stamp, then priority (or preferred node), then
name. The current holder keeps a group unless it becomes ineligible, a later takeover is
asked, or auto_failback finds a higher-priority node eligible for failback_delay_s.

Ping nodes (ipfail) count only when the difference is stable: node A is beaten by a live
peer B reaching more ping nodes only once B has reported that, continuously, for
`PingHistory.stable_s` after the later of A's change and B's (`PingHistory`). Two nodes that
lose (or regain) a ping node a few ms apart, as with `ifdown eth1` on both, move nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gossipha.config.model import Config, NodeRole, ResourceGroup
from gossipha.core.types import GroupName, NodeId, NodeStatus


def priority(group: ResourceGroup, node: NodeId) -> int:
    if group.priorities:
        return dict(group.priorities).get(node, 0)
    return 1 if group.preferred == node else 0


@dataclass(frozen=True, slots=True)
class PingHistory:
    """How long each node's ping count has been what its status says, on our clock.

    `since_s[n]`: when n's current ping count began, as we saw it (a change, or reports
    resuming after a gap); `confirmed_s[n]`: the last first-hand report of it (our own: now).
    A node missing from either map has no stable count yet.
    """

    since_s: Mapping[NodeId, float]
    confirmed_s: Mapping[NodeId, float]
    stable_s: float


class View:
    """What one node knows: statuses it heard (own included) and who it believes alive."""

    __slots__ = ("_all_alive", "_best_ping", "_members", "alive", "config", "ping", "statuses")

    def __init__(
        self,
        config: Config,
        statuses: Mapping[NodeId, NodeStatus],
        alive: Collection[NodeId],
        ping: PingHistory | None = None,
    ) -> None:
        self.config = config
        self.statuses = statuses
        self.alive = alive  # includes the viewing node itself
        self.ping = ping  # None: any difference in ping counts counts at once
        self._members = frozenset(n.name for n in config.nodes if n.role is NodeRole.MEMBER)
        self._best_ping = max(
            (s.ping_count for n, s in statuses.items() if n in alive and n in self._members),
            default=0,
        )
        self._all_alive = all(n in alive for n in self._members)

    def best_ping(self) -> int:
        return self._best_ping

    def all_members_alive(self) -> bool:
        return self._all_alive

    def eligible(self, group: GroupName, name: NodeId) -> bool:
        """May `name` run `group` now? Alive member, not standby, healthy, best ping."""
        status = self.statuses.get(name)
        if status is None or name not in self.alive or name not in self._members:
            return False
        if status.standby or group in status.unhealthy:
            return False
        if self.config.ping_groups and self.config.ping_failover:
            if self.ping_beaten(name):
                return False  # ipfail: a live peer reaches more ping nodes, and steadily
            if status.ping_count == 0 and not self.all_members_alive():
                # Nobody we hear reaches a ping node and some member is silent: we may be
                # the one cut off (tutorial test 3); only a node already running it keeps it.
                return False
        return True

    def ping_beaten(self, name: NodeId) -> bool:
        """Does a live member reach more ping nodes than `name`, stably (module docstring)?

        The advantage starts at the later of the two nodes' count changes; it counts once
        the better node's own reports cover `stable_s` from there.
        """
        mine = self.statuses[name]
        for other, st in self.statuses.items():
            if other == name or other not in self.alive or other not in self._members:
                continue
            if st.ping_count <= mine.ping_count:
                continue
            if self.ping is None:
                return True
            since, confirmed = self.ping.since_s, self.ping.confirmed_s
            if name not in since or other not in since or other not in confirmed:
                continue
            start_s = max(since[name], since[other])
            if confirmed[other] - start_s >= self.ping.stable_s:
                return True
        return False

    def rank(self, group: ResourceGroup, name: NodeId) -> tuple[int, int, str]:
        status = self.statuses.get(name)
        takeover = status.takeover if status is not None else 0
        # Higher takeover, then higher priority; the name breaks ties the same way everywhere.
        return (-takeover, -priority(group, name), name)

    def maintenance(self) -> bool:
        return any(s.maintenance for n, s in self.statuses.items() if n in self.alive)


def choose(
    view: View,
    group: ResourceGroup,
    holder: NodeId | None,
    now_s: float,
    eligible_since_s: Mapping[NodeId, float],
) -> NodeId | None:
    """The node that should run `group`; None when no node is eligible."""
    candidates = sorted(
        (n.name for n in view.config.members if view.eligible(group.name, n.name)),
        key=lambda n: view.rank(group, n),
    )
    if not candidates:
        return None
    best = candidates[0]
    if holder is None or holder not in candidates or holder == best:
        return best
    hs, bs = view.statuses[holder], view.statuses[best]
    if bs.takeover > hs.takeover:
        return best  # manual takeover: at once
    # More ping nodes on `best` moves nothing by itself: a stable advantage makes the holder
    # ineligible (View.ping_beaten); a fresh one (a ping node regained ms earlier) must wait.
    if (
        view.config.auto_failback
        and priority(group, best) > priority(group, holder)
        and now_s - eligible_since_s.get(best, now_s) >= view.config.timings.failback_delay_s
    ):
        return best
    return holder
