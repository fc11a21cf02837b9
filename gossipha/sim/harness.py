"""The harness: an event queue in real (simulated) time driving N real `Node` cores.

Each host has a clock (drift within the bound), an agent (a `Node`, absent while crashed or
killed) and the groups it runs at host level: a group runs from StartGroup until StopGroup,
and survives `kill -9` of the agent (the VIP stays up) but not a host crash. The safety
checker runs after every step: never two hosts running one group at the same real instant.
A paused agent learns of its pause (`Stalled`) only past the runtime's stall threshold, as
the runtime tells it; a shorter pause goes unreported, so the core is checked without it.

The one overlap that is not a violation is limit L1 (docs/design.md): a VIP left up by an
agent that is not executing, unseen across a cut service network, *and* whose lease, as the
voters granted it, had run out in real time before the successor started. The ledger of
every promise each voter gave (`Sim.promised_until`, real time, kept when the voter dies)
is what proves the last part; anything else is a safety violation.
"""

from __future__ import annotations

import heapq
import json
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from gossipha.config.model import (
    Auth,
    AuthKey,
    AuthMethod,
    Config,
    Link,
    LinkKind,
    NodeRole,
    PingGroup,
    ResourceGroup,
    Timings,
    VipResource,
)
from gossipha.config.model import (
    Node as NodeConfig,
)
from gossipha.core.node import Node, Phase
from gossipha.core.types import (
    FoundRunning,
    Input,
    LeaseRelease,
    LeaseReply,
    LeaseRequest,
    MessageReceived,
    NoticeKind,
    Output,
    PingResult,
    ProbeVip,
    ResourceAction,
    ResourceResult,
    Shutdown,
    Stalled,
    StartGroup,
    StopGroup,
    Tick,
    VipProbeResult,
    message_from_wire,
)
from gossipha.runtime.clock import StallDetector, next_wakeup_s, stall_threshold_s
from gossipha.sim.clock import Clock
from gossipha.sim.net import FakeNet, PathOptions

PING = "ping"
HEADER_BYTES = 35 + 8 + 32  # codec header, a short sender name, HMAC-SHA256
# A stale grant lands this long after the request whose seq it matches (hold_stale_copies).
STALE_GRANT_LAG_S = 0.0005
# How many of a voter's latest grants to one node a stale_run fault holds copies of.
STALE_GRANTS_KEPT = 32


def native_timings() -> Timings:
    """The native defaults (gossipha.config.native), as `gossipha sim` uses them."""
    from gossipha.config.native import NativeDefaults

    d = NativeDefaults()
    return Timings(
        keepalive_s=d.keepalive_s,
        deadtime_s=d.deadtime_s,
        warntime_s=d.warntime_s,
        initdead_s=d.initdead_s,
        ping_interval_s=d.ping_interval_s,
        deadping_s=d.deadping_s,
        lease_s=d.lease_s,
        max_drift=d.max_drift,
        vip_probe_count=d.vip_probe_count,
        vip_probe_interval_s=d.vip_probe_interval_s,
        failback_delay_s=d.failback_delay_s,
    )


def make_config(
    members: int,
    *,
    witnesses: int = 0,
    timings: Timings | None = None,
    groups: int = 1,
    auto_failback: bool = True,
    ping: bool = True,
    ping_failover: bool = True,
) -> Config:
    """A cluster of n0..n{members-1} (+ w0.. witnesses), group g0 preferring n0."""
    import ipaddress

    nodes = [NodeConfig(f"n{i}") for i in range(members)]
    nodes += [NodeConfig(f"w{i}", role=NodeRole.WITNESS) for i in range(witnesses)]
    gs = tuple(
        ResourceGroup(
            f"g{k}",
            (VipResource(ipaddress.ip_address(f"192.0.2.{100 + k}"), 24, "eth0"),),
            preferred=f"n{k % members}",
        )
        for k in range(groups)
    )
    return Config(
        source=Path("sim"),
        cluster_name="sim",
        node_name="n0",
        nodes=tuple(nodes),
        links=(Link("hb", LinkKind.BCAST, "eth1"),),
        ping_groups=(PingGroup(PING, (ipaddress.ip_address("192.0.2.1"),)),) if ping else (),
        timings=timings or native_timings(),
        auth=Auth(Path("authkeys"), 1, (AuthKey(1, AuthMethod.SHA256, b"sim"),)),
        groups=gs,
        auto_failback=auto_failback,
        ping_failover=ping_failover,
    )


