"""Peer table: direct per-link detection, gossiped heartbeat state, suspicion and refutation.

Evidence a peer lives comes two ways. A direct heartbeat on a link feeds that (peer, link)
detector. Any sign that the peer's own counter advanced (its own entry in a direct
heartbeat, or a gossiped entry relayed by a third node) feeds the peer's *liveness*
detector: a counter only advances at its owner, so a fresh advance proves the owner ran
recently, even when we cannot hear it ourselves (van Renesse's gossip-style detection).

Direct traffic every interval comes from the peers we judge: with two nodes the other
one, with more our ring predecessor (every node sends each interval to its ring successor,
and every other interval to one more peer for gossip: 1.5 bounded messages per node per
interval whatever N). A judged peer looks dead from here when its liveness detector says
DEAD and so does every link; everybody else learns its fate from gossip. A link that dies
while the peer is still carried is a LinkDown, not a death. With N > 2 the peer then
becomes SUSPECT (SWIM/Lifeguard); confirmations by other accusers shorten the timeout;
the accused is told at once and refutes by raising its incarnation. With N == 2 nobody could
confirm, so the detector's verdict is final. Deadtime caps everything: a peer silent
(no counter advance from any source) for deadtime is dead whatever phi or suspicion say.
Gossip status per incarnation is ordered ALIVE < SUSPECT < DEAD; a higher incarnation
overrides everything; older incarnations are ignored.

Public API::

    class Membership:
        __init__(self_name, incarnation, peers, links, timings, rng, start_s)
        on_heartbeat(now_s, sender, link, digest) -> list[MemberEvent]
        heard(now_s, sender, link) -> None             # any verified message
        renewal_lapsed(now_s, peer, expires_s) -> list[MemberEvent]
        lapse_due_s(peer, expires_s) -> float | None
        tick(now_s) -> list[MemberEvent]
        next_change_s(now_s) -> float                  # when a tick may next change anything
        outgoing(now_s) -> list[tuple[str, Digest]]   # call once per keepalive interval
        note_lag(lag_s) -> None; note_missed_send() -> None
        state(peer) -> PeerState; link_state(peer, link) -> LinkState
        alive_peers() -> tuple[str, ...]               # ALIVE or WARN
        snapshot(now_s) -> MembershipSnapshot
        incarnation: int; counter: int; health_score: int; rejected: int
    Digest(entries).to_wire() -> dict; Digest.from_wire(obj) -> Digest  (ValueError on junk)
    Entry(name, incarnation, counter, status, health, accuser)
    Status: ALIVE/SUSPECT/DEAD (gossiped)   PeerState: UNKNOWN/ALIVE/WARN/SUSPECT/DEAD
    LinkState: UNKNOWN/UP/DOWN
    MemberEvent = PeerJoined | PeerWarn | PeerSuspect | PeerDead | PeerRecovered | Refuted
                | LinkDown | LinkUp          (each has .peer and .reason; links add .link)

The runtime should deliver pending heartbeats and report `note_lag` before calling `tick`
after a stall, so our own pause is not mistaken for everybody else's silence.
"""

from __future__ import annotations

import enum
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from gossipha.config.model import Timings
from gossipha.core.awareness import Awareness
from gossipha.core.detector import CROSSING_MARGIN_S, Level, PhiAccrualDetector, Policy
from gossipha.core.suspicion import Suspicion

# Messages per node per interval: 1.5 on average whatever N. Every interval a node sends
# one heartbeat to its ring successor among members not DEAD to it (its MONITOR, who judges
# it on those regular direct arrivals); every GOSSIP_EVERY-th interval one more to a peer
# taken round-robin from a shuffled list of the others (SWIM's target order), so news
# spreads at random as well as around the ring. With N == ALL_PEERS_MAX_NODES (two nodes)
# the successor is the only peer: one heartbeat per interval, and each judges the other.
MONITORS = 1
GOSSIP_EVERY = 2
ALL_PEERS_MAX_NODES = 2
# The per-message bound that keeps bytes per node flat: a monitor heartbeat carries our own
# entry, an accusation of its target if we hold one, and at most MONITOR_NEWS queued
# changes it has not had yet (none in a steady state); a gossip heartbeat carries our own
# entry and GOSSIP_ENTRIES - 1 others: queued changes first, then random entries.
MONITOR_NEWS = 2
GOSSIP_ENTRIES = 4
# What a received digest may hold (the wire bound; our own digests stay within
# 2 + MONITOR_NEWS and GOSSIP_ENTRIES): with 64-character names under ~1,000 bytes.
MAX_DIGEST_ENTRIES = 8
MAX_NAME_LEN = 64
MAX_WIRE_INT = 2**53 - 1  # exact in JSON doubles
MAX_HEALTH = 255
# No early death verdict (phi's, or a lapsed lease promise's) until nothing at all, lease
# traffic included, has been heard from the peer for this many keepalives: a regular
# heartbeat was due in that time too. Only the deadtime cap ignores it.
QUIET_FLOOR_BEATS = 1.5
# A change is piggybacked RETRANSMIT_MULT * ceil(log2(N + 1)) times by each node.
RETRANSMIT_MULT = 3
# Suspicion reaches its minimum timeout after this many independent confirmations.
EXPECTED_CONFIRMATIONS = 2

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class Status(enum.Enum):
    """Gossiped status of a node at an incarnation; the wire value is one letter."""

    ALIVE = "a"
    SUSPECT = "s"
    DEAD = "d"


_RANK = {Status.ALIVE: 0, Status.SUSPECT: 1, Status.DEAD: 2}


