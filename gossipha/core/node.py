"""The node state machine: `Node.step(now_s, input) -> Output`, the only way in or out.

Per resource group a node is in one phase (table below); it runs the group only in RUNNING
and STOPPING, and only while it holds the group's quorum lease (core/lease.py), or, with
exactly half of an even number of voters (two nodes), while the tie-breakers allow it.

    IDLE       --target is us, no live holder--------------> ACQUIRING (ask every voter)
    ACQUIRING  --majority, or half + peers dead + ping-----> PROBING (ProbeVip)
    ACQUIRING  --adopted (VIP found on this host)----------> RUNNING (StartGroup, no probe)
    ACQUIRING  --majority + fresh release of the latest----> RUNNING (StartGroup, no probe)
    PROBING    --nobody answered, lease still valid--------> RUNNING (StartGroup(epoch))
    PROBING    --answered: split-brain risk----------------> IDLE (release, back off)
    RUNNING    --lease about to lapse----------------------> IDLE (StopGroup LEASE_LOST)
    RUNNING    --better node / standby / shutdown----------> STOPPING (StopGroup)
    STOPPING   --ResourceResult(stop ok, this epoch)-------> IDLE (LeaseRelease)

A result names its action's epoch; one of an earlier claim (a stop that outlived it) moves
nothing.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import assert_never

from gossipha.config.model import Config, NodeRole, ResourceGroup
from gossipha.core.detector import CROSSING_MARGIN_S
from gossipha.core.lease import (
    RENEW_AGE_FRACTION,
    RETRY_FRACTION,
    RIDE_FRACTION,
    Claim,
    Voter,
    majority,
    voter_span_s,
)
from gossipha.core.membership import (
    Digest,
    LinkDown,
    LinkUp,
    MemberEvent,
    Membership,
    MembershipSnapshot,
    PeerDead,
    PeerJoined,
    PeerRecovered,
    PeerState,
    PeerSuspect,
    PeerWarn,
    Refuted,
)
from gossipha.core.placement import PingHistory, Roster, View, choose
from gossipha.core.types import (
    MAX_CARRIED,
    MAX_RELAY,
    Action,
    AdminCommand,
    AdminKind,
    FoundRunning,
    GroupName,
    HealthResult,
    Heartbeat,
    Held,
    Input,
    LeaseRelease,
    LeaseReply,
    LeaseRequest,
    LoopLag,
    Message,
    MessageReceived,
    NodeId,
    NodeStatus,
    Notice,
    NoticeKind,
    Output,
    PingResult,
    ProbeVip,
    ResourceAction,
    ResourceResult,
    Resumed,
    Send,
    Shutdown,
    Stalled,
    StartGroup,
    StopGroup,
    StopReason,
    Tick,
    VipProbeResult,
)

# After a refused or lost claim, retry after a random fraction of this many leases.
BACKOFF_LEASES = 0.5
# After the VIP answered our probe, wait this long before probing again.
SPLIT_BRAIN_BACKOFF_LEASES = 2.0
# A stop that never reports back stops being covered by lease renewal after this long.
STOP_RENEW_LIMIT_S = 30.0
# An adopted group (VIP found on this host at start) must get its lease within this many.
ADOPT_LIMIT_LEASES = 2.0
# A VIP probe answer is trusted only if it arrives within this many probe times of the
# ProbeVip (local clock, shrunk by drift): the start then follows the probe's end by less
# than one probe time, which is what makes two probes that missed each other impossible
# (docs/design.md, "Two nodes").
PROBE_FRESH_PROBES = 1.5
# A step never asks to be woken less than this ahead: no busy loop; a deadline inside it
# is acted on up to this late (tests/sim/test_wakeups.py does not probe inside it).
WAKEUP_FLOOR_S = 1e-3
# ipfail waits for a stable difference in ping counts (placement.PingHistory): the better
# node's reports must cover this many ping intervals plus keepalives after the later change:
# two pingers see one cut up to an interval apart, and a lost status push costs a keepalive.
PING_STABLE_INTERVALS = 1.0
PING_STABLE_BEATS = 2.0
# First-hand reports further apart than this many keepalives are not continuous: the
# count is timed again from the next one (a peer cut off may have changed meanwhile).
PING_REPORT_GAP_BEATS = 3.0


# Peer states that count as alive: heard recently, or only warned/suspected.
_LIVE = (PeerState.ALIVE, PeerState.WARN, PeerState.SUSPECT)


class Phase(enum.Enum):
    IDLE = "idle"
    ACQUIRING = "acquiring"
    PROBING = "probing"
    RUNNING = "running"
    STOPPING = "stopping"


@dataclass(slots=True)
class _Group:
    config: ResourceGroup
    phase: Phase = Phase.IDLE
    claim: Claim | None = None
    adopted: bool = False
    adopted_since_s: float = 0.0
    started: bool = False  # StartGroup emitted for the current claim
    since_s: float = 0.0  # when the current phase began
    backoff_until_s: float = float("-inf")
    split_brain_noticed: bool = False
    stop_reason: StopReason | None = None
    start_failed_until_s: float = float("-inf")
    eligible_since_s: dict[NodeId, float] = field(default_factory=dict)
    no_holder_noticed: bool = False
    probe_sent_s: float = float("-inf")  # when the pending ProbeVip was emitted (local clock)
    # Highest epoch another node's status ever showed it holding (never decreases: a
    # holder's status drops the group the moment it stops).
    seen_epoch: int = 0
    seen_holder: NodeId | None = None  # whose status showed seen_epoch
    # (holder, epoch, received_s) of the last LeaseRelease (not unused) for an epoch at
    # least as high as any we knew of: the handover fast path (docs/design.md, "Handover").
    release: tuple[NodeId, int, float] | None = None
    # Other nodes whose status showed them holding the group (highest epoch shown) and
    # that have not released that epoch since: their VIP may still be up, even when a
    # later status drops the group (a status drops it when the stop begins, not ends).
    unreleased: dict[NodeId, int] = field(default_factory=dict)
    split_backoff: bool = False  # the back-off is the VIP having answered: keep it


class _Out:
    def __init__(self) -> None:
        self.sends: list[Send] = []
        self.actions: list[Action] = []
        self.notices: list[Notice] = []

    def notice(self, kind: NoticeKind, **kw: str | None) -> None:
        self.notices.append(Notice(kind, **kw))  # type: ignore[arg-type]


class Node:
    """One agent's cluster logic; also a witness (votes, holds nothing) by its config role."""

    def __init__(self, config: Config, incarnation: int, rng: random.Random, start_s: float):
        self.config = config
        self.name: NodeId = config.node_name
        me = config.node(self.name)
        self.role = me.role
        self.timings = config.timings
        self._rng = rng
        self._start_s = start_s
        self._now_s = start_s
        self._incarnation = incarnation
        self._voters = tuple(sorted(n.name for n in config.voters))
        # config.voters is the resolved voter set (gossipha/config/model.py: at most 5 by
        # default); Node.voter alone may be unset (None), so membership in it decides.
        self._voter = (
            Voter(self.timings.lease_s, self.timings.max_drift, start_s)
            if self.name in self._voters
            else None
        )
        self._members = Membership(
            self.name,
            incarnation,
            [p.name for p in config.peers],
            [link.name for link in config.links] or ["default"],
            self.timings,
            rng,
            start_s,
        )
        self._next_beat_s = start_s
        t = config.timings
        ride = (RENEW_AGE_FRACTION + RIDE_FRACTION) * t.lease_s
        self._ride_s = RIDE_FRACTION * t.lease_s if t.keepalive_s <= ride else 0.0
        self._roster = Roster.of(config)
        self._ipfail = bool(config.ping_groups) and config.ping_failover
        self._peer_names = tuple(p.name for p in config.peers)
        self._ping: dict[str, bool] = {p.name: True for p in config.ping_groups}
        # Per node (own included): ping count as last seen, when it began, last first-hand
        # report of it. Feeds placement.PingHistory.
        self._ping_seen: dict[NodeId, int] = {}
        self._ping_since_s: dict[NodeId, float] = {}
        self._ping_confirmed_s: dict[NodeId, float] = {}
        self._ping_history = PingHistory(
            self._ping_since_s, self._ping_confirmed_s, self._ping_stable_s()
        )
        # Peers heard at least once since our start: initdead waits only for the others.
        self._heard: set[NodeId] = set()
        self._heard_all = False  # every other member is in `_heard`
        self._standby = False
        self._maintenance = False
        self._takeover = 0
        self._unhealthy: set[GroupName] = set()
        self._shutting_down = False
        self._shutdown_since_s = math.inf
        self._stopped_s = -math.inf  # when a StopGroup last finished (ok or not)
        self._version = 1
        self._status = self._make_status()
        self._statuses: dict[NodeId, NodeStatus] = {self.name: self._status}
        self._groups: dict[GroupName, _Group] = (
            {g.name: _Group(g) for g in config.groups} if self.role is NodeRole.MEMBER else {}
        )
        self._groups_by_name = [g for _, g in sorted(self._groups.items())]
        self._seq = 0
        # Per (claimant, group): when we last answered it, and with what (_answered_copy).
        self._answered: dict[tuple[NodeId, GroupName], tuple[float, LeaseReply]] = {}
        # Peers whose heartbeats carry lease requests ("lq"): ours to them ride along.
        self._carriers: set[NodeId] = set()
        self._relay_cursor = 0
        # The last step's earliest deadline (_next_wakeup): before it, a Tick changes
        # nothing; and the next_wakeup_s it returned, at least WAKEUP_FLOOR_S ahead.
        self._due_s = -math.inf
        self._wakeup_s = -math.inf
        # Skip `_advance` after an input that changed nothing it reads (`_on_message`);
        # tests turn it off on a copy to check the shortcut against the full step.
        self.quiet_shortcut = True
        # A node's arrival is a status change: its first heartbeat round goes to every
        # peer, so a (re)started node is known at once, not after relays reach everyone.
        self._push_status = True

    # ------------------------------------------------------------------ public

    @property
    def done(self) -> bool:
        """After Shutdown: every group stopped and released, and a successor holds it (or
        a bound passed). The runtime exits then. The bound counts from the last stop too:
        after a stop slower than a lease the successor still needs our vote."""
        if not self._shutting_down:
            return False
        if any(g.phase is not Phase.IDLE for g in self._groups.values()):
            return False
        if self._now_s - max(self._shutdown_since_s, self._stopped_s) >= 2 * self.timings.lease_s:
            return True
        return all(self._other_holder(g) is not None for g in self._groups) or not self._groups

    def statuses(self) -> Mapping[NodeId, NodeStatus]:
        """Every node's latest status we know of, ours included (read-only)."""
        return MappingProxyType(self._statuses)

    def running(self) -> tuple[GroupName, ...]:
        """Groups this node runs now (StartGroup emitted, StopGroup not yet)."""
        return tuple(n for n, g in self._groups.items() if g.started and g.phase is not Phase.IDLE)

    def claiming(self) -> tuple[GroupName, ...]:
        """Groups this node is acquiring or probing for (a claim under way)."""
        busy = (Phase.ACQUIRING, Phase.PROBING)
        return tuple(n for n, g in self._groups.items() if g.phase in busy)

    def epoch(self, group: GroupName) -> int:
        g = self._groups[group]
        return g.claim.epoch if g.claim is not None else 0

    def phase(self, group: GroupName) -> Phase:
        return self._groups[group].phase

    # -- read-only accessors for the runtime's status and metrics (no state changes)

    def membership_snapshot(self, now_s: float) -> MembershipSnapshot:
        """Liveness figures of every peer and link at `now_s` (for /status and metrics)."""
        return self._members.snapshot(now_s)

    def holder(self, group: GroupName) -> NodeId | None:
        """Who runs `group` as far as this node knows: itself, a live peer saying so, or None."""
        if group in self.running():
            return self.name
        return self._other_holder(group)

    def holder_epoch(self, group: GroupName) -> int:
        """The lease epoch of `holder(group)` (ours, or as gossiped); 0 when no holder."""
        if group in self.running():
            return self.epoch(group)
        other = self._other_holder(group)
        return 0 if other is None else self._status_epoch(other, group)

    def lease_remaining_s(self, group: GroupName, now_s: float) -> float | None:
        """Seconds our promises for `group` still cover (majority or half); None unless we
        run it."""
        g = self._groups.get(group)
        if g is None or g.claim is None or g.phase not in (Phase.RUNNING, Phase.STOPPING):
            return None
        until_s = max(g.claim.valid_until_s(), g.claim.half_until_s())
        return max(0.0, until_s - now_s)

    @property
    def standby(self) -> bool:
        return self._standby

    @property
    def maintenance(self) -> bool:
        return self._maintenance

    def unhealthy(self) -> frozenset[GroupName]:
        """Groups this node declared itself unfit for (HealthResult healthy=False)."""
        return frozenset(self._unhealthy)

    def target(self, group: GroupName) -> NodeId | None:
        """Who should run `group` by this node's current view (placement.choose)."""
        g = self._groups[group]
        mine = g.phase in (Phase.RUNNING, Phase.STOPPING)
        holder = self.name if mine else self._other_holder(group)
        return choose(self._view(), g.config, holder, self._now_s, g.eligible_since_s)

    def promise(self, group: GroupName) -> tuple[NodeId, float] | None:
        """Our voter's unreleased promise of `group`: (holder, local expiry), running or
        lapsed; None when we vote on nothing or promised nobody. For checkers."""
        return None if self._voter is None else self._voter.unreleased(group)

    def majority_until_s(self, group: GroupName) -> float:
        """Until when (local clock) a majority of voters promise us `group`; -inf if not."""
        claim = self._groups[group].claim
        return float("-inf") if claim is None else claim.valid_until_s()

    def step(self, now_s: float, event: Input) -> Output:
        assert now_s >= self._now_s - 1e-9, "now_s must not go backwards"
        self._now_s = now_s = max(now_s, self._now_s)
        out = _Out()
        quiet = False
        match event:
            case Tick():
                pass
            case MessageReceived(link=link, sender=sender, message=message):
                quiet = self._on_message(now_s, link, sender, message, out)
            case PingResult(group=pg, reachable=ok):
                if pg in self._ping and self._ping[pg] != ok:
                    self._ping[pg] = ok
                    out.notice(NoticeKind.PING_BACK if ok else NoticeKind.PING_LOST, detail=pg)
            case VipProbeResult(group=gname, answered_by_other=answered):
                self._on_probe(now_s, gname, answered, out)
            case ResourceResult():
                self._on_resource(now_s, event, out)
            case HealthResult(group=gname, healthy=healthy):
                if healthy:
                    self._unhealthy.discard(gname)
                else:
                    self._unhealthy.add(gname)
            case LoopLag(lag_s=lag_s):
                self._members.note_lag(lag_s)
            case Stalled(duration_s=d):
                self._members.note_stall(now_s, d)
                self._on_stall()
            case Resumed():
                pass
            case AdminCommand(kind=kind):
                self._on_admin(kind, out)
            case Shutdown():
                if not self._shutting_down:
                    self._shutting_down = True
                    self._shutdown_since_s = now_s
            case FoundRunning(groups=groups):
                self._adopt(now_s, groups, out)
        if quiet and now_s < self._due_s and self.quiet_shortcut:
            # Nothing `_advance` reads changed and nothing is due before the last deadline
            # (a Tick now would be empty, tests/sim/test_wakeups.py): its answer stands.
            return Output(tuple(out.sends), tuple(out.actions), tuple(out.notices), self._wakeup_s)
        version = self._version
        self._advance(now_s, out)
        self._due_s = self._next_wakeup(now_s)
        if self._version != version or out.notices:
            # Something changed late in this step: our own status (standby, shutdown, a
            # group taken or dropped), or a peer's state, which reshapes the ring and the
            # view the next step judges and places with. Take that next step at once.
            self._due_s = now_s
        # Never less than the floor ahead (no busy loop); the shortcut compares with the
        # deadline itself, which the floor may have passed.
        self._wakeup_s = max(self._due_s, now_s + WAKEUP_FLOOR_S)
        return Output(tuple(out.sends), tuple(out.actions), tuple(out.notices), self._wakeup_s)

    # ------------------------------------------------------------------ inputs

    def _on_message(
        self, now_s: float, link: str, sender: NodeId, message: Message, out: _Out
    ) -> bool:
        """Handle one message; True when it changed nothing `_advance` reads: a lease reply
        that repeats one already counted (a late answer to a retry, or an older release's
        answer on every link), a lease request answered while every group here is idle
        (the voter's promises are read only for a group we claim or run, and by `_lapses`;
        a renewal, like `Membership.heard`, can only postpone what those decide, so the
        last wakeup stays early, never late)."""
        if sender == self.name:
            return True
        self._members.heard(now_s, sender, link)
        match message:
            case Heartbeat(status=status, relay=relay, digest=digest, requests=requests):
                if status.name != sender:
                    return True  # a status is only first-hand from its own node
                if digest is not None:
                    for ev in self._members.on_heartbeat(now_s, sender, link, digest):
                        self._peer_notice(ev, out)
                for st in (status, *relay):
                    self._merge_status(now_s, st)
                if self._statuses.get(sender) == status:
                    self._confirm_ping(now_s, sender, status.ping_count)
                if requests is None:
                    self._carriers.discard(sender)  # an older node: requests go apart
                else:
                    self._carriers.add(sender)
                    for req in requests:
                        self._on_request(now_s, link, sender, req, out)
            case LeaseRequest():
                self._on_request(now_s, link, sender, message, out)
                return all(g.phase is Phase.IDLE for g in self._groups_by_name)
            case LeaseReply():
                g = self._groups.get(message.group)
                if g is not None and g.claim is not None:
                    before = g.claim.reply_key(sender)
                    g.claim.on_reply(now_s, sender, message)
                    return g.claim.reply_key(sender) == before
                return True
            case LeaseRelease(group=gname, epoch=epoch):
                if self._voter is not None:
                    self._voter.on_release(now_s, sender, gname, epoch, message.unused, message.inc)
                self._on_release(now_s, sender, gname, epoch, message.unused)
        return False

    def _on_request(
        self, now_s: float, link: str, sender: NodeId, req: LeaseRequest, out: _Out
    ) -> None:
        """Answer a lease request (alone, or carried by a heartbeat) on the link it came
        in on: the claimant sends every request on every link, so each link's copy is a
        way back; a lost answer is retried like a lost request."""
        if self._voter is None:
            return
        reply = self._voter.on_request(now_s, sender, req)
        if not self._answered_copy(now_s, sender, reply):
            out.sends.append(Send(sender, reply, link))

    def _answered_copy(self, now_s: float, sender: NodeId, reply: LeaseReply) -> bool:
        """This exact reply already went to `sender` within a retry time: don't send it again.

        A request comes once per link; answering each copy sent the claimant one answer
        per link for one question (a third of an idle holder's packets when each answer
        also went out on every link). A copy that gets the same answer (same request
        `seq`, same grant) is left unanswered; a refusal's `busy_s` differs, a retry has
        a new `seq`, and the window bounds a `seq` reused by a restarted claimant. The
        voter still saw the copy (a renewal timed from the later receipt is only longer).
        """
        key = (sender, reply.group)
        last = self._answered.get(key)
        self._answered[key] = (now_s, reply)
        return (
            last is not None
            and last[1] == reply
            and now_s - last[0] < self.timings.lease_s * RETRY_FRACTION
        )

    def _note_ping(self, now_s: float, node: NodeId, count: int) -> None:
        """A (possibly relayed) status of `node` says `count`: a change restarts its time."""
        if self._ping_seen.get(node) != count:
            self._ping_seen[node] = count
            self._ping_since_s[node] = now_s

    def _confirm_ping(self, now_s: float, node: NodeId, count: int) -> None:
        """`node` itself told us its count now; after a gap in its reports, time it anew."""
        gap_s = PING_REPORT_GAP_BEATS * self.timings.keepalive_s
        last_s = self._ping_confirmed_s.get(node)
        self._note_ping(now_s, node, count)
        if last_s is None or now_s - last_s > gap_s:
            self._ping_since_s[node] = max(self._ping_since_s[node], now_s)
        self._ping_confirmed_s[node] = now_s

    def _ping_stable_s(self) -> float:
        t = self.timings
        return PING_STABLE_INTERVALS * t.ping_interval_s + PING_STABLE_BEATS * t.keepalive_s

    def _merge_status(self, now_s: float, st: NodeStatus) -> None:
        if st.name == self.name:
            return
        try:
            self.config.node(st.name)
        except KeyError:
            return
        old = self._statuses.get(st.name)
        if old is None or st.newer_than(old):
            self._statuses[st.name] = st
            self._note_ping(now_s, st.name, st.ping_count)
            if self._voter is not None:
                for h in st.holding:
                    self._voter.learn_epoch(h.group, h.epoch, st.name)
            for h in st.holding:
                held = self._groups.get(h.group)
                if held is None:
                    continue
                if h.epoch >= held.seen_epoch:
                    held.seen_epoch, held.seen_holder = h.epoch, st.name
                if h.epoch > held.unreleased.get(st.name, 0):
                    held.unreleased[st.name] = h.epoch

    def _on_release(
        self, now_s: float, sender: NodeId, gname: GroupName, epoch: int, unused: bool
    ) -> None:
        """A peer gave `gname` up (authenticated LeaseRelease): act on it now rather than
        wait out its lease. Changes only *when* we ask voters; what counts stays their
        grants. A release by the node we saw hold the latest epoch we know of, of that epoch
        (not `unused`: it had started the group, and StopGroup succeeded, so its VIP is
        down) is kept for `_released_to_us`."""
        g = self._groups.get(gname)
        if g is None or sender == self.name:
            return
        if not unused and epoch >= g.unreleased.get(sender, epoch + 1):
            del g.unreleased[sender]  # its VIP is down (StopGroup succeeded)
        if (
            not unused
            and (epoch, sender) == (g.seen_epoch, g.seen_holder)
            and epoch >= self._voter_foreign_epoch(gname)
        ):
            g.release = (sender, epoch, now_s)
        if g.phase is Phase.ACQUIRING and g.claim is not None and not g.adopted:
            g.claim.holder_released(now_s, sender)
            g.since_s = now_s  # the way is open now: a full attempt from here
        elif g.phase is Phase.IDLE and not g.split_backoff:
            # The back-off waited for this holder's lease (busy) or desynchronised claims:
            # the release ends that lease, and placement picks one claimant anyway.
            g.backoff_until_s = min(g.backoff_until_s, now_s)

    def _voter_foreign_epoch(self, gname: GroupName) -> int:
        """Our voter's highest epoch for `gname` unless it is one of our own claims."""
        if self._voter is None or self._voter.max_owner(gname) == self.name:
            return 0
        return self._voter.max_epoch(gname)

    def _released_to_us(self, now_s: float, g: _Group) -> bool:
        """May we start without a VIP probe? Only on a majority lease (never the two-node
        half rule, whose safety *is* the probe) and a fresh release of the latest epoch:
        the previous holder's VIP is down, and the lease excludes any other executing
        holder; all members alive and the age bound keep a non-executing one (limit L1)
        out of reach. A member we saw hold the group that has not released it since may
        still have its VIP up (an orphan of an earlier epoch that was paused and resumed
        stopping, while we judged it alive: swarm seed 18,283): probe. docs/design.md,
        "Handover"."""
        claim, rel = g.claim, g.release
        if claim is None or rel is None or g.adopted:
            return False
        _, epoch, received_s = rel
        if now_s - received_s > self.timings.lease_s:
            return False
        if claim.valid_until_s() <= now_s:
            return False  # majority only
        if claim.epoch <= epoch or claim.max_seen_epoch > claim.epoch or g.seen_epoch > epoch:
            return False  # someone has (had) a later epoch than the one released
        return not g.unreleased and all(self.alive(m) for m in self._roster.order)

    def _probe(self, now_s: float, g: _Group, out: _Out) -> None:
        g.probe_sent_s = now_s
        out.actions.append(ProbeVip(g.config.name))

    def _probe_fresh_s(self) -> float:
        t = self.timings
        probe_s = t.vip_probe_count * t.vip_probe_interval_s
        return PROBE_FRESH_PROBES * probe_s * (1.0 - t.max_drift) / (1.0 + t.max_drift)

    def _on_probe(self, now_s: float, gname: GroupName, answered: bool, out: _Out) -> None:
        g = self._groups.get(gname)
        if g is None or g.phase is not Phase.PROBING:
            return
        assert g.claim is not None
        if not answered and now_s - g.probe_sent_s > self._probe_fresh_s():
            # Late (a stall, a slow loop): the host that would have answered may have
            # started since. A silence is only worth something fresh: probe again.
            self._probe(now_s, g, out)
            return
        if answered:
            if not g.split_brain_noticed:
                out.notice(
                    NoticeKind.SPLIT_BRAIN_RISK,
                    group=gname,
                    detail="VIP answered our probe; another host serves it: not claiming",
                )
                g.split_brain_noticed = True
            self._abandon(now_s, g, out, SPLIT_BRAIN_BACKOFF_LEASES)
            g.split_backoff = True
            return
        if self._holding_valid(now_s, g, claiming=True):
            self._start(now_s, g, out)
        else:
            self._abandon(now_s, g, out, BACKOFF_LEASES)

    def _on_resource(self, now_s: float, r: ResourceResult, out: _Out) -> None:
        g = self._groups.get(r.group)
        if g is None:
            return
        if not r.ok:
            out.notice(
                NoticeKind.RESOURCE_FAILED, group=r.group, detail=f"{r.action.value}: {r.detail}"
            )
        current = g.claim is not None and r.epoch == g.claim.epoch
        if not current:
            return  # the result of an earlier claim's action (swarm seed 14,805)
        if r.action is ResourceAction.START and not r.ok and g.phase is Phase.RUNNING:
            g.start_failed_until_s = now_s + self.timings.failback_delay_s
            self._stop(now_s, g, StopReason.START_FAILED, out)
        elif r.action is ResourceAction.STOP and g.phase is Phase.STOPPING:
            self._stopped_s = now_s
            if r.ok:
                assert g.claim is not None
                self._release(g.claim, out, unused=False)
            # A failed stop is not released: the lease runs out on its own.
            self._to_idle(now_s, g, BACKOFF_LEASES)

    def _on_admin(self, kind: AdminKind, out: _Out) -> None:
        match kind:
            case AdminKind.STANDBY:
                self._standby = True
            case AdminKind.TAKEOVER:
                self._standby = False
                self._takeover = (
                    max(self._takeover, *(s.takeover for s in self._statuses.values())) + 1
                )
            case AdminKind.MAINTENANCE_ON:
                self._maintenance = True
            case AdminKind.MAINTENANCE_OFF:
                self._maintenance = False
        out.notice(NoticeKind.ADMIN, detail=kind.value)

    def _on_stall(self) -> None:
        """After a stall nothing learned before it is fresh: a pending probe answer is void."""
        for g in self._groups.values():
            g.probe_sent_s = float("-inf")
            g.release = None  # not fresh any more either

    def _adopt(self, now_s: float, groups: tuple[GroupName, ...], out: _Out) -> None:
        for gname in groups:
            g = self._groups.get(gname)
            if g is None or g.phase is not Phase.IDLE:
                continue
            # The VIP is up here already: it runs here until we learn otherwise.
            g.adopted = True
            g.adopted_since_s = now_s
            g.started = True
            self._begin_claim(now_s, g, out)

    # ------------------------------------------------------------------ the loop

    def _advance(self, now_s: float, out: _Out) -> None:
        for ev in self._members.tick(now_s):
            self._peer_notice(ev, out)
        for peer, expires_s in self._lapses():
            for ev in self._members.renewal_lapsed(now_s, peer, expires_s):
                self._peer_notice(ev, out)
        if not self._heard_all:
            self._heard.update(self._members.alive_peers())
            # `_heard` is read for members only: once all are in, updates change nothing.
            self._heard_all = all(m == self.name or m in self._heard for m in self._roster.order)
        self._note_ping(now_s, self.name, self._ping_count())
        self._ping_confirmed_s[self.name] = now_s
        if self._groups:
            # Statuses, liveness and ping history stay put while groups are placed: one view.
            view = self._view()
            for g in self._groups.values():
                self._advance_group(now_s, g, out, view)
        self._refresh_status()
        self._heartbeats(now_s, out)

    def _lapses(self) -> list[tuple[NodeId, float]]:
        """(peer, lapse_s) of our voter's unreleased promises to the other node of two,
        both voters, whose status says it runs the group: when the promise ends, plus the
        time a renewal may wait for the holder's heartbeat (`_rides_beat`), so a renewal
        that rode a beat counts as on time.

        Such a holder must renew with us, so a lapse is evidence (Membership.renewal_lapsed);
        with more voters a holder renews with only enough of them, and a lapse means nothing.
        """
        if self._voter is None or len(self._voters) != 2 or len(self._peer_names) != 1:
            return []
        found = []
        for gname in self._groups:
            promise = self._voter.unreleased(gname)
            if (
                promise is not None
                and promise[0] != self.name
                and self._status_epoch(promise[0], gname) > 0
            ):
                found.append((promise[0], promise[1] + self._ride_s))
        return found

    def _peer_notice(self, ev: MemberEvent, out: _Out) -> None:
        match ev:
            case PeerJoined():
                out.notice(NoticeKind.PEER_JOINED, peer=ev.peer, detail=ev.reason)
            case PeerWarn():
                out.notice(NoticeKind.PEER_WARN, peer=ev.peer, detail=ev.reason)
            case PeerSuspect():
                out.notice(NoticeKind.PEER_SUSPECT, peer=ev.peer, detail=ev.reason)
            case PeerDead():
                out.notice(NoticeKind.PEER_DEAD, peer=ev.peer, detail=ev.reason)
            case PeerRecovered():
                out.notice(NoticeKind.PEER_RECOVERED, peer=ev.peer, detail=ev.reason)
            case Refuted():
                out.notice(NoticeKind.REFUTED, peer=ev.peer, detail=ev.reason)
            case LinkDown():
                out.notice(NoticeKind.LINK_DOWN, peer=ev.peer, link=ev.link, detail=ev.reason)
            case LinkUp():
                out.notice(NoticeKind.LINK_UP, peer=ev.peer, link=ev.link, detail=ev.reason)
            case _:
                assert_never(ev)

    def alive(self, peer: NodeId) -> bool:
        """Heard recently, or only warned/suspected: not yet declared dead."""
        if peer == self.name:
            return True
        return self._members.state(peer) in _LIVE

    def _view(self) -> View:
        state, me = self._members.state, self.name
        alive = {n for n in self._statuses if n == me or state(n) in _LIVE}  # as `alive`
        return View(self.config, self._statuses, alive, self._ping_history, self._roster)

    def _other_holder(self, gname: GroupName, view: View | None = None) -> NodeId | None:
        """A live peer that says it runs the group (highest epoch wins); `view` (of this
        step) answers who is alive."""
        best: tuple[int, NodeId] | None = None
        for n, st in self._statuses.items():
            if not st.holding or n == self.name:
                continue
            if not (self.alive(n) if view is None else n in view.alive):
                continue
            for h in st.holding:
                if h.group == gname and (best is None or h.epoch > best[0]):
                    best = (h.epoch, n)
        return None if best is None else best[1]

    def _may_claim(self, now_s: float, view: View) -> bool:
        if self._shutting_down or self._standby or view.maintenance():
            return False
        # initdead: give slow peers their chance before placing anything. Only peers never
        # heard: one heard and then declared dead is judged like any other (a crash soon
        # after start must not wait out initdead). Nobody heard at all: initdead, as before.
        if now_s >= self._start_s + self.timings.initdead_s or view.all_members_alive():
            return True
        return all(m == self.name or m in self._heard or self.alive(m) for m in self._roster.order)

    def _ping_settled(self, now_s: float, view: View) -> bool:
        """With a member silent, claim only on a ping count held for the stability window:
        a ping node regained as a cut link returns is news that the peer's heartbeats (and
        its claim on the group) may be a keepalive behind; claiming then makes our voter
        refuse the holder's renewal (lab: link-cut, lease_lost on `ifup eth1`)."""
        if not self._ipfail:
            return True
        if view.all_members_alive():
            return True
        since_s = self._ping_since_s.get(self.name, self._start_s)
        return now_s - since_s >= self._ping_stable_s()

    def _advance_group(self, now_s: float, g: _Group, out: _Out, view: View) -> None:
        gname = g.config.name
        other = self._other_holder(gname, view)
        mine = g.phase is Phase.RUNNING or g.phase is Phase.STOPPING
        since = g.eligible_since_s
        eligible = view.eligible_set(gname)
        for n in view.members:
            if n in eligible:
                if n not in since:
                    since[n] = now_s
            elif n in since:
                del since[n]
        target = choose(view, g.config, self.name if mine else other, now_s, g.eligible_since_s)
        if target is None and other is None and not mine:
            if not g.no_holder_noticed and now_s >= self._start_s + self.timings.initdead_s:
                out.notice(NoticeKind.NO_HOLDER, group=gname, detail="no eligible node")
                g.no_holder_noticed = True
        elif target is not None:
            g.no_holder_noticed = False

        match g.phase:
            case Phase.IDLE:
                if (
                    target == self.name
                    and other is None
                    and now_s >= g.backoff_until_s
                    and now_s >= g.start_failed_until_s
                    and self._may_claim(now_s, view)
                    and self._ping_settled(now_s, view)
                ):
                    out.notice(NoticeKind.FAILOVER_STARTED, group=gname)
                    self._begin_claim(now_s, g, out)
            case Phase.ACQUIRING:
                assert g.claim is not None
                self._renew(now_s, g.claim, out)
                # An adopted VIP (found up at start, no lease yet) yields to any live node
                # that runs the group, whatever the epochs: that node got a lease, or probed
                # and did not see ours (we were cut off, limit L1): ours is the orphan.
                if other is not None and (
                    g.adopted or self._status_epoch(other, gname) >= g.claim.epoch
                ):
                    if g.adopted:
                        self._stop(now_s, g, StopReason.SUPERSEDED, out)
                        self._to_idle(now_s, g, BACKOFF_LEASES)
                    else:
                        self._abandon(now_s, g, out, BACKOFF_LEASES)
                elif (
                    g.adopted
                    and now_s - g.adopted_since_s > ADOPT_LIMIT_LEASES * self.timings.lease_s
                ):
                    # Running without a lease is covered only by the VIP probe: not for long.
                    out.notice(NoticeKind.LEASE_LOST, group=gname, detail="adopted, no lease")
                    self._stop(now_s, g, StopReason.LEASE_LOST, out)
                    self._to_idle(now_s, g, BACKOFF_LEASES)
                elif g.adopted and g.claim.outbid():
                    self._begin_claim(now_s, g, out)  # our epoch is stale: ask again, higher
                elif self._holding_valid(now_s, g, claiming=True):
                    if g.adopted:
                        self._start(now_s, g, out)
                    elif self._released_to_us(now_s, g):
                        assert g.release is not None
                        holder, epoch, _ = g.release
                        self._start(now_s, g, out, f", released by {holder} at {epoch}: no probe")
                    else:
                        g.phase, g.since_s = Phase.PROBING, now_s
                        self._probe(now_s, g, out)
                elif not g.adopted and (
                    now_s - g.since_s > self.timings.lease_s
                    or target != self.name
                    or not self._may_claim(now_s, view)
                ):
                    self._abandon(now_s, g, out, BACKOFF_LEASES)
            case Phase.PROBING:
                assert g.claim is not None
                self._renew(now_s, g.claim, out)
                if not self._holding_valid(now_s, g, claiming=True):
                    self._abandon(now_s, g, out, BACKOFF_LEASES)
            case Phase.RUNNING:
                assert g.claim is not None
                if not self._rides_beat(now_s, g.claim):
                    self._renew(now_s, g.claim, out)
                if not self._holding_valid(now_s, g, claiming=False):
                    out.notice(NoticeKind.LEASE_LOST, group=gname, detail=f"epoch {g.claim.epoch}")
                    self._stop(now_s, g, StopReason.LEASE_LOST, out)
                    self._to_idle(now_s, g, BACKOFF_LEASES)
                elif self._shutting_down:
                    self._stop(now_s, g, StopReason.SHUTDOWN, out)
                elif self._standby:
                    self._stop(now_s, g, StopReason.STANDBY, out)
                elif target is not None and target != self.name and not view.maintenance():
                    self._stop(now_s, g, StopReason.HANDOVER, out)
                elif self._stale_on_half(now_s, g):
                    # Keep running and ask again one epoch above any seen: the voters that
                    # refused ours as stale grant it, and the lease is a majority again.
                    self._begin_claim(now_s, g, out, keep_running=True)
            case Phase.STOPPING:
                assert g.claim is not None
                if now_s - g.since_s < STOP_RENEW_LIMIT_S:
                    self._renew(now_s, g.claim, out)
                if not self._holding_valid(now_s, g, claiming=False):
                    self._to_idle(now_s, g, BACKOFF_LEASES)

    def _status_epoch(self, node: NodeId, gname: GroupName) -> int:
        st = self._statuses.get(node)
        if st is None:
            return 0
        return max((h.epoch for h in st.holding if h.group == gname), default=0)

    # ------------------------------------------------------------------ lease plumbing

    def _known_epoch(self, gname: GroupName) -> int:
        known = max(
            (h.epoch for s in self._statuses.values() for h in s.holding if h.group == gname),
            default=0,
        )
        if self._voter is not None:
            known = max(known, self._voter.max_epoch(gname))
        g = self._groups[gname]
        if g.claim is not None:
            known = max(known, g.claim.epoch, g.claim.max_seen_epoch)
        return known

    def _stale_on_half(self, now_s: float, g: _Group) -> bool:
        """Running on the two-node rule (no majority) at an epoch a voter refused as not
        new, e.g. adopted while cut off, at the only epoch it knew. Our own voter promises
        us (so the new claim keeps the two-node rule from its first step)."""
        claim = g.claim
        assert claim is not None
        return (
            claim.outbid()
            and claim.valid_until_s() <= now_s
            and self._voter is not None
            and not self._voter.quiet(now_s)
            and self._voter.promised(now_s, g.config.name) == self.name
        )

    def _begin_claim(
        self, now_s: float, g: _Group, out: _Out, *, keep_running: bool = False
    ) -> None:
        gname = g.config.name
        epoch = self._known_epoch(gname) + 1
        g.claim = Claim(
            gname,
            epoch,
            self._voters,
            self.timings.lease_s,
            self.timings.max_drift,
            now_s,
            local=self.name if self._voter is not None else None,
            inc=self._incarnation,
        )
        if not keep_running:  # else _refresh_status tells the peers the new epoch
            g.phase, g.since_s = Phase.ACQUIRING, now_s
        self._renew(now_s, g.claim, out)

    def _renew(self, now_s: float, claim: Claim, out: _Out) -> None:
        for voter in claim.due(now_s):
            self._seq += 1
            req = claim.request(now_s, voter, self._seq)
            if voter == self.name:
                assert self._voter is not None
                claim.on_reply(now_s, voter, self._voter.on_request(now_s, self.name, req))
            else:
                out.sends.append(Send(voter, req))

    def _rides_beat(self, now_s: float, claim: Claim) -> bool:
        """Does a running group's renewal wait for our next heartbeat (lease.RIDE_FRACTION)?

        Then the holder wakes once for both instead of twice: at native timings the
        renewal (every L/4 = 150 ms) and the heartbeat (every 200 ms) each woke it.
        """
        if self._ride_s <= 0.0:
            return False
        due = claim.renewal_due_s(now_s)
        return due is not None and now_s < self._next_beat_s <= due + self._ride_s

    def _holding_valid(self, now_s: float, g: _Group, *, claiming: bool) -> bool:
        """May we (keep) run(ning) the group at `now_s`? The safety rule of this module."""
        claim = g.claim
        assert claim is not None
        if claim.valid_until_s() > now_s:
            return True  # a majority of voters' promises run: the quorum lease
        if claim.half_until_s() <= now_s:
            return False
        # Exactly half the voters (two nodes): the tie-breakers decide.
        missing = claim.missing(now_s)
        if claim.refused_for_other(now_s):
            return False  # a voter told us it promised someone else
        if not claiming:
            return True  # the holder keeps its groups; the VIP probe keeps others off
        if any(self.alive(v) for v in missing if v != self.name):
            return False  # a live voter is not promising us: not our call
        # Cut off from ping nodes too: we may be the isolated one.
        return not (self._ipfail and self._ping_count() == 0)

    def _start(self, now_s: float, g: _Group, out: _Out, how: str = "") -> None:
        assert g.claim is not None
        g.phase, g.since_s = Phase.RUNNING, now_s
        g.release = None  # used (or moot): a later handover needs a new one
        g.split_brain_noticed = False
        g.started = True
        out.actions.append(StartGroup(g.config.name, g.claim.epoch))
        if not g.adopted:
            out.notice(
                NoticeKind.FAILOVER_COMPLETED,
                group=g.config.name,
                detail=f"epoch {g.claim.epoch}{how}",
            )
        g.adopted = False
        self._push_status = True

    def _stop(self, now_s: float, g: _Group, reason: StopReason, out: _Out) -> None:
        assert g.claim is not None
        out.actions.append(StopGroup(g.config.name, g.claim.epoch, reason))
        g.started = False
        g.adopted = False
        g.phase, g.since_s = Phase.STOPPING, now_s
        g.stop_reason = reason
        self._push_status = True

    def _abandon(self, now_s: float, g: _Group, out: _Out, backoff_leases: float) -> None:
        """Give up an attempt that never started anything: hand back the promises we got."""
        assert g.claim is not None and not g.started
        self._release(g.claim, out, unused=True)
        self._to_idle(now_s, g, backoff_leases)

    def _release(self, claim: Claim, out: _Out, *, unused: bool) -> None:
        msg = LeaseRelease(claim.group, claim.epoch, unused, claim.inc)
        for v in claim.voters:
            if v == self.name:
                assert self._voter is not None
                self._voter.on_release(
                    self._now_s, self.name, claim.group, claim.epoch, unused, claim.inc
                )
            else:
                out.sends.append(Send(v, msg))
        self._push_status = True

    def _to_idle(self, now_s: float, g: _Group, backoff_leases: float) -> None:
        busy = g.claim.busy_until_s() if g.claim is not None else float("-inf")
        jitter = self._rng.uniform(0.0, backoff_leases * self.timings.lease_s)
        g.backoff_until_s = max(now_s + jitter, min(busy, now_s + 2 * self.timings.lease_s))
        g.phase, g.since_s = Phase.IDLE, now_s
        g.started = False
        g.adopted = False
        g.split_backoff = False

    def _ping_count(self) -> int:
        return sum(self._ping.values())  # bools: the reachable groups

    # ------------------------------------------------------------------ status, heartbeats

    def _make_status(self, version: int | None = None) -> NodeStatus:
        holding = tuple(
            Held(g.config.name, g.claim.epoch)
            for g in getattr(self, "_groups_by_name", ())
            if g.claim is not None and g.started
        )
        return NodeStatus(
            name=self.name,
            incarnation=self._incarnation,
            version=self._version if version is None else version,
            ping_count=self._ping_count(),
            standby=self._standby or self._shutting_down or self.role is NodeRole.WITNESS,
            maintenance=self._maintenance,
            takeover=self._takeover,
            unhealthy=tuple(sorted(self._unhealthy)),
            holding=holding,
        )

    def _status_unchanged(self) -> bool:
        """Would `_make_status` give our current status (same version)? Cheaper than one."""
        st = self._status
        if (
            st.ping_count != self._ping_count()
            or st.standby != (self._standby or self._shutting_down or self.role is NodeRole.WITNESS)
            or st.maintenance != self._maintenance
            or st.takeover != self._takeover
            or len(st.unhealthy) != len(self._unhealthy)
            or (self._unhealthy and st.unhealthy != tuple(sorted(self._unhealthy)))
        ):
            return False
        held = st.holding
        i = 0
        for g in self._groups_by_name:
            if g.claim is not None and g.started:
                if i >= len(held) or (held[i].group, held[i].epoch) != (
                    g.config.name,
                    g.claim.epoch,
                ):
                    return False
                i += 1
        return i == len(held)

    def _refresh_status(self) -> None:
        if self._status_unchanged():
            return
        fresh = self._make_status(self._status.version)
        if fresh != self._status:
            self._version += 1
            self._status = replace(fresh, version=self._version)
            self._statuses[self.name] = self._status
            self._push_status = True

    def _heartbeats(self, now_s: float, out: _Out) -> None:
        targets: list[tuple[NodeId, Digest | None]] = []
        monitor: NodeId | None = None
        if now_s >= self._next_beat_s:
            if now_s - self._next_beat_s > self.timings.keepalive_s:
                self._members.note_missed_send()
                self._next_beat_s = now_s
            self._next_beat_s += self.timings.keepalive_s
            targets.extend(self._members.outgoing(now_s))
            monitor = targets[0][0]  # outgoing() lists our monitor first
        if self._push_status:
            # A status change goes to every peer at once: handovers should not wait a beat.
            self._push_status = False
            have = {t for t, _ in targets}
            targets.extend((p, None) for p in self._peer_names if p not in have)
        if not targets:
            return
        carried = self._carried(out, {p for p, _ in targets})
        others = [s for n, s in sorted(self._statuses.items()) if n != self.name]
        for peer, digest in targets:
            relay: tuple[NodeStatus, ...] = ()
            # The monitor's heartbeat is the detector's pulse, every interval: it carries
            # our own status only. Gossip and pushed heartbeats relay others' statuses.
            if len(others) > 1 and peer != monitor:
                k = min(MAX_RELAY, len(others))
                start = self._relay_cursor % len(others)
                relay = tuple((others + others)[start : start + k])
                self._relay_cursor += k
            out.sends.append(
                Send(peer, Heartbeat(self._status, relay, digest, carried.get(peer, ())))
            )

    def _carried(self, out: _Out, peers: set[NodeId]) -> dict[NodeId, tuple[LeaseRequest, ...]]:
        """Take this step's lease requests to `peers` that can carry them out of `out`:
        they go in the heartbeat to the same peer (on every link, like a request alone),
        one packet per link instead of two. A request is timed from this step either way.
        """
        carried: dict[NodeId, list[LeaseRequest]] = {}
        kept: list[Send] = []
        for send in out.sends:
            m = send.message
            if (
                isinstance(m, LeaseRequest)
                and send.link is None
                and send.to in peers
                and send.to in self._carriers
                and len(carried.get(send.to, ())) < MAX_CARRIED
            ):
                carried.setdefault(send.to, []).append(m)
            else:
                kept.append(send)
        if carried:
            out.sends[:] = kept
        return {p: tuple(reqs) for p, reqs in carried.items()}

    def _next_wakeup(self, now_s: float) -> float:
        """When a Tick may next change anything (docs/design.md, "Wake-ups"): the next
        heartbeat, the detectors' crossings (`Membership.next_change_s`), a lapse of the
        other node's promise (`_lapses`), each group's lease and back-off deadlines and
        placement's timers. Early is harmless (an empty step), late is not. A group in a
        passing phase (acquiring, probing, stopping, adopted, outbid) or a node shutting
        down is also polled as before."""
        t = min(self._next_beat_s, self._members.next_change_s(now_s))
        for promise in self._lapses():
            due = self._members.lapse_due_s(*promise)
            if due is not None and now_s < due + CROSSING_MARGIN_S < t:
                t = due + CROSSING_MARGIN_S
        poll = self._shutting_down
        for g in self._groups.values():
            if g.claim is None or g.phase is Phase.IDLE:
                if g.backoff_until_s > now_s:
                    t = min(t, g.backoff_until_s)
                if g.start_failed_until_s > now_s:
                    t = min(t, g.start_failed_until_s)
                continue
            claim = g.claim
            # next_change_s covers valid_until_s and half_until_s (each is some promise's end).
            t = min(t, claim.next_change_s(now_s))
            if not (g.phase is Phase.RUNNING and self._rides_beat(now_s, claim)):
                t = min(t, claim.next_due_s())  # else the next heartbeat, already in t
            if g.phase is not Phase.RUNNING or g.adopted or claim.outbid():
                poll = True
                t = min(t, self._passing_change_s(now_s, g))
        if self._groups:
            t = min(t, self._placement_change_s(now_s))
        if any(g.since_s == now_s for g in self._groups.values()):
            t = now_s  # a phase began in this step: the next one may follow at once
        if poll:
            t = min(
                t,
                now_s + self.timings.keepalive_s / 4,
                now_s + self.timings.lease_s * RETRY_FRACTION,
            )
        return t  # the caller keeps it at least WAKEUP_FLOOR_S ahead

    def _passing_change_s(self, now_s: float, g: _Group) -> float:
        """Deadlines of the passing phases: an attempt's lease-long limit, an adoption's
        limit, a release's freshness, the stop's renewal limit, the shutdown's bound."""
        t = math.inf
        lease_s = self.timings.lease_s
        ends = [g.since_s + lease_s, g.since_s + STOP_RENEW_LIMIT_S]
        if g.adopted:
            ends.append(g.adopted_since_s + ADOPT_LIMIT_LEASES * lease_s)
        if g.release is not None:
            ends.append(g.release[2] + lease_s)
        if self._shutting_down:
            ends.append(max(self._shutdown_since_s, self._stopped_s) + 2 * lease_s)
        for end in ends:
            end += CROSSING_MARGIN_S
            if now_s < end < t:
                t = end
        return t

    def _placement_change_s(self, now_s: float) -> float:
        """The next time placement's answers may change with no input: initdead (claims,
        the no-holder notice), a failback delay ending, a ping count becoming stable."""
        t = math.inf
        end = self._start_s + self.timings.initdead_s + CROSSING_MARGIN_S
        if now_s < end:
            t = end
        delay_s = self.timings.failback_delay_s + CROSSING_MARGIN_S
        for g in self._groups.values():
            for since_s in g.eligible_since_s.values():
                if now_s < since_s + delay_s < t:
                    t = since_s + delay_s
        if self._ipfail:
            # Our own count is confirmed at every step, so only our advantage over a node
            # with fewer (View.ping_beaten) and our own settling (_ping_settled) run on time.
            stable_s = self._ping_stable_s() + CROSSING_MARGIN_S
            mine_s = self._ping_since_s.get(self.name, self._start_s)
            if now_s < mine_s + stable_s < t:
                t = mine_s + stable_s
            mine = max(self._status.ping_count, self._ping_count())
            for n, st in self._statuses.items():
                theirs_s = self._ping_since_s.get(n)
                if n == self.name or theirs_s is None or st.ping_count >= mine:
                    continue
                end = max(theirs_s, mine_s) + stable_s
                if now_s < end < t:
                    t = end
        return t


__all__ = ["Node", "Phase", "majority", "voter_span_s"]