@dataclass(slots=True)
class Host:
    name: str
    clock: Clock
    node: Node | None = None
    incarnation: int = 0
    up: set[str] = field(default_factory=set)  # groups running on this host (VIP up)
    paused_until_s: float | None = None
    paused_at_s: float = 0.0
    backlog: list[Input] = field(default_factory=list)
    ping_ok: bool = True
    wake_token: int = 0
    leaving: bool = False  # graceful stop in progress: removed once node.done
    executing_since_s: float = 0.0  # the agent's last start or resume
    # Groups whose VIP was up when the agent resumed and whose lease had run out by then:
    # their stop is an orphan's until the VIP is down or the group starts again.
    stale_up: set[str] = field(default_factory=set)
    # group -> (token, stale, epoch) of a delayed stop under way (Sim.stop_delay_max_s)
    stopping: dict[str, tuple[int, bool, int]] = field(default_factory=dict)
    orphans: set[str] = field(default_factory=set)  # orphaned groups before the last step
    # The runtime's stall rule on this host's clock: a pause is reported only past it.
    stall: StallDetector = field(default_factory=lambda: StallDetector(0.0))


@dataclass(slots=True)
class Overlap:
    """Two or more hosts running one group, from `begin_s` until fewer do."""

    holders: frozenset[str]
    begin_s: float
    orphans: tuple[str, ...]  # not executing (Sim.orphaned) now
    orphan: bool  # counted as limit L1; False: a safety violation
    outlived_s: float = 0.0  # the most an orphan stayed one after its agent's return
    # When each orphan became one inside this overlap (its time past its return counts
    # from then, not from the overlap's start).
    orphan_since_s: dict[str, float] = field(default_factory=dict)
    # (orphan, other holder) pairs judged apart on the service network when they began to
    # overlap (Sim._is_l1): still so while both run the group, whatever heals meanwhile.
    apart: frozenset[tuple[str, str]] = frozenset()


@dataclass(slots=True)
class Violation:
    kind: str  # "safety" | "liveness"
    at_s: float
    detail: str


@dataclass(slots=True)
class Stats:
    steps: int = 0
    messages: int = 0
    bytes: int = 0
    starts: list[tuple[float, str, str, int]] = field(default_factory=list)  # t, host, group, e
    stops: list[tuple[float, str, str]] = field(default_factory=list)
    dead_notices: list[tuple[float, str, str]] = field(default_factory=list)  # t, by, peer
    split_brain_notices: int = 0
    orphan_overlaps: int = 0  # overlaps inside documented limit L1 (see Sim.orphaned)
    # Per finished L1 overlap: (its length, how long it outlived its orphan's agent's
    # return: a restart or a resume), real seconds.
    orphan_spans: list[tuple[float, float]] = field(default_factory=list)


