"""Quorum leases (a one-round PaxosLease variant): who may run a resource group, and until when.

Theory (docs/design.md has the full argument):
- A voter promises a group to at most one node at a time, for `voter_span_s` timed from
  when it RECEIVED the request, on its own clock, lengthened by the drift bound.
- A claimant times each promise from when it SENT the request, shortened by the drift bound
  and a stop guard. It may run the group while a majority of voters' promises are still
  running by that (pessimistic) estimate.
- With clock rates in [1 - max_drift, 1 + max_drift], the claimant's estimate ends no later
  in real time than the voter's promise, so two majorities of running promises would need
  one voter promising two nodes at once: impossible. Without stable storage a voter that
  restarts refuses every request for one voter span, so promises it forgot have run out.
- Every new holder uses an epoch above any a voter promised before: the fencing token.
No clock reads: `now_s` is an argument; the caller owns sending.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gossipha.core.types import GroupName, LeaseReply, LeaseRequest, NodeId

# A holder stops this fraction of a lease before its pessimistic expiry: room for the
# runtime to take the VIP down after StopGroup is emitted.
STOP_GUARD_FRACTION = 0.1
# A promise is renewed once it is this fraction old, and a request re-sent after this
# fraction without an answer: about ten tries between the renewal age and the holder's
# stop, so with 20 % loss each way on the only link (36 % of round trips lost) one renewal
# in about 25,000 fails outright (the runtime sends lease messages on every link).
RENEW_AGE_FRACTION = 0.25
RETRY_FRACTION = 0.0625
# A renewal round due less than this fraction of a lease before the holder's next
# heartbeat waits for that heartbeat (Node._rides_beat), so an idle holder wakes once for
# both. Only where every renewal can ride a beat (keepalive <= (RENEW_AGE_FRACTION +
# RIDE_FRACTION) * lease, as at native timings): it starts a renewal by 0.375 of the
# lease, leaving about eight tries before the stop.
RIDE_FRACTION = 0.125


def voter_span_s(lease_s: float, max_drift: float) -> float:
    """How long a voter keeps a promise on its own clock: at least `lease_s` of real time."""
    return lease_s * (1.0 + max_drift)


def holder_span_s(lease_s: float, max_drift: float) -> float:
    """How long a claimant counts a promise from its send time: at most `lease_s` real time,
    minus the stop guard."""
    return lease_s * (1.0 - max_drift) - lease_s * STOP_GUARD_FRACTION


def majority(voters: int) -> int:
    return voters // 2 + 1


# --------------------------------------------------------------------------- voter side


@dataclass(slots=True)
class _Promise:
    holder: NodeId | None = None
    epoch: int = 0
    expires_s: float = float("-inf")
    max_epoch: int = 0
    # The node that max_epoch belongs to (promised to it, or it said it runs at it): that
    # node alone may be promised max_epoch again; everyone else needs a higher one.
    max_owner: NodeId | None = None
    # The run (incarnation) of `holder` it was promised to: only that run's release ends it.
    inc: int = 0
    # The lapsed promise a new one replaced, restored if the new claimant never used it.
    prev: tuple[NodeId | None, int, int, NodeId | None, int] | None = None


class Voter:
    """The promises one node gives; identical code for members and witnesses."""

    def __init__(self, lease_s: float, max_drift: float, start_s: float) -> None:
        self._span_s = voter_span_s(lease_s, max_drift)
        # Forgot everything at start: promises given before a crash may still be running.
        self._quiet_until_s = start_s + self._span_s
        self._promises: dict[GroupName, _Promise] = {}

    def _get(self, group: GroupName) -> _Promise:
        return self._promises.setdefault(group, _Promise())

    def on_request(self, now_s: float, sender: NodeId, req: LeaseRequest) -> LeaseReply:
        p = self._get(req.group)
        if now_s < self._quiet_until_s:
            quiet_s = self._quiet_until_s - now_s
            return LeaseReply(
                req.group, req.epoch, req.seq, False, "", p.max_epoch, quiet_s, req.inc
            )
        # A late request from an earlier run of the node we promised: that run is gone.
        ours = p.holder == sender and req.inc >= p.inc
        renew = ours and p.epoch == req.epoch
        free = p.holder is None or now_s >= p.expires_s
        fresh = req.epoch > p.max_epoch or (req.epoch == p.max_epoch and p.max_owner == sender)
        # A holder may also move its own running promise to a higher epoch (it re-asked);
        # a restarted holder renews its earlier run's promise, which is its own from now.
        if renew or ((free or ours) and fresh):
            if not renew:
                p.prev = (p.holder, p.epoch, p.max_epoch, p.max_owner, p.inc)
            p.holder, p.epoch, p.inc = sender, req.epoch, req.inc
            p.expires_s = now_s + self._span_s
            if req.epoch >= p.max_epoch:
                p.max_epoch, p.max_owner = req.epoch, sender
            return LeaseReply(
                req.group, req.epoch, req.seq, True, sender, p.max_epoch, 0.0, req.inc
            )
        busy_s = max(0.0, p.expires_s - now_s) if p.holder is not None else 0.0
        return LeaseReply(
            req.group,
            req.epoch,
            req.seq,
            False,
            p.holder or "",
            p.max_epoch,
            min(busy_s, 3600.0),
            req.inc,
        )

    def on_release(
        self,
        now_s: float,
        sender: NodeId,
        group: GroupName,
        epoch: int,
        unused: bool = False,
        inc: int = 0,
    ) -> None:
        """The holder stopped (or, `unused`, never started): the promise ends now.

        Only a release of the promise itself: its holder, its epoch and the holder's run
        (`inc`), so a release delayed across a restart of the holder, which may claim the
        same epoch again, ends nothing. An unused promise gives back the lapsed one it
        replaced, so a holder that kept its group on the two-node tie-break can renew here
        again at its own epoch.
        """
        p = self._get(group)
        if p.holder != sender or p.epoch != epoch or p.inc != inc:
            return
        p.expires_s = now_s
        if unused and p.prev is not None:
            p.holder, p.epoch, p.max_epoch, p.max_owner, p.inc = p.prev
            if p.epoch > p.max_epoch:
                p.max_epoch, p.max_owner = p.epoch, p.holder
        else:
            # Keep max_epoch, owned by nobody: a late duplicate of the holder's request must
            # not re-promise.
            p.holder = None
            p.max_owner = None
        p.prev = None

    def learn_epoch(self, group: GroupName, epoch: int, holder: NodeId | None = None) -> None:
        """Epochs seen in gossip raise the bar for new holders (restarted voters); the node
        that runs at `epoch` (its own status said so) may still be promised that epoch."""
        p = self._get(group)
        if epoch > p.max_epoch:
            p.max_epoch, p.max_owner = epoch, holder
        elif epoch == p.max_epoch and p.max_owner != holder:
            p.max_owner = None  # two claimants of one epoch: neither gets it again

    def promised(self, now_s: float, group: GroupName) -> NodeId | None:
        p = self._promises.get(group)
        if p is None or p.holder is None or now_s >= p.expires_s:
            return None
        return p.holder

    def unreleased(self, group: GroupName) -> tuple[NodeId, float] | None:
        """The promise not released, running or lapsed: (holder, expires_s); None if none."""
        p = self._promises.get(group)
        if p is None or p.holder is None:
            return None
        return (p.holder, p.expires_s)

    def max_epoch(self, group: GroupName) -> int:
        p = self._promises.get(group)
        return 0 if p is None else p.max_epoch

    def max_owner(self, group: GroupName) -> NodeId | None:
        """The node `max_epoch(group)` belongs to, if one (None: nobody, or unknown)."""
        p = self._promises.get(group)
        return None if p is None else p.max_owner

    def quiet(self, now_s: float) -> bool:
        return now_s < self._quiet_until_s


# --------------------------------------------------------------------------- claimant side


class Refusal(enum.Enum):
    NONE = "none"
    BUSY = "busy"  # some voter promised someone else
    STALE_EPOCH = "stale_epoch"


@dataclass(slots=True)
class _VoterView:
    expires_s: float = float("-inf")  # our pessimistic estimate of its promise to us
    last_sent_s: float = float("-inf")
    refused_by: NodeId = ""  # who it promised instead, when it last refused us
    refused_until_s: float = float("-inf")


@dataclass(slots=True)
class Claim:
    """Our side of one group's lease at one epoch: requests sent, promises counted."""

    group: GroupName
    epoch: int
    voters: tuple[NodeId, ...]
    lease_s: float
    max_drift: float
    started_s: float
    _views: dict[NodeId, _VoterView] = field(default_factory=dict)
    _sent_s: dict[int, float] = field(default_factory=dict)
    _seq: int = 0
    local: NodeId | None = None  # our own name, when we are a voter: asked first
    _round_s: float | None = None  # when the current narrow renewal round began
    max_seen_epoch: int = 0
    stale: bool = False  # a voter refused our epoch as not new: ask again, higher
    inc: int = 0  # our run (incarnation): replies to an earlier run's requests are not ours

    def __post_init__(self) -> None:
        assert self.voters, "a lease needs voters"
        self._views = {v: _VoterView() for v in self.voters}

    def due(self, now_s: float) -> list[NodeId]:
        """Voters to (re)ask now.

        A voter is stale once its promise is older than the renew age, and asked again at
        most once per retry time. Without a majority of running promises (acquiring, or
        losing the lease) every stale voter is asked. While the lease holds, a renewal
        round asks only as many as keep a majority fresh (ourselves first, then the voters
        that answered last), so the holder's traffic does not grow with the voter count;
        if that round is not answered within the retry time, every stale voter is asked.
        """
        retry = self.lease_s * RETRY_FRACTION
        stale = self._stale(now_s)
        need = self._needed(stale)
        if need <= 0:
            self._round_s = None
            return []
        ready = [(n, v) for n, v in stale if now_s >= v.last_sent_s + retry]
        if self.valid_until_s() <= now_s or (
            self._round_s is not None and now_s >= self._round_s + retry
        ):
            return [n for n, _ in ready]
        if self._round_s is not None or not ready:
            return []  # the round's (or earlier) requests are still in flight
        self._round_s = now_s
        ready.sort(key=lambda nv: (nv[0] != self.local, -nv[1].expires_s, nv[0]))
        return [n for n, _ in ready[:need]]

    def _stale(self, now_s: float) -> list[tuple[NodeId, _VoterView]]:
        """Voters whose promise is past the renew age (or missing)."""
        renew_at = self.lease_s * RENEW_AGE_FRACTION
        span = holder_span_s(self.lease_s, self.max_drift)
        # The same expressions as next_due_s, so the two agree to the last bit.
        return [(n, v) for n, v in self._views.items() if now_s >= v.expires_s - span + renew_at]

    def _needed(self, stale: list[tuple[NodeId, _VoterView]]) -> int:
        """How many of the stale voters must answer for a majority of fresh promises."""
        return majority(len(self.voters)) - (len(self.voters) - len(stale))

    def next_due_s(self) -> float:
        """When `due` may next return someone: never later than that, possibly earlier."""
        renew_at = self.lease_s * RENEW_AGE_FRACTION
        span = holder_span_s(self.lease_s, self.max_drift)
        retry = self.lease_s * RETRY_FRACTION
        # The first time some voter is both stale and not asked within the retry time.
        every = min(
            max(v.expires_s - span + renew_at, v.last_sent_s + retry) for v in self._views.values()
        )
        if self._round_s is not None:
            return max(every, self._round_s + retry)
        # No round: nothing is due while a majority is fresh.
        stale_at = sorted(
            (v.expires_s - span + renew_at for v in self._views.values()), reverse=True
        )
        return max(every, stale_at[majority(len(self.voters)) - 1])

    def renewal_due_s(self, now_s: float) -> float | None:
        """When the next renewal round starts (`next_due_s`), while the lease holds and no
        round is in flight; None otherwise: acquiring, losing the lease, or waiting for
        answers, which are never put off."""
        if self._round_s is not None or self.valid_until_s() <= now_s:
            return None
        return self.next_due_s()

    def next_change_s(self, now_s: float) -> float:
        """The next time a promise or a refusal runs out (inf: none ahead): when
        `valid_until_s`, `half_until_s`, `missing` and `refused_for_other` may change."""
        t = float("inf")
        for v in self._views.values():
            if now_s < v.expires_s < t:
                t = v.expires_s
            if now_s < v.refused_until_s < t:
                t = v.refused_until_s
        return t

    def request(self, now_s: float, voter: NodeId, seq: int) -> LeaseRequest:
        """A request to `voter`; `seq` must be unique for this node (across claims)."""
        self._seq = seq
        self._sent_s[seq] = now_s
        # Bound the table: answers to requests older than a lease are useless anyway.
        if len(self._sent_s) > 4 * len(self.voters) + 64:
            oldest = min(self._sent_s)
            del self._sent_s[oldest]
        self._views[voter].last_sent_s = now_s
        return LeaseRequest(self.group, self.epoch, self._seq, self.inc)

    def on_reply(self, now_s: float, voter: NodeId, reply: LeaseReply) -> Refusal:
        view = self._views.get(voter)
        if view is None or reply.group != self.group:
            return Refusal.NONE
        self.max_seen_epoch = max(self.max_seen_epoch, reply.max_epoch)
        if reply.epoch != self.epoch:
            return Refusal.NONE
        if reply.inc != self.inc and reply.inc != 0:  # 0: a voter before protocol 1.2
            return Refusal.NONE  # an answer to our earlier run, whose seq may equal ours
        sent_s = self._sent_s.get(reply.seq)
        if reply.granted:
            if sent_s is not None:
                view.expires_s = max(
                    view.expires_s, sent_s + holder_span_s(self.lease_s, self.max_drift)
                )
                view.refused_by = ""
                if self._round_s is not None and self._needed(self._stale(now_s)) <= 0:
                    # The round did its job: over now, not at the next `due`, so the
                    # wakeup named after this reply is the next renewal, not a retry.
                    self._round_s = None
            return Refusal.NONE
        view.refused_by = reply.holder if reply.busy_s > 0 else ""
        if reply.busy_s <= 0:
            self.stale = True
        view.refused_until_s = now_s + reply.busy_s * (1 + 2 * self.max_drift)
        return Refusal.BUSY if reply.busy_s > 0 else Refusal.STALE_EPOCH

    def reply_key(self, voter: NodeId) -> tuple[object, ...]:
        """What a reply from `voter` can change (`on_reply`): equal before and after means
        the reply was a no-op (a late answer to a retried request, a duplicate)."""
        view = self._views.get(voter)
        if view is None:
            return (self.max_seen_epoch, self.stale)
        return (
            self.max_seen_epoch,
            self.stale,
            view.expires_s,
            view.refused_by,
            view.refused_until_s,
        )

    def outbid(self) -> bool:
        """A voter refused our epoch as not new, or reported a higher one: only a claim at a
        higher epoch can get its promise."""
        return self.stale or self.max_seen_epoch > self.epoch

    def nth_expiry_s(self, n: int) -> float:
        """The time until which at least `n` voters' promises run, by our estimate."""
        if n <= 0:
            return float("inf")
        ends = sorted((v.expires_s for v in self._views.values()), reverse=True)
        return ends[n - 1] if n <= len(ends) else float("-inf")

    def valid_until_s(self) -> float:
        return self.nth_expiry_s(majority(len(self.voters)))

    def half_until_s(self) -> float:
        """Promises from exactly half the voters (even count): the two-node tie-break."""
        n = len(self.voters)
        return self.nth_expiry_s(n // 2) if n % 2 == 0 else float("-inf")

    def granting(self, now_s: float) -> tuple[NodeId, ...]:
        return tuple(n for n, v in self._views.items() if v.expires_s > now_s)

    def missing(self, now_s: float) -> tuple[NodeId, ...]:
        return tuple(n for n, v in self._views.items() if v.expires_s <= now_s)

    def refused_for_other(self, now_s: float) -> tuple[NodeId, ...]:
        """Voters that told us they promised someone else, whose promise may still run."""
        return tuple(
            n
            for n, v in self._views.items()
            if v.refused_by and v.refused_until_s > now_s and v.expires_s <= now_s
        )

    def holder_released(self, now_s: float, holder: NodeId) -> None:
        """`holder` released its promise (LeaseRelease): forget refusals naming it and ask
        every voter not yet promising us again at once, instead of after the retry time.
        Counts nothing: only a voter's grant does."""
        for view in self._views.values():
            if view.refused_by == holder:
                view.refused_by = ""
                view.refused_until_s = float("-inf")
            if view.expires_s <= now_s:
                view.last_sent_s = float("-inf")

    def busy_until_s(self) -> float:
        return max((v.refused_until_s for v in self._views.values()), default=float("-inf"))