class PeerState(enum.Enum):
    """Our local view of a peer."""

    UNKNOWN = "unknown"  # never heard, still within initdead
    ALIVE = "alive"
    WARN = "warn"  # silent past warntime (or phi_warn); not yet accused
    SUSPECT = "suspect"
    DEAD = "dead"


class LinkState(enum.Enum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


# ---------------------------------------------------------------------------- wire values


@dataclass(frozen=True, slots=True)
class Entry:
    """One node's heartbeat state as gossiped; `accuser` names who declared SUSPECT/DEAD."""

    name: str
    incarnation: int
    counter: int
    status: Status
    health: int = 0
    accuser: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "entry name")
        _check_int(self.incarnation, "incarnation", MAX_WIRE_INT)
        _check_int(self.counter, "counter", MAX_WIRE_INT)
        _check_int(self.health, "health", MAX_HEALTH)
        if not isinstance(self.status, Status):
            raise ValueError("status must be a Status")
        if (self.status is Status.ALIVE) != (self.accuser is None):
            raise ValueError("accuser is required for suspect/dead and absent for alive")
        if self.accuser is not None:
            _check_name(self.accuser, "accuser")
            if self.accuser == self.name:
                raise ValueError("a node cannot accuse itself")


def _check_name(value: object, what: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_LEN:
        raise ValueError(f"{what} must be a string of 1..{MAX_NAME_LEN} characters")
    if not _NAME_RE.match(value):
        raise ValueError(f"{what} {value[:MAX_NAME_LEN]!r} has characters outside [A-Za-z0-9._-]")


def _check_int(value: object, what: str, maximum: int) -> None:
    if type(value) is not int or not 0 <= value <= maximum:
        raise ValueError(f"{what} must be an integer in 0..{maximum}")


@dataclass(frozen=True, slots=True)
class Digest:
    """What one heartbeat carries: the sender's own entry first, then a few others."""

    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.entries) <= MAX_DIGEST_ENTRIES:
            raise ValueError(f"a digest holds 1..{MAX_DIGEST_ENTRIES} entries")
        keys = {(e.name, e.status, e.accuser) for e in self.entries}
        if len(keys) != len(self.entries):
            raise ValueError("duplicate entries in digest")

    def to_wire(self) -> dict[str, Any]:
        """Compact JSON-ready form: {"e": [[name, inc, counter, status, health, accuser]]}."""
        return {
            "e": [
                [e.name, e.incarnation, e.counter, e.status.value, e.health, e.accuser]
                for e in self.entries
            ]
        }

    @classmethod
    def from_wire(cls, obj: object) -> Digest:
        """Validate untrusted decoded JSON; anything unexpected raises ValueError."""
        if not isinstance(obj, dict) or set(obj) != {"e"}:
            raise ValueError('digest must be an object with exactly the key "e"')
        raw = obj["e"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_DIGEST_ENTRIES:
            raise ValueError(f"digest entries must be a list of 1..{MAX_DIGEST_ENTRIES}")
        entries = []
        for item in raw:
            if not isinstance(item, list) or len(item) != 6:
                raise ValueError("entry must be a list of 6 fields")
            name, inc, counter, status, health, accuser = item
            if not isinstance(status, str):
                raise ValueError("status must be a string")
            try:
                st = Status(status)
            except ValueError:
                raise ValueError(f"unknown status {status[:8]!r}") from None
            entries.append(Entry(name, inc, counter, st, health, accuser))
        return cls(tuple(entries))


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class PeerJoined:
    """First contact with a peer (or first news of it)."""

    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerWarn:
    """Silent past warntime or phi_warn: Heartbeat's WARN, an alert, not an accusation."""

    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerSuspect:
    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerDead:
    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerRecovered:
    """Back from WARN (late heartbeat) or DEAD (refuted or restarted)."""

    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class Refuted:
    """A suspect proved alive with a higher incarnation; peer == self when we refuted."""

    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class LinkDown:
    """One link to a peer went silent while the peer is still heard otherwise."""

    peer: str
    link: str
    reason: str


@dataclass(frozen=True, slots=True)
class LinkUp:
    peer: str
    link: str
    reason: str


MemberEvent: TypeAlias = (
    PeerJoined | PeerWarn | PeerSuspect | PeerDead | PeerRecovered | Refuted | LinkDown | LinkUp
)


# ---------------------------------------------------------------------------- snapshots


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    link: str
    state: LinkState
    phi: float
    silence_s: float | None
    mean_s: float
    std_s: float
    samples: int


@dataclass(frozen=True, slots=True)
class PeerSnapshot:
    """Liveness figures (any path) plus each direct link's, for metrics and status."""

    name: str
    state: PeerState
    status: Status
    incarnation: int | None
    counter: int
    health: int
    phi: float
    silence_s: float | None
    mean_s: float
    std_s: float
    samples: int
    suspicion_confirmations: int | None
    suspicion_deadline_s: float | None
    links: tuple[LinkSnapshot, ...]


@dataclass(frozen=True, slots=True)
class MembershipSnapshot:
    name: str
    incarnation: int
    counter: int
    health_score: int
    multiplier: int
    all_peers_mode: bool
    rejected: int
    peers: tuple[PeerSnapshot, ...]


# ---------------------------------------------------------------------------- internals


class _Peer:
    """Everything known about one configured peer."""

    __slots__ = (
        "accuser",
        "counter",
        "health",
        "incarnation",
        "link_det",
        "link_heard_s",
        "link_reported",
        "link_state",
        "liveness",
        "name",
        "state",
        "status",
        "suspicion",
    )

    def __init__(self, name: str, links: Sequence[str], timings: Timings) -> None:
        def det() -> PhiAccrualDetector:
            return PhiAccrualDetector(
                timings.keepalive_s,
                timings.phi_window,
                timings.phi_min_std_s,
                timings.phi_acceptable_pause_s,
            )

        self.name = name
        self.incarnation: int | None = None
        self.counter = 0
        self.health = 0
        self.status = Status.ALIVE
        self.accuser: str | None = None
        self.state = PeerState.UNKNOWN
        self.suspicion: Suspicion | None = None
        self.liveness = det()
        self.link_det = {link: det() for link in links}
        # Per link: the last verified message of any kind from it (heartbeat or lease).
        self.link_heard_s: dict[str, float] = {}
        self.link_state = dict.fromkeys(links, LinkState.UNKNOWN)
        # What LinkDown/LinkUp events last told the outside world.
        self.link_reported = dict.fromkeys(links, LinkState.UNKNOWN)

    @property
    def heard_s(self) -> float | None:
        """The last verified message of any kind from it, on any link."""
        return max(self.link_heard_s.values(), default=None)

    def entry(self, status: Status | None = None, accuser: str | None = None) -> Entry:
        assert self.incarnation is not None
        st = self.status if status is None else status
        acc = (self.accuser if status is None else accuser) if st is not Status.ALIVE else None
        return Entry(self.name, self.incarnation, self.counter, st, self.health, acc)


@dataclass(slots=True)
class _Broadcast:
    """A piggybacked change: (subject, status, accuser) at an incarnation."""

    subject: str
    status: Status
    accuser: str | None
    incarnation: int
    transmits: int  # on gossip heartbeats; the change is dropped at the retransmit limit
    seq: int
    ring_sent: str | None = None  # the successor a monitor heartbeat last carried it to
    ring_sends: int = 0  # monitor heartbeats that carried it to `ring_sent`


_CARRIED = (PeerState.ALIVE, PeerState.WARN)


class Membership:
    """The peer table of one node; pure: time and randomness come in as arguments."""

    def __init__(
        self,
        self_name: str,
        incarnation: int,
        peers: Sequence[str],
        links: Sequence[str],
        timings: Timings,
        rng: random.Random,
        start_s: float,
    ) -> None:
        _check_name(self_name, "node name")
        _check_int(incarnation, "incarnation", MAX_WIRE_INT)
        assert self_name not in peers, "peers must not include this node"
        assert len(set(peers)) == len(peers) and len(set(links)) == len(links)
        assert links, "at least one link"
        for p in peers:
            _check_name(p, "peer name")
        self.name = self_name
        self.incarnation = incarnation
        self.counter = 0
        self.rejected = 0
        self._timings = timings
        self._rng = rng
        self._links = tuple(links)
        self._policy = Policy.from_timings(timings, start_s)
        self._quiet_floor_s = QUIET_FLOOR_BEATS * timings.keepalive_s
        self._peers = {p: _Peer(p, links, timings) for p in peers}
        self._order = tuple(sorted(peers))
        self._known = frozenset((self_name, *peers))
        self._ring_order = tuple(sorted((self_name, *peers)))
        self._judged: frozenset[str] = frozenset()
        # Newly judged peers not yet heard directly: only the deadtime cap applies to them,
        # since they learn of the ring change through gossip, O(log N) intervals later.
        self._grace: set[str] = set()
        self._n = len(peers) + 1
        self._all_peers = self._n <= ALL_PEERS_MAX_NODES
        self._start_s = start_s
        # Gossip targets still to visit in this round-robin pass, and peers to tell at the
        # next round, out of turn: an accused peer of its accusation (True: only while it
        # is still accused), our accuser of our refutation (False).
        self._gossip_order: list[str] = []
        self._tell: dict[str, bool] = {}
        self._awareness = Awareness()
        self._unhealthy = False
        # Our health improved after this step's tick (`outgoing`): a shorter timeout may
        # have passed already, so `next_change_s` asks for the next tick at once.
        self._rejudge = False
        self._queue: dict[tuple[str, Status, str | None], _Broadcast] = {}
        self._seq = 0
        self._retransmit_limit = RETRANSMIT_MULT * max(1, math.ceil(math.log2(self._n + 1)))

    # ------------------------------------------------------------------ local health

    def note_lag(self, lag_s: float) -> None:
        """Our loop ran `lag_s` late; half a keepalive or more counts against our health."""
        if lag_s >= self._timings.keepalive_s / 2.0:
            self._awareness.apply_delta(max(1, int(lag_s / self._timings.keepalive_s)))
            self._unhealthy = True

    def note_stall(self, now_s: float, duration_s: float) -> None:
        """We were stopped for `duration_s`: the silence we saw is ours, not our peers'.

        Every carried peer's rhythm restarts now (no sample learned), so nobody is accused
        on evidence from before the stall; packets queued meanwhile arrive next. A peer that
        really died is then declared dead within deadtime from now.
        """
        self.note_lag(duration_s)
        if duration_s < self._timings.keepalive_s / 2.0:
            return
        for peer in self._peers.values():
            if peer.state not in _CARRIED and peer.state is not PeerState.SUSPECT:
                continue
            for link, heard_s in peer.link_heard_s.items():
                peer.link_heard_s[link] = max(heard_s, now_s)
            for det in (peer.liveness, *peer.link_det.values()):
                if det.last_s is not None and det.last_s <= now_s:
                    det.heartbeat(now_s, learn=False)

    def note_missed_send(self) -> None:
        """A heartbeat we should have sent did not go out (queue full, send error)."""
        self._awareness.apply_delta(1)
        self._unhealthy = True

    @property
    def health_score(self) -> int:
        return self._awareness.score

    # ------------------------------------------------------------------ queries

    def state(self, peer: str) -> PeerState:
        return self._peers[peer].state

    def link_state(self, peer: str, link: str) -> LinkState:
        return self._peers[peer].link_state[link]

    def alive_peers(self) -> tuple[str, ...]:
        return tuple(p for p in self._order if self._peers[p].state in _CARRIED)

    # ------------------------------------------------------------------ inputs

    def heard(self, now_s: float, sender: str, link: str) -> None:
        """A verified message of any kind from `sender` on `link`: evidence for the quiet
        floor (`_heard_lately`) and for `renewal_lapsed`.

        Lease traffic comes at its own rhythm (every renewal while `sender` holds, then
        none), so it does not feed the phi detectors, which learn the heartbeat rhythm.
        """
        peer = self._peers.get(sender)
        if peer is not None and link in peer.link_det:
            peer.link_heard_s[link] = now_s

    def lapse_due_s(self, peer: str, expires_s: float) -> float | None:
        """When `renewal_lapsed` would find `peer` dead if it stays silent; None: never."""
        p = self._peers.get(peer)
        heard_s = None if p is None else p.heard_s
        if self._n != 2 or p is None or p.status is not Status.ALIVE or heard_s is None:
            return None
        return max(expires_s, heard_s + self._quiet_floor_s)

    def renewal_lapsed(self, now_s: float, peer: str, expires_s: float) -> list[MemberEvent]:
        """Our voter's promise to `peer`, which runs the group, ran out unrenewed at `expires_s`.

        Only with two nodes, both voters, the caller checking that and that `peer`'s status
        says it runs the group: such a holder needs both promises, so it renews ours every
        quarter lease (or with a heartbeat up to an eighth later: the caller adds that to
        `expires_s`) and retries every sixteenth, on every link. A lapse with nothing at all
        heard from it for the quiet floor as well (a dozen lease messages and a heartbeat
        lost, or a dead node) declares it dead then, without waiting for phi's floor of
        three keepalives (6 s with the tutorial's files). A holder that stopped says so in
        its status (pushed at once, and in every heartbeat), and the caller stops asking.
        """
        due = self.lapse_due_s(peer, expires_s)
        if due is None or now_s < due:
            return []
        p = self._peers[peer]
        assert p.heard_s is not None
        quiet = now_s - p.heard_s
        dead = self._declare_dead(
            p, f"silent {quiet:.3f}s and our lease promise to it lapsed unrenewed"
        )
        return [dead, *self._transition(p, PeerState.DEAD, now_s)]

    def on_heartbeat(
        self, now_s: float, sender: str, link: str, digest: Digest
    ) -> list[MemberEvent]:
        """A verified message from `sender` on `link`; its first entry must be its own."""
        peer = self._peers.get(sender)
        first = digest.entries[0]
        if (
            peer is None
            or link not in peer.link_det
            or first.name != sender
            or first.status is not Status.ALIVE
        ):
            self.rejected += 1
            return []
        self._arrival(peer.link_det[link], now_s)
        self._grace.discard(sender)
        events: list[MemberEvent] = []
        touched: list[_Peer] = [peer]
        for entry in digest.entries:
            if entry.name == self.name:
                events.extend(self._merge_self(entry, sender))
                continue
            subject = self._peers.get(entry.name)
            if subject is None or (entry.accuser is not None and entry.accuser not in self._known):
                continue  # not a configured member: nodes join only from the configured list
            self._merge(subject, entry, sender, now_s, events)
            if subject is not peer:
                touched.append(subject)
        judges = self._judges(now_s)
        for p in touched:
            events.extend(self._evaluate(p, now_s, p.name in judges))
        return events

    def tick(self, now_s: float) -> list[MemberEvent]:
        """Re-judge every peer: warntime, phi, deadtime, initdead and suspicion deadlines."""
        events: list[MemberEvent] = []
        judges = self._judges(now_s)
        self._rejudge = False
        for name in self._order:
            events.extend(self._evaluate(self._peers[name], now_s, name in judges))
        return events

    def next_change_s(self, now_s: float) -> float:
        """The earliest time a `tick` without inputs meanwhile may change anything: the
        detectors' WARN/DEAD crossings of every judged peer and link (`Policy`), grace
        and suspicion deadlines, and initdead; now, if our health improved since the last
        `tick` (the timeouts it scales shrank). Call it right after `tick` (or
        `on_heartbeat`) at `now_s`; it may be early (a change the others mask), never late.
        """
        if self._rejudge:
            return now_s
        t = math.inf
        initdead_end_s = self._start_s + self._timings.initdead_s + CROSSING_MARGIN_S
        if now_s < initdead_end_s:
            t = initdead_end_s  # unheard peers: judged, and judged DEAD, from then on
        policy, mult = self._policy, self._awareness.multiplier
        deadtime_s = self._timings.deadtime_s + CROSSING_MARGIN_S
        judged = self._order if self._all_peers else self._judged
        for name in judged:
            peer = self._peers[name]
            t = min(t, policy.next_change_s(peer.liveness, now_s, mult))
            last_s = peer.liveness.last_s
            if last_s is not None and now_s < last_s + deadtime_s:
                t = min(t, last_s + deadtime_s)  # the cap, also for a grace or suspect peer
            for det in peer.link_det.values():
                t = min(t, policy.next_change_s(det, now_s, mult))
            # An early verdict the quiet floor holds back falls due when the floor ends.
            t = min(t, self._deferred_until_s(peer.heard_s, peer.liveness, now_s, mult))
            for link, det in peer.link_det.items():
                heard_s = peer.link_heard_s.get(link)
                t = min(t, self._deferred_until_s(heard_s, det, now_s, mult))
        for peer in self._peers.values():
            if peer.suspicion is not None and peer.suspicion.deadline_s > now_s:
                t = min(t, peer.suspicion.deadline_s)
        return t

    def outgoing(self, now_s: float) -> list[tuple[str, Digest]]:
        """One heartbeat round: our monitor every time, a gossip target every other round.

        At most 2 messages (1.5 on average) of bounded size, whatever N: the load per node
        is flat. Two nodes: one message, to the only peer, as before.
        """
        del now_s  # the round is driven by the caller's interval; kept for symmetry
        self.counter += 1
        assert self.counter <= MAX_WIRE_INT
        if not self._unhealthy and self._awareness.apply_delta(-1):
            self._rejudge = True
        self._unhealthy = False
        ring_succ = self._ring()[0]
        if ring_succ:
            succ = ring_succ[0]
        else:  # every peer is DEAD to us: keep telling our plain successor, so it can refute
            order = self._ring_order
            succ = order[(order.index(self.name) + 1) % len(order)]
        out = [(succ, self._digest_for(succ, gossip=False))]
        if self.counter % GOSSIP_EVERY == 0 or self._tell:
            target = self._gossip_target(succ)
            if target is not None:
                out.append((target, self._digest_for(target, gossip=True)))
        assert len(out) <= 2 and len({t for t, _ in out}) == len(out)
        return out

    def _gossip_target(self, succ: str) -> str | None:
        """A peer to tell out of turn (accused, accuser, new predecessor), else the next of a pass.

        The pass covers every peer but our successor, so each is visited once per pass
        (SWIM's round-robin: no peer waits long for news). DEAD ones too: one that is alive
        after all (a healed partition) learns it was declared dead and refutes.
        """
        while self._tell:
            name = next(iter(self._tell))
            if_accused = self._tell.pop(name)
            accused = self._peers[name].status is not Status.ALIVE
            if name != succ and (accused or not if_accused):
                return name
        for _ in range(2):
            while self._gossip_order:
                name = self._gossip_order.pop()
                if name != succ:
                    return name
            pool = [p for p in self._order if p != succ]
            if not pool:
                return None
            self._rng.shuffle(pool)
            self._gossip_order = pool
        return None

    # ------------------------------------------------------------------ merging

    def _merge_self(self, entry: Entry, sender: str) -> list[MemberEvent]:
        """Refute any accusation at our incarnation, or a higher incarnation of us."""
        accused = entry.status is not Status.ALIVE and entry.incarnation >= self.incarnation
        if not accused and entry.incarnation <= self.incarnation:
            return []
        old = self.incarnation
        self.incarnation = min(MAX_WIRE_INT, entry.incarnation + 1)
        if accused:
            self._awareness.apply_delta(1)  # Lifeguard: being accused hints we are the slow one
            if entry.accuser in self._peers:
                self._tell[entry.accuser] = False  # the refutation goes to the accuser first
            why = f"{entry.status.name.lower()} by {entry.accuser} (via {sender}) at {old}"
        else:
            why = f"{sender} knew a later incarnation {entry.incarnation} of us"
        return [Refuted(self.name, f"{why}; incarnation now {self.incarnation}")]

    def _ring(self) -> tuple[list[str], list[str]]:
        """Our MONITORS successors and predecessors on the ring of members not DEAD to us.

        Successors get our heartbeat every interval; we judge our predecessors. Skipping the
        dead reshapes the ring, so a node whose monitors died gets new ones.
        """
        ring = [n for n in self._ring_order if n == self.name or self._peers[n].state is not
                PeerState.DEAD]  # fmt: skip
        i = ring.index(self.name)
        size = len(ring)
        k = min(MONITORS, size - 1)
        succ = [ring[(i + j) % size] for j in range(1, k + 1)]
        pred = [ring[(i - j) % size] for j in range(1, k + 1)]
        return succ, pred

    def incarnation_of(self, peer: str) -> int | None:
        return self._peers[peer].incarnation

    def _fresh(self, peer: _Peer, now_s: float) -> bool:
        """We have our own recent evidence that `peer` runs (direct or a gossiped counter).

        In gossip mode only the peers we monitor count: for the others our evidence is
        sparse relayed gossip, weaker than a monitor's verdict.
        """
        if not self._all_peers and peer.name not in self._judged:
            return False
        level = self._policy.level(peer.liveness, now_s, self._awareness.multiplier)
        return level in (Level.OK, Level.WARN)

    def _merge(
        self, peer: _Peer, entry: Entry, sender: str, now_s: float, events: list[MemberEvent]
    ) -> None:
        if peer.incarnation is not None and entry.incarnation < peer.incarnation:
            if entry.status is not Status.ALIVE and peer.status is Status.ALIVE:
                # An accusation of an incarnation we know was superseded (often the null
                # one of a peer its accuser never heard): the sender is behind, and would
                # keep the peer dead and its ring reshaped around it until filler gossip
                # happened to bring the news. Tell it now.
                self._enqueue(peer.name, Status.ALIVE, None, peer.incarnation)
                self._tell.setdefault(sender, False)
            return  # stale incarnation: ignored
        if peer.incarnation is None or entry.incarnation > peer.incarnation:
            # A first-learnt incarnation is no news (filler spreads it); a higher one is a
            # refutation or a restart, which everybody must hear.
            news = peer.incarnation is not None
            peer.incarnation = entry.incarnation
            peer.counter = entry.counter
            peer.health = entry.health
            peer.status = Status.ALIVE
            peer.accuser = None
            peer.suspicion = None
            self._arrival(peer.liveness, now_s)
            if entry.status is Status.ALIVE:
                if news:
                    self._enqueue(peer.name, Status.ALIVE, None, entry.incarnation)
                return
        elif entry.counter > peer.counter:
            peer.counter = entry.counter
            peer.health = entry.health
            self._arrival(peer.liveness, now_s)
        if entry.status is Status.ALIVE or peer.status is Status.DEAD:
            return
        accuser = entry.accuser
        assert accuser is not None
        if entry.status is Status.DEAD and not self._fresh(peer, now_s):
            peer.status = Status.DEAD
            peer.accuser = accuser
            peer.suspicion = None
            self._enqueue(peer.name, Status.DEAD, accuser, entry.incarnation)
            events.append(PeerDead(peer.name, f"declared dead by {accuser} (via {sender})"))
            return
        # A gossiped suspicion, or a "dead" about a node we still hear: suspect it.
        if peer.suspicion is None:
            self._start_suspicion(peer, accuser, now_s)
            events.append(PeerSuspect(peer.name, f"suspected by {accuser} (via {sender})"))
        elif peer.suspicion.confirm(accuser):
            self._enqueue(peer.name, Status.SUSPECT, accuser, entry.incarnation)

    def _arrival(self, det: PhiAccrualDetector, now_s: float) -> None:
        """Feed a detector; a gap it had already judged DEAD is an outage, not rhythm."""
        dead = self._policy.level(det, now_s, self._awareness.multiplier) is Level.DEAD
        det.heartbeat(now_s, learn=not dead or det.last_s is None)

    def _start_suspicion(self, peer: _Peer, accuser: str, now_s: float) -> None:
        if peer.incarnation is None:
            peer.incarnation = 0  # never heard: accuse the null incarnation, any real one wins
        # A round trip of gossip news: ceil(log2 N) hops each way, a random hop every
        # GOSSIP_EVERY intervals.
        rounds = max(1, math.ceil(math.log2(self._n)))
        min_s = self._awareness.scale(2.0 * GOSSIP_EVERY * rounds * self._timings.keepalive_s)
        max_s = max(min_s, self._awareness.scale(self._timings.deadtime_s))
        judges = self._n - 1 if self._all_peers else MONITORS
        expected = max(0, min(EXPECTED_CONFIRMATIONS, judges - 1))
        peer.status = Status.SUSPECT
        peer.accuser = accuser
        peer.suspicion = Suspicion(
            peer.name, peer.incarnation, accuser, now_s, expected, min_s, max_s
        )
        self._enqueue(peer.name, Status.SUSPECT, accuser, peer.incarnation)
        if accuser == self.name:
            self._tell.setdefault(peer.name, True)  # so the accused hears of it and can refute

    def _declare_dead(self, peer: _Peer, reason: str) -> PeerDead:
        if peer.incarnation is None:
            peer.incarnation = 0
        peer.status = Status.DEAD
        peer.accuser = self.name
        peer.suspicion = None
        self._enqueue(peer.name, Status.DEAD, self.name, peer.incarnation)
        return PeerDead(peer.name, reason)

    # ------------------------------------------------------------------ judging

    def _judges(self, now_s: float) -> frozenset[str]:
        """The peers our own detectors may accuse: all of them, or our ring predecessors.

        A peer that just became ours to judge (the ring reshaped around a death) gets the
        benefit of the doubt: its rhythm restarts now, as if it had just been heard, since
        until now only sparse gossip told us about it and it may not yet send to us.
        """
        if self._all_peers:
            return frozenset(self._order)
        judges = frozenset(self._ring()[1])
        for name in judges - self._judged:
            peer = self._peers[name]
            if peer.liveness.last_s is None and now_s < self._start_s + self._timings.initdead_s:
                continue  # never heard, still starting up: initdead applies as for two nodes
            for det in (peer.liveness, *peer.link_det.values()):
                if det.last_s is None or det.last_s <= now_s:
                    det.heartbeat(now_s, learn=False)
            self._grace.add(name)
            # It may not know yet of the death that made us its monitor (news travels the
            # ring the other way): tell it now, or it keeps sending to the dead node and we
            # would declare it dead at the end of its grace.
            self._tell.setdefault(name, False)
        self._grace &= judges
        self._judged = judges
        return judges

    def _heard_directly(self, peer: _Peer) -> bool:
        """We heard this judged peer ourselves since it became ours to judge.

        Only then is our silence evidence enough for the deadtime cap to be final. A peer
        we judge but never heard (a path between just the two of us is broken, or it still
        sends to a monitor we think dead) stays a suspect it can refute through the others:
        otherwise one broken pair declares it dead to everyone, again after every refutation.
        """
        return peer.name not in self._grace and any(
            d.last_s is not None for d in peer.link_det.values()
        )

    def _evaluate(self, peer: _Peer, now_s: float, judged: bool) -> list[MemberEvent]:
        """Derive the local state from detectors and gossip status; emit the transitions.

        In gossip mode a peer we do not monitor only gets sparse, delayed gossip about its
        counter, which is no basis for accusing it: its state then follows gossip alone.
        """
        events: list[MemberEvent] = []
        mult = self._awareness.multiplier
        if not judged:
            live = Level.UNKNOWN if peer.liveness.last_s is None else Level.OK
        else:
            live = self._policy.level(peer.liveness, now_s, mult)
        if judged and peer.name in self._grace and live is not Level.OK:
            quiet = peer.liveness.silence_s(now_s) or 0.0
            live = Level.DEAD if quiet >= self._timings.deadtime_s else Level.OK
        links = (
            {name: self._link_level(peer, name, now_s, mult) for name in peer.link_det}
            if judged
            else {}
        )
        level = live
        if (
            judged
            and live is Level.DEAD
            and any(lv in (Level.OK, Level.WARN) for lv in links.values())
        ):
            level = Level.WARN  # still heard directly on some link
        if level is Level.DEAD and self._heard_lately(peer.heard_s, peer.liveness, now_s):
            level = Level.WARN  # lease traffic still comes: late heartbeats, not a death
        if peer.status is Status.ALIVE and level is Level.DEAD:
            silence = peer.liveness.silence_s(now_s)
            why = (
                f"not heard within initdead {self._timings.initdead_s:g}s"
                if silence is None
                else f"silent {silence:.3f}s, phi {peer.liveness.phi(now_s):.2f} on every path"
            )
            if self._n == 2:
                events.append(self._declare_dead(peer, why))
            else:
                self._start_suspicion(peer, self.name, now_s)
                events.append(PeerSuspect(peer.name, why))
        if peer.status is Status.SUSPECT:
            susp = peer.suspicion
            assert susp is not None
            if level is Level.DEAD and susp.confirm(self.name):
                # our own detector agrees with someone else's accusation: confirm it
                self._enqueue(peer.name, Status.SUSPECT, self.name, susp.incarnation)
            silence = peer.liveness.silence_s(now_s)
            if (
                judged
                and silence is not None
                and silence >= self._timings.deadtime_s
                and self._heard_directly(peer)
            ):
                events.append(self._declare_dead(peer, f"silent {silence:.3f}s >= deadtime"))
            elif now_s >= susp.deadline_s:
                events.append(
                    self._declare_dead(
                        peer,
                        f"suspicion by {susp.accuser} not refuted in {susp.timeout_s:.3f}s "
                        f"({susp.confirmations} confirmations)",
                    )
                )
        if peer.status is Status.DEAD:
            new = PeerState.DEAD
        elif peer.status is Status.SUSPECT:
            new = PeerState.SUSPECT
        elif level is Level.UNKNOWN:
            new = PeerState.UNKNOWN
        elif level is Level.WARN:
            new = PeerState.WARN
        else:
            new = PeerState.ALIVE
        events.extend(self._transition(peer, new, now_s))
        if judged:
            events.extend(self._link_events(peer, links))
        return events

    def _heard_lately(self, heard_s: float | None, det: PhiAccrualDetector, now_s: float) -> bool:
        """Some message came within the quiet floor, and the heartbeats' deadtime has not run out
        (for a stream heard at least once: a peer never heard is judged by initdead alone).

        Heartbeats alone drive phi, but a renewal or grant from the peer proves it runs just
        as well: with one link at the tutorial's 2 s keepalive, three heartbeats lost in a
        row (20 % loss: every few minutes) must not declare the lease holder dead.
        """
        if heard_s is None or now_s - heard_s >= self._quiet_floor_s:
            return False
        silence = det.silence_s(now_s)  # None: never heard on it, initdead's verdict stands
        return silence is not None and silence < self._timings.deadtime_s

    def _deferred_until_s(
        self, heard_s: float | None, det: PhiAccrualDetector, now_s: float, mult: float
    ) -> float:
        """When the quiet floor stops holding back a DEAD verdict due now (its end, or the
        stream's deadtime, whichever comes first: `_heard_lately`); inf if none is."""
        if not self._heard_lately(heard_s, det, now_s):
            return math.inf
        if self._policy.level(det, now_s, mult) is not Level.DEAD:
            return math.inf  # its crossing is a change of its own (Policy.next_change_s)
        assert heard_s is not None and det.last_s is not None
        floor_end_s = heard_s + self._quiet_floor_s
        return min(floor_end_s, det.last_s + self._timings.deadtime_s) + CROSSING_MARGIN_S

    def _link_level(self, peer: _Peer, link: str, now_s: float, mult: float) -> Level:
        det = peer.link_det[link]
        level = self._policy.level(det, now_s, mult)
        if level is Level.DEAD and self._heard_lately(peer.link_heard_s.get(link), det, now_s):
            return Level.WARN
        return level

    def _transition(self, peer: _Peer, new: PeerState, now_s: float) -> list[MemberEvent]:
        old = peer.state
        peer.state = new
        if old is new:
            return []
        silence = peer.liveness.silence_s(now_s)
        inc = peer.incarnation
        if new is PeerState.WARN and old in (PeerState.ALIVE, PeerState.UNKNOWN):
            return [
                PeerWarn(
                    peer.name,
                    f"silent {silence or 0.0:.3f}s, phi {peer.liveness.phi(now_s):.2f}",
                )
            ]
        if new in _CARRIED:
            if old is PeerState.UNKNOWN:
                return [PeerJoined(peer.name, f"first heard at incarnation {inc}")]
            if old is PeerState.SUSPECT:
                return [Refuted(peer.name, f"alive at incarnation {inc}")]
            if old is PeerState.DEAD:
                return [PeerRecovered(peer.name, f"alive at incarnation {inc}")]
            if old is PeerState.WARN and new is PeerState.ALIVE:
                return [PeerRecovered(peer.name, "heard again after warn (late heartbeat)")]
        return []  # SUSPECT/DEAD events are emitted where the accusation is made

    def _link_events(self, peer: _Peer, levels: dict[str, Level]) -> list[MemberEvent]:
        """Tell about links only while the peer is carried; whole loss is a peer event."""
        events: list[MemberEvent] = []
        for name, lv in levels.items():
            if lv is Level.DEAD:
                peer.link_state[name] = LinkState.DOWN
            elif lv is not Level.UNKNOWN:
                peer.link_state[name] = LinkState.UP
            if peer.state not in _CARRIED:
                continue
            now, told = peer.link_state[name], peer.link_reported[name]
            if now is LinkState.DOWN and told is not LinkState.DOWN:
                events.append(
                    LinkDown(peer.name, name, "silent on this link; peer still heard otherwise")
                )
            elif now is LinkState.UP and told is LinkState.DOWN:
                events.append(LinkUp(peer.name, name, "heard again on this link"))
            if now is not LinkState.UNKNOWN:
                peer.link_reported[name] = now
        return events

    # ------------------------------------------------------------------ gossip out

    def _enqueue(self, subject: str, status: Status, accuser: str | None, inc: int) -> None:
        """Queue a change for piggybacking; a newer one about `subject` drops older ones."""
        for key, b in list(self._queue.items()):
            if b.subject == subject and (
                b.incarnation < inc or (b.incarnation == inc and _RANK[b.status] < _RANK[status])
            ):
                del self._queue[key]
        self._seq += 1
        self._queue[(subject, status, accuser)] = _Broadcast(
            subject, status, accuser, inc, 0, self._seq
        )

    def _digest_for(self, target: str, gossip: bool) -> Digest:
        """Our own entry, `target`'s accusation if we hold one, then queued changes.

        A gossip heartbeat takes the least-sent changes (each send counts towards the
        retransmit limit) and fills up to GOSSIP_ENTRIES with random known entries, which
        keep spreading counters, incarnations and DEAD verdicts after their news is spent.
        A monitor heartbeat takes up to MONITOR_NEWS changes not yet carried to this
        successor as often as the retransmit limit (a lost one comes again: with three
        nodes and one dead, the monitor heartbeat is all the two survivors send each
        other); those sends do not count, so a change still gets its full share of
        random targets. In a steady state a monitor heartbeat is our own entry alone.
        """
        own = Entry(self.name, self.incarnation, self.counter, Status.ALIVE, self.health_score)
        entries: list[Entry] = [own]
        included: set[tuple[str, Status, str | None]] = set()
        tpeer = self._peers[target]
        if tpeer.status is not Status.ALIVE and tpeer.incarnation is not None:
            e = tpeer.entry()  # tell the accused, so it can refute at once
            entries.append(e)
            included.add((e.name, e.status, e.accuser))
        limit = len(entries) + MONITOR_NEWS if not gossip else max(len(entries), GOSSIP_ENTRIES)
        for key, b in sorted(self._queue.items(), key=lambda kv: (kv[1].transmits, -kv[1].seq)):
            if len(entries) >= limit:
                break
            peer = self._peers[b.subject]
            if peer.incarnation != b.incarnation or _RANK[peer.status] > _RANK[b.status]:
                del self._queue[key]  # superseded
                continue
            if key in included or (b.subject == target and b.status is Status.ALIVE):
                continue
            if not gossip and b.ring_sent == target and b.ring_sends >= self._retransmit_limit:
                continue
            entries.append(peer.entry(b.status, b.accuser))
            included.add(key)
            if not gossip:
                if b.ring_sent != target:
                    b.ring_sent, b.ring_sends = target, 0
                b.ring_sends += 1
                continue
            b.transmits += 1
            if b.transmits >= self._retransmit_limit:
                del self._queue[key]
        if gossip and len(entries) < limit:
            names = {e.name for e in entries}
            pool = [
                p
                for p in self._order
                if p != target and p not in names and self._peers[p].incarnation is not None
            ]
            for p in self._rng.sample(pool, min(limit - len(entries), len(pool))):
                e = self._peers[p].entry()
                if (e.name, e.status, e.accuser) not in included:
                    entries.append(e)
        assert len(entries) <= MAX_DIGEST_ENTRIES
        return Digest(tuple(entries))

    # ------------------------------------------------------------------ status

    def snapshot(self, now_s: float) -> MembershipSnapshot:
        peers = []
        for name in self._order:
            p = self._peers[name]
            links = tuple(
                LinkSnapshot(
                    link=ln,
                    state=p.link_state[ln],
                    phi=d.phi(now_s),
                    silence_s=d.silence_s(now_s),
                    mean_s=d.mean_s,
                    std_s=d.std_s,
                    samples=d.samples,
                )
                for ln, d in p.link_det.items()
            )
            susp = p.suspicion
            peers.append(
                PeerSnapshot(
                    name=name,
                    state=p.state,
                    status=p.status,
                    incarnation=p.incarnation,
                    counter=p.counter,
                    health=p.health,
                    phi=p.liveness.phi(now_s),
                    silence_s=p.liveness.silence_s(now_s),
                    mean_s=p.liveness.mean_s,
                    std_s=p.liveness.std_s,
                    samples=p.liveness.samples,
                    suspicion_confirmations=None if susp is None else susp.confirmations,
                    suspicion_deadline_s=None if susp is None else susp.deadline_s,
                    links=links,
                )
            )
        return MembershipSnapshot(
            name=self.name,
            incarnation=self.incarnation,
            counter=self.counter,
            health_score=self._awareness.score,
            multiplier=self._awareness.multiplier,
            all_peers_mode=self._all_peers,
            rejected=self.rejected,
            peers=tuple(peers),
        )