class Sim:
    """One seeded run. Drive it with `at(t, fn)` faults and `run_until(t)`."""

    def __init__(
        self,
        config: Config,
        seed: int,
        *,
        drift: bool = True,
        path: PathOptions | None = None,
        measure_bytes: bool = False,
        roundtrip: bool = False,
        action_delay_s: float = 0.01,
        trace_limit: int = 200,
        stop_delay_max_s: float = 0.0,
    ) -> None:
        self.config = config
        self.seed = seed
        self.rng = random.Random(seed)
        self.net = FakeNet(random.Random(self.rng.getrandbits(64)), path or PathOptions())
        self.now_s = 0.0
        self.measure_bytes = measure_bytes
        self.roundtrip = roundtrip
        self.action_delay_s = action_delay_s
        # StopGroup takes the VIP down after up to this long (0: at once). The runtime's
        # budget is the stop guard, g * L (docs/design.md, L4); the swarm uses most of it,
        # so a lease rule that leans on the guard for its own margin is found.
        self.stop_delay_max_s = stop_delay_max_s
        self._slow_stops: dict[str, float] = {}  # host -> how long its next stop takes
        self._stop_seq = 0
        self.violations: list[Violation] = []
        self.stats = Stats()
        self.trace: list[str] = []
        self._trace_limit = trace_limit
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._probes: dict[str, list[tuple[str, float, float]]] = {}  # group -> (host, t0, t1)
        # (group, voter, holder, voter's incarnation) -> real time its promise ends.
        self.promised_until: dict[tuple[str, str, str, int], float] = {}
        self._overlaps: dict[str, Overlap] = {}
        self._on_grant: dict[str, Callable[[], None]] = {}  # host -> armed fault
        self._on_notice: dict[tuple[str, NoticeKind], Callable[[], None]] = {}
        self._on_probe: dict[str, Callable[[], None]] = {}
        # sender -> its LeaseReleases held back by a fault (hold_releases), and who still
        # has new ones captured
        self._held_releases: dict[str, list[tuple[str, LeaseRequest | LeaseRelease]]] = {}
        self._capturing: set[str] = set()
        # The latest lease request each node sent each voter, and the latest grants each
        # voter sent each node: a fault's copies of an earlier run's messages (stale_run).
        self._last_request: dict[tuple[str, str], LeaseRequest] = {}
        self._last_grants: dict[tuple[str, str], deque[LeaseReply]] = {}
        # node -> seq -> (voter, a grant to its earlier run): delivered as it sends that seq
        self._stale_grants: dict[str, dict[int, list[tuple[str, LeaseReply]]]] = {}
        rho = config.timings.max_drift
        self.hosts: dict[str, Host] = {}
        for n in config.nodes:
            rate = 1.0 + (self.rng.uniform(-rho, rho) if drift else 0.0)
            clock = Clock(rate, self.rng.uniform(0.0, 1000.0) if drift else 0.0)
            t = config.timings
            stall = StallDetector(stall_threshold_s(t.keepalive_s, t.lease_s))
            self.hosts[n.name] = Host(n.name, clock, stall=stall)
        for name in self.hosts:
            self.start_agent(name)

    # ------------------------------------------------------------------ scheduling

    def at(self, t_s: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (t_s, self._seq, fn))

    def fault(self, t_s: float, label: str, fn: Callable[[], object]) -> None:
        """Inject a fault at `t_s`, logged in the trace (so a failing seed explains itself)."""

        def go() -> None:
            self.log(f"FAULT {label}")
            fn()

        self.at(t_s, go)

    def run_until(self, t_s: float) -> None:
        while self._queue and self._queue[0][0] <= t_s:
            when, _, fn = heapq.heappop(self._queue)
            self.now_s = max(self.now_s, when)
            fn()
        self.now_s = max(self.now_s, t_s)

    def log(self, text: str) -> None:
        if len(self.trace) < self._trace_limit:
            self.trace.append(f"{self.now_s:9.4f} {text}")
        else:
            self.trace[self._trace_limit // 2 :] = self.trace[self._trace_limit // 2 + 1 :]
            self.trace.append(f"{self.now_s:9.4f} {text}")

    # ------------------------------------------------------------------ agents

    def start_agent(self, name: str) -> None:
        h = self.hosts[name]
        h.incarnation += 1
        cfg = replace(self.config, node_name=name)
        h.node = Node(
            cfg, h.incarnation, random.Random(self.rng.getrandbits(64)), h.clock.local(self.now_s)
        )
        h.leaving = False
        h.executing_since_s = self.now_s
        h.stale_up.clear()  # an adopted VIP is an orphan by its phase (`orphaned`)
        h.stall = StallDetector(h.stall.threshold_s)
        h.stopping.clear()  # the old agent's unfinished stops never finish
        self.log(f"{name} agent start inc={h.incarnation} up={sorted(h.up)}")
        if h.up:
            self.deliver(name, FoundRunning(tuple(sorted(h.up))))
        if not h.ping_ok and self.config.ping_groups:
            self.deliver(name, PingResult(PING, False))
        self.deliver(name, Tick())

    def deliver(self, name: str, event: Input) -> None:
        h = self.hosts[name]
        if h.node is None:
            return
        if h.paused_until_s is not None:
            if len(h.backlog) < 1000:
                h.backlog.append(event)
            return
        # Groups whose VIP was an orphan before this step stay one while a stop takes it down.
        h.orphans = {g for g in h.up if self.orphaned(name, g)} if h.up else set()
        out = h.node.step(h.clock.local(self.now_s), event)
        self.stats.steps += 1
        self._perform(h, out)
        self._note_promises(h)
        self.check_safety()

    def _perform(self, h: Host, out: Output) -> None:
        assert h.node is not None
        for action in out.actions:
            match action:
                case StartGroup(group=g, epoch=e):
                    under_way = h.stopping.pop(g, None)
                    if under_way is not None:
                        # The runtime runs a group's actions in order: the stop still under
                        # way finishes first. Counted conservatively: the VIP never left.
                        old = under_way[2]
                        self._later(
                            h,
                            self.action_delay_s,
                            ResourceResult(g, ResourceAction.STOP, True, epoch=old),
                        )
                    h.up.add(g)
                    h.stale_up.discard(g)
                    self.stats.starts.append((self.now_s, h.name, g, e))
                    self.log(f"{h.name} START {g} epoch={e}")
                    self._later(
                        h,
                        self.action_delay_s,
                        ResourceResult(g, ResourceAction.START, True, epoch=e),
                    )
                case StopGroup(group=g, epoch=e, reason=r):
                    self.stats.stops.append((self.now_s, h.name, g))
                    self.log(f"{h.name} STOP {g} epoch={e} {r.value}")
                    slow = self._slow_stops.pop(h.name, None)
                    if self.stop_delay_max_s > 0 or slow is not None:
                        # The VIP goes down some time after the decision (limit L4).
                        # Drawn even for a slow stop, so the seed's stream stays as it was.
                        delay = self.rng.uniform(0.0, self.stop_delay_max_s)
                        delay = delay if slow is None else slow
                        token = self._stop_seq = self._stop_seq + 1
                        # An orphan VIP (adopted, or its lease ran out while the agent was
                        # not executing) stays one until it is down (limit L1, `orphaned`).
                        # Not a holder that lost its lease while it ran (seed 9255 of the
                        # soak at f72ab5d: its lease "ran out" at its agent's start, before
                        # it had any, and its stop was taken for an orphan's).
                        stale = g in h.orphans or g in h.stale_up
                        h.stopping[g] = (token, stale, e)
                        name, inc = h.name, h.incarnation
                        self.at(self.now_s + delay, partial(self._stopped, name, inc, g, token))
                    else:
                        h.up.discard(g)
                        h.stale_up.discard(g)
                        self._later(
                            h,
                            self.action_delay_s,
                            ResourceResult(g, ResourceAction.STOP, True, epoch=e),
                        )
                case ProbeVip(group=g):
                    t = self.config.timings
                    # The runtime paces its probes on its own clock.
                    dur = t.vip_probe_count * t.vip_probe_interval_s / h.clock.rate
                    self._probes.setdefault(g, []).append((h.name, self.now_s, self.now_s + dur))
                    name, t0 = h.name, self.now_s
                    self.at(self.now_s + dur, partial(self._probe_done, name, g, t0))
                    armed_probe = self._on_probe.pop(h.name, None)
                    if armed_probe is not None:
                        self.at(self.now_s, armed_probe)  # after this step
        for n in out.notices:
            if n.kind is NoticeKind.PEER_DEAD and n.peer is not None:
                self.stats.dead_notices.append((self.now_s, h.name, n.peer))
            if n.kind is NoticeKind.SPLIT_BRAIN_RISK:
                self.stats.split_brain_notices += 1
            if n.kind in (NoticeKind.PEER_DEAD, NoticeKind.LEASE_LOST, NoticeKind.SPLIT_BRAIN_RISK):
                self.log(f"{h.name} {n.kind.value} {n.peer or n.group or ''}")
            armed = self._on_notice.pop((h.name, n.kind), None)
            if armed is not None:
                self.at(self.now_s, armed)  # after this step, before any other input
        for s in out.sends:
            self._send(h.name, s.to, s.message)
        token = h.wake_token = h.wake_token + 1
        wake_real = max(self.now_s, h.clock.real(out.next_wakeup_s))
        local = h.clock.local(self.now_s)
        keepalive_s = self.config.timings.keepalive_s
        h.stall.armed(local, next_wakeup_s(local, out.next_wakeup_s, keepalive_s))
        name = h.name
        self.at(wake_real, lambda: self._wake(name, token))
        if h.leaving and h.node.done:
            self.log(f"{h.name} agent exited")
            h.node = None

    def _stopped(self, name: str, inc: int, group: str, token: int) -> None:
        """A delayed stop is done: VIP down, then the result. A killed or crashed agent's
        stop never finishes (a crash took the VIP anyway; a kill leaves it up)."""
        h = self.hosts[name]
        stop = h.stopping.get(group)
        if h.incarnation != inc or stop is None or stop[0] != token:
            return
        del h.stopping[group]
        epoch = stop[2]
        h.up.discard(group)
        h.stale_up.discard(group)
        self.log(f"{name} VIP down {group}")
        self._later(
            h, self.action_delay_s, ResourceResult(group, ResourceAction.STOP, True, epoch=epoch)
        )

    def _wake(self, name: str, token: int) -> None:
        h = self.hosts[name]
        if h.wake_token == token and h.node is not None and h.paused_until_s is None:
            self.deliver(name, Tick())

    def _later(self, h: Host, delay_s: float, event: Input) -> None:
        name, inc = h.name, h.incarnation
        self.at(self.now_s + delay_s, lambda: self._deliver_if(name, inc, event))

    def _deliver_if(self, name: str, inc: int, event: Input) -> None:
        if self.hosts[name].incarnation == inc:
            self.deliver(name, event)

    def _send(self, src: str, dst: str, message: Any) -> None:
        self.stats.messages += 1
        if self.measure_bytes or self.roundtrip:
            wire = message.to_wire()
            if self.measure_bytes:
                self.stats.bytes += HEADER_BYTES + len(json.dumps(wire, separators=(",", ":")))
            if self.roundtrip:
                assert message_from_wire(json.loads(json.dumps(wire))) == message
        if dst not in self.hosts:
            return
        kind = type(message)
        if kind is LeaseRequest:
            self._last_request[(src, dst)] = message
            if src in self._stale_grants:
                self._stale_grant_due(src, message.seq)
        elif kind is LeaseReply and message.granted:
            grants = self._last_grants.get((src, dst))
            if grants is None:
                grants = self._last_grants[(src, dst)] = deque(maxlen=STALE_GRANTS_KEPT)
            grants.append(message)
        if src in self._capturing and kind is LeaseRelease:
            self._held_releases.setdefault(src, []).append((dst, message))
            return
        for delay in self.net.deliveries(src, dst):
            self.at(self.now_s + delay, lambda: self._arrive(src, dst, message))

    def _arrive(self, src: str, dst: str, message: Any) -> None:
        self.deliver(dst, MessageReceived("hb", src, message))
        if isinstance(message, LeaseReply) and message.granted and dst in self._on_grant:
            self._on_grant.pop(dst)()

    def on_notice(self, name: str, kind: NoticeKind, fn: Callable[[], None]) -> None:
        """Call `fn` once, right after a step in which `name` gives a notice of `kind`:
        faults timed against a decision (a ping node lost just as a claim begins)."""
        self._on_notice[(name, kind)] = fn

    def on_probe(self, name: str, fn: Callable[[], None]) -> None:
        """Call `fn` once, right after `name` next sends a VIP probe: faults timed against
        a probe (a pause that holds its answer back)."""
        self._on_probe[name] = fn

    def hold_releases(self, name: str, capture: bool = True) -> None:
        """Hold back every LeaseRelease `name` sends from now (`capture=False`: from now on
        send them again, still holding the ones caught) until `let_go_releases`."""
        if capture:
            self._capturing.add(name)
        else:
            self._capturing.discard(name)

    def let_go_releases(self, name: str) -> None:
        """Deliver the releases held back from `name` now, very late, past newer grants
        (and, first, the copies of its earlier run's requests that hold_stale_copies put
        with them)."""
        self._capturing.discard(name)
        for dst, message in self._held_releases.pop(name, []):
            self.log(f"{name} -> {dst} late {message}")
            self._arrive(name, dst, message)

    def hold_stale_copies(self, name: str) -> None:
        """Late copies of the lease messages of `name`'s current run, for when it has run
        again: its last request to each voter, held with its releases (`let_go_releases`
        delivers them first), and each voter's last grants to it (STALE_GRANTS_KEPT per
        voter), each delivered as the new run sends a request of that seq or a later one
        (its seq numbers start again from 1, and it asks itself without a message)."""
        held = [(dst, req) for (src, dst), req in sorted(self._last_request.items()) if src == name]
        self._held_releases[name] = held + self._held_releases.get(name, [])
        stale = self._stale_grants.setdefault(name, {})
        for (voter, dst), grants in sorted(self._last_grants.items()):
            if dst == name:
                for reply in grants:
                    stale.setdefault(reply.seq, []).append((voter, reply))

    def _stale_grant_due(self, name: str, seq: int) -> None:
        stale = self._stale_grants[name]
        due = [g for k in sorted(stale) if k <= seq for g in stale.pop(k)]
        if not stale:
            del self._stale_grants[name]
        for voter, reply in due:
            self.log(f"{voter} -> {name} late {reply} (a grant to its earlier run)")
            self.at(self.now_s + STALE_GRANT_LAG_S, partial(self._arrive, voter, name, reply))

    def on_grant(self, name: str, fn: Callable[[], None]) -> None:
        """Call `fn` once, right after `name` next receives a granted lease reply: faults
        timed against renewals (a pause just after a grant, or just before it runs out)."""
        self._on_grant[name] = fn

    def _probe_done(self, name: str, group: str, t0: float) -> None:
        probes = self._probes.get(group, [])
        probes[:] = [
            p for p in probes if p[2] > self.now_s - 1e-9 and not (p[0] == name and p[1] == t0)
        ]
        answered = False
        for other, h in self.hosts.items():
            if other == name or not self.net.service_connected(name, other):
                continue
            if group in h.up:
                answered = True
            # RFC 5227: another host probing the same address at the same time is a conflict.
            if any(p[0] == other and p[1] <= self.now_s and p[2] >= t0 for p in probes):
                answered = True
        self.deliver(name, VipProbeResult(group, answered))

    # ------------------------------------------------------------------ checkers

    def executing(self, name: str) -> bool:
        h = self.hosts[name]
        return h.node is not None and h.paused_until_s is None

    def orphaned(self, name: str, group: str) -> bool:
        """The VIP is up on `name` but no executing agent holds it by a lease: the agent
        was killed (-9) or is stalled, or restarted and only adopted the VIP, or is taking
        it down after a stall outlasted its lease."""
        h = self.hosts[name]
        if group not in h.up:
            return False
        if h.node is None or h.paused_until_s is not None:
            return True
        stop = h.stopping.get(group)
        if stop is not None:
            # Stopping a VIP whose lease ran out while the agent was stalled; a holder that
            # lost its lease as it ran may claim again while its stop is under way, and is
            # no orphan for it (seed 9255 of the soak at f72ab5d).
            return stop[1]
        return h.node.phase(group) is Phase.ACQUIRING  # adopted, no lease yet

    def _note_promises(self, h: Host) -> None:
        """Copy `h`'s voter promises into the ledger, in real time, as granted: a promise
        runs to its end even if its voter forgets it (dies) or promises another node over
        it (that is the bug the ledger exists to see); only a release ends it early."""
        node = h.node
        if node is None:
            return
        for g in self.config.groups:
            current = node.promise(g.name)
            if current is None:
                for key in [k for k in self.promised_until if k[0] == g.name and k[1] == h.name]:
                    if key[3] == h.incarnation:
                        self.promised_until[key] = min(self.promised_until[key], self.now_s)
            if current is not None:
                holder, expires_local_s = current
                key = (g.name, h.name, holder, h.incarnation)
                self.promised_until[key] = h.clock.real(expires_local_s)

    def promises_running(self, group: str, holder: str, at_s: float) -> int:
        """How many voters' promises of `group` to `holder` ran at real time `at_s`."""
        return len(
            {
                voter
                for (g, voter, to, _), end_s in self.promised_until.items()
                if g == group and to == holder and end_s > at_s
            }
        )

    def lease_ran_out(self, group: str, holder: str, at_s: float) -> bool:
        """Provably no lease of `holder` ran at `at_s`: fewer voters promised it than even
        the two-node rule (half of an even count) needs."""
        voters = len(self.config.voters)
        return self.promises_running(group, holder, at_s) < (voters + 1) // 2

    def check_safety(self) -> None:
        """After every step: a group on two hosts is an L1 overlap or a violation."""
        for g in self.config.groups:
            self._check_group(g.name)

    def _check_group(self, group: str) -> None:
        holders = frozenset(h.name for h in self.hosts.values() if group in h.up)
        ov = self._overlaps.get(group)
        carried: frozenset[tuple[str, str]] = frozenset()
        if ov is not None and ov.holders != holders:
            # One holder's VIP going down (or another's coming up) does not re-judge the
            # pairs that overlap on: an orphan cut off from its successor when it started
            # stays L1 beside it after the cut heals (swarm seed 19,767).
            carried = ov.apart if ov.orphan else frozenset()
            self._close_overlap(group, ov)
            ov = None
        if len(holders) <= 1:
            return
        orphans = tuple(sorted(n for n in holders if self.orphaned(n, group)))
        if ov is None:
            l1 = self._is_l1(group, holders, orphans, carried)
            ov = Overlap(holders, self.now_s, orphans, l1)
            ov.orphan_since_s = dict.fromkeys(orphans, self.now_s)
            if l1:
                ov.apart = frozenset((o, x) for o in orphans for x in holders if x != o)
            self._overlaps[group] = ov
            if ov.orphan:
                self.stats.orphan_overlaps += 1
                live = sorted(holders - set(orphans))
                self.log(f"ORPHAN VIP {group} on {list(orphans)} (limit L1), also on {live}")
            else:
                self._violate(group, holders)
            return
        if ov.orphan and len(holders) - len(orphans) > 1:
            ov.orphan = False  # an orphan's agent runs again and keeps its VIP
            self._violate(group, holders)
        if ov.orphan and orphans != ov.orphans:
            # Roles changed inside one overlap: an orphan's agent got a lease (it was
            # adopting), or the live holder stalled. A holder that comes alive beside
            # orphans is a successor: their leases must be over by then.
            for o in set(ov.orphans) - set(orphans):
                ov.outlived_s = max(ov.outlived_s, self._outlived(ov, o))
            now_live = holders - set(orphans)
            if now_live - (ov.holders - set(ov.orphans)) and not all(
                self.lease_ran_out(group, o, self.now_s) for o in orphans
            ):
                ov.orphan = False
                self._violate(group, holders)
            ov.orphans = orphans
            for o in orphans:
                ov.orphan_since_s.setdefault(o, self.now_s)

    def _outlived(self, ov: Overlap, orphan: str) -> float:
        """How long `orphan` has stayed one since its agent executed again (0: it has not)."""
        if not self.executing(orphan):
            return 0.0
        since_s = ov.orphan_since_s.get(orphan, ov.begin_s)
        return self.now_s - max(since_s, self.hosts[orphan].executing_since_s)

    def _is_l1(
        self,
        group: str,
        holders: frozenset[str],
        orphans: tuple[str, ...],
        apart: frozenset[tuple[str, str]] = frozenset(),
    ) -> bool:
        """When the overlap begins: at most one executing holder, every orphan cut off from
        the others on the service network (no probe could see it), or already judged so
        (`apart`) in the overlap this one continues, and every orphan's lease provably
        over. A service network that heals later leaves it L1 (the two VIPs are visible
        until the orphan's agent runs again, docs/design.md)."""
        return (
            bool(orphans)
            and len(holders) - len(orphans) <= 1
            and all(
                (o, other) in apart or not self.net.service_connected(o, other)
                for o in orphans
                for other in holders
                if other != o
            )
            and all(self.lease_ran_out(group, o, self.now_s) for o in orphans)
        )

    def _close_overlap(self, group: str, ov: Overlap) -> None:
        del self._overlaps[group]
        if ov.orphan:
            span = self.now_s - ov.begin_s
            outlived = max([ov.outlived_s, *(self._outlived(ov, o) for o in ov.orphans)])
            self.stats.orphan_spans.append((span, outlived))

    def close_overlaps(self) -> None:
        """End the run's open overlaps (their lengths so far count)."""
        for group, ov in list(self._overlaps.items()):
            self._close_overlap(group, ov)

    def _violate(self, group: str, holders: frozenset[str]) -> None:
        hs = sorted(holders)
        self.violations.append(
            Violation("safety", self.now_s, f"group {group} runs on {hs} at once")
        )
        self.log(f"SAFETY VIOLATION {group} on {hs}")

    def holders(self, group: str) -> list[str]:
        return [h.name for h in self.hosts.values() if group in h.up]

    def settled(self) -> bool:
        """Every group runs on exactly one host, whose agent holds a majority lease, and no
        agent is trying to acquire or stop it: nothing left to happen without a new fault."""
        for g in self.config.groups:
            hs = self.holders(g.name)
            if len(hs) != 1:
                return False
            h = self.hosts[hs[0]]
            if h.node is None or h.paused_until_s is not None:
                return False
            if h.node.phase(g.name) is not Phase.RUNNING:
                return False
            if h.node.majority_until_s(g.name) <= h.clock.local(self.now_s):
                return False
            if h.node.target(g.name) != h.name:
                return False  # a handover (failback, takeover) is still to come
            for other in self.hosts.values():
                if other is h or other.node is None or not other.node.config.members:
                    continue
                if (
                    other.node.role is NodeRole.MEMBER
                    and other.node.phase(g.name) is not Phase.IDLE
                ):
                    return False
        return all(h.node is not None and h.paused_until_s is None for h in self.hosts.values())

    def check_liveness(self, label: str = "") -> None:
        for g in self.config.groups:
            hs = self.holders(g.name)
            if len(hs) != 1:
                self.violations.append(
                    Violation("liveness", self.now_s, f"{label} group {g.name} holders {hs}")
                )

    # ------------------------------------------------------------------ faults

    def crash_host(self, name: str) -> None:
        """Power off: agent and resources gone, VIP freed."""
        h = self.hosts[name]
        self.log(f"{name} HOST CRASH up={sorted(h.up)}")
        h.node, h.up, h.paused_until_s, h.backlog = None, set(), None, []
        h.incarnation += 1_000  # stale timers of the old agent are ignored

    def kill_agent(self, name: str) -> None:
        """kill -9 of the agent: the VIP and services stay up."""
        h = self.hosts[name]
        self.log(f"{name} AGENT KILLED up={sorted(h.up)}")
        h.node, h.paused_until_s, h.backlog = None, None, []
        h.incarnation += 1_000

    def restart(self, name: str) -> None:
        """Start the agent if it is not running; one still stopping is started once gone."""
        h = self.hosts[name]
        if h.node is None:
            self.start_agent(name)
        elif h.leaving:
            self.at(self.now_s + self.config.timings.lease_s, lambda: self.restart(name))

    def graceful_stop(self, name: str) -> None:
        h = self.hosts[name]
        if h.node is None:
            return
        self.log(f"{name} graceful stop")
        h.leaving = True
        self.deliver(name, Shutdown())

    def slow_stop(self, name: str, delay_s: float) -> None:
        """The next stop on `name` takes its VIP down only after `delay_s` (a service slow
        to quit, past the stop guard: an orphan's lease is gone anyway)."""
        self._slow_stops[name] = delay_s

    def pause(self, name: str, duration_s: float) -> None:
        h = self.hosts[name]
        if h.node is None or h.paused_until_s is not None:
            return
        self.log(f"{name} PAUSE {duration_s:.2f}s")
        h.paused_until_s, h.paused_at_s = self.now_s + duration_s, self.now_s
        inc = h.incarnation
        self.at(self.now_s + duration_s, lambda: self._resume(name, inc))

    def _resume(self, name: str, inc: int) -> None:
        h = self.hosts[name]
        if h.incarnation != inc or h.paused_until_s is None:
            return
        backlog, h.backlog = h.backlog, []
        duration = self.now_s - h.paused_at_s
        h.paused_until_s = None
        h.executing_since_s = self.now_s
        h.stale_up = {g for g in h.up if self.lease_ran_out(g, name, self.now_s)}
        # The runtime tells the core of a pause only past its stall threshold: a shorter
        # one leaves the agent unaware that it did not run (runtime/clock.py).
        stalled_s = h.stall.check(h.clock.local(self.now_s))
        self.log(f"{name} RESUME after {duration:.3f}s, stalled={stalled_s is not None}")
        if stalled_s is not None:
            self.deliver(name, Stalled(stalled_s))
        for ev in backlog:
            self.deliver(name, ev)
        self.deliver(name, Tick())

    def set_ping(self, name: str, ok: bool) -> None:
        """The host stops (or starts again) reaching its ping node; reported after deadping."""
        h = self.hosts[name]
        h.ping_ok = ok
        t = self.config.timings
        delay = t.deadping_s if not ok else t.ping_interval_s
        inc = h.incarnation
        self.at(self.now_s + delay, lambda: self._report_ping(name, inc))

    def lose_ping_now(self, name: str) -> None:
        """The host's pinger reports its ping node lost at once (deadping ran out now)."""
        self.hosts[name].ping_ok = False
        self.deliver(name, PingResult(PING, False))

    def _report_ping(self, name: str, inc: int) -> None:
        h = self.hosts[name]
        if h.incarnation == inc:
            self.deliver(name, PingResult(PING, h.ping_ok))

    def set_rate(self, name: str, rate: float) -> None:
        self.hosts[name].clock.set_rate(self.now_s, rate)

    def heal(self) -> None:
        self.log("HEAL")
        self._slow_stops.clear()
        self._on_grant.clear()
        self._on_notice.clear()
        self._on_probe.clear()
        self._stale_grants.clear()
        for name in sorted(self._held_releases):
            self.let_go_releases(name)
        self._capturing.clear()
        self.net.heal()
        for name, h in self.hosts.items():
            if not h.ping_ok:
                self.set_ping(name, True)
            if h.node is None:
                self.start_agent(name)
