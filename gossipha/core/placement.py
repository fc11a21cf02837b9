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
from functools import partial

from gossipha.config.model import Config, NodeRole, ResourceGroup
from gossipha.core.types import GroupName, NodeId, NodeStatus


def priority(group: ResourceGroup, node: NodeId) -> int:
    if group.priorities:
        # The last entry for a node wins, as dict(group.priorities) would have it.
        for name, prio in reversed(group.priorities):
            if name == node:
                return prio
        return 0
    return 1 if group.preferred == node else 0


@dataclass(frozen=True, slots=True)
class Roster:
    """A config's members in config order and as a set: derive once, not per View."""

    order: tuple[NodeId, ...]
    names: frozenset[NodeId]

    @staticmethod
    def of(config: Config) -> Roster:
        order = tuple(NodeId(n.name) for n in config.nodes if n.role is NodeRole.MEMBER)
        return Roster(order, frozenset(order))


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
    """What one node knows: statuses it heard (own included) and who it believes alive.

    A snapshot: answers are cached, so build a new View once `statuses`, `alive` or `ping`
    change (Node builds one per step, after the inputs and before placing any group).
    """

    __slots__ = (
        "_all_alive",
        "_beaten",
        "_best_ping",
        "_candidates",
        "_ipfail",
        "_maintenance",
        "_members",
        "alive",
        "config",
        "members",
        "ping",
        "statuses",
    )

    def __init__(
        self,
        config: Config,
        statuses: Mapping[NodeId, NodeStatus],
        alive: Collection[NodeId],
        ping: PingHistory | None = None,
        roster: Roster | None = None,
    ) -> None:
        self.config = config
        self.statuses = statuses
        self.alive = alive  # includes the viewing node itself
        self.ping = ping  # None: any difference in ping counts counts at once
        roster = Roster.of(config) if roster is None else roster
        self.members = roster.order  # config order
        self._members = roster.names
        self._ipfail = bool(config.ping_groups) and config.ping_failover
        self._all_alive: bool | None = None
        self._maintenance: bool | None = None
        self._best_ping: int | None = None
        self._beaten: dict[NodeId, bool] = {}
        self._candidates: dict[GroupName, tuple[tuple[NodeId, ...], frozenset[NodeId]]] = {}

    def best_ping(self) -> int:
        if self._best_ping is None:
            alive, members = self.alive, self._members
            self._best_ping = max(
                (s.ping_count for n, s in self.statuses.items() if n in alive and n in members),
                default=0,
            )
        return self._best_ping

    def all_members_alive(self) -> bool:
        if self._all_alive is None:
            alive = self.alive
            self._all_alive = all(n in alive for n in self._members)
        return self._all_alive

    def eligible(self, group: GroupName, name: NodeId) -> bool:
        """May `name` run `group` now? Alive member, not standby, healthy, best ping."""
        return name in self._eligible_of(group)[1]

    def candidates(self, group: GroupName) -> tuple[NodeId, ...]:
        """The members that may run `group` now (`eligible`), in config order."""
        return self._eligible_of(group)[0]

    def eligible_set(self, group: GroupName) -> frozenset[NodeId]:
        """`candidates` as a set."""
        return self._eligible_of(group)[1]

    def _eligible_of(self, group: GroupName) -> tuple[tuple[NodeId, ...], frozenset[NodeId]]:
        known = self._candidates.get(group)
        if known is not None:
            return known
        statuses, alive, ipfail = self.statuses, self.alive, self._ipfail
        best = self.best_ping() if ipfail else 0
        order: list[NodeId] = []
        for name in self.members:
            status = statuses.get(name)
            if status is None or name not in alive:
                continue
            if status.standby or group in status.unhealthy:
                continue
            if ipfail:
                if status.ping_count < best and self.ping_beaten(name):
                    continue  # ipfail: a live peer reaches more ping nodes, and steadily
                if status.ping_count == 0 and not self.all_members_alive():
                    # Nobody we hear reaches a ping node and some member is silent: we may be
                    # the one cut off (tutorial test 3); only a node already running it keeps
                    # it.
                    continue
            order.append(name)
        known = self._candidates[group] = (tuple(order), frozenset(order))
        return known

    def ping_beaten(self, name: NodeId) -> bool:
        """Does a live member reach more ping nodes than `name`, stably (module docstring)?

        The advantage starts at the later of the two nodes' count changes; it counts once
        the better node's own reports cover `stable_s` from there.
        """
        known = self._beaten.get(name)
        if known is None:
            known = self._beaten[name] = self._ping_beaten_now(name)
        return known

    def _ping_beaten_now(self, name: NodeId) -> bool:
        mine = self.statuses[name].ping_count
        if mine >= self.best_ping():
            return False  # no live member reaches more
        alive, members, ping = self.alive, self._members, self.ping
        for other, st in self.statuses.items():
            if st.ping_count <= mine or other == name:
                continue
            if other not in alive or other not in members:
                continue
            if ping is None:
                return True
            since, confirmed = ping.since_s, ping.confirmed_s
            if name not in since or other not in since or other not in confirmed:
                continue
            start_s = max(since[name], since[other])
            if confirmed[other] - start_s >= ping.stable_s:
                return True
        return False

    def rank(self, group: ResourceGroup, name: NodeId) -> tuple[int, int, str]:
        status = self.statuses.get(name)
        takeover = status.takeover if status is not None else 0
        # Higher takeover, then higher priority; the name breaks ties the same way everywhere.
        return (-takeover, -priority(group, name), name)

    def maintenance(self) -> bool:
        if self._maintenance is None:
            alive = self.alive
            self._maintenance = any(s.maintenance for n, s in self.statuses.items() if n in alive)
        return self._maintenance


def choose(
    view: View,
    group: ResourceGroup,
    holder: NodeId | None,
    now_s: float,
    eligible_since_s: Mapping[NodeId, float],
) -> NodeId | None:
    """The node that should run `group`; None when no node is eligible."""
    candidates = view.candidates(group.name)
    if not candidates:
        return None
    # Ranks are distinct (the name is in them): the minimum is the first of the sorted order.
    best = candidates[0] if len(candidates) == 1 else min(candidates, key=partial(view.rank, group))
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
