"""Swarm schedules: each draws its own cluster, timings and fault mix (swarm testing, Groce
et al. 2012), so the random search reaches the states where the lease rules alone keep the
cluster safe: leases from shorter than detection to many times longer, clocks at the edges
of the drift band, slow and very late lease messages, pauses timed against grants and
probes (often too short for the runtime to report a stall), voters restarted, one-way and
symmetric partitions, loss bursts.

A schedule is an explicit fault script (`Schedule`: the cluster, the timings, the network,
every fault with its time): `draw(seed)` makes one, `run(schedule)` plays it, and its JSON
(`to_json`/`from_json`) replays it (`gossipha sim --replay FILE`) even after the code that
draws schedules has changed. The simulator's own randomness (loss draws, back-off jitter)
comes from `Schedule.seed`. A fault kind added later (LATER_KINDS) draws from its own
stream of the seed, so every schedule without it stays as it was: a soak of the earlier
draw still stands for those, and `gossipha sim --swarm --with-fault KIND` runs the rest.

Faults keep to the guarantee under test (docs/design.md): with an even number of voters the
service network stays connected (limit L2), and the VIP probe's own channel never loses
packets one way (the known hole of one-way ARP loss). Everything else may overlap.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from gossipha.config.model import Config, Timings
from gossipha.core.lease import STOP_GUARD_FRACTION, holder_span_s
from gossipha.core.types import AdminCommand, AdminKind, NoticeKind
from gossipha.runtime.clock import stall_threshold_s
from gossipha.sim.harness import Sim, make_config
from gossipha.sim.net import Pair, PathOptions
from gossipha.sim.scenarios import ScheduleResult, liveness_bound_s, run_until_settled

# N drawn per schedule (weights favour the pairs the tutorial is about).
NODE_WEIGHTS = {2: 0.34, 3: 0.22, 4: 0.14, 5: 0.12, 6: 0.09, 7: 0.09}
# A VIP goes down up to this share of the stop guard after StopGroup (limit L4).
STOP_DELAY_OF_GUARD = 0.9
DRIFTS = (0.0, 0.01, 0.01, 0.05, 0.1, 0.15)
# Drawn with the schedule's own stream, one of these per fault.
DRAWN_KINDS = (
    "partition",
    "cut",
    "isolate",
    "loss",
    "delay",
    "pause",
    "pause_after_grant",
    "pause_at_probe",
    "kill",
    "crash",
    "graceful",
    "ping",
    "isolate_ping",
    "voter_restart",
    "stale_release",
    "ping_mid_claim",
    "rate",
)
# Kinds added after a soak ran: each from its own stream of the seed, with this share of
# schedules, so a schedule that does not draw one is exactly the one the soak ran.
# probe_race is drawn only with two voters, orphan_return only with three members or
# more: the share is of those schedules.
LATER_KINDS = {"stale_run": 0.2, "probe_race": 0.5, "orphan_return": 0.3}
FAULT_KINDS = DRAWN_KINDS + tuple(LATER_KINDS)
# Faults that may name "holder": whoever runs g0 when the fault begins. Half the time: a
# random victim is the holder only one time in N, and the holder is where the leases bite.
AT_HOLDER = ("partition", "isolate", "loss", "delay", "pause", "kill", "crash")


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault at `at_s` (real seconds), undone `for_s` later where it has a duration."""

    at_s: float
    kind: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Schedule:
    seed: int
    members: int
    witnesses: int
    groups: int
    ping: bool
    auto_failback: bool
    timings: dict[str, float]
    rates: dict[str, float]  # each host's clock rate
    path: dict[str, float]  # PathOptions of every path while faults run
    faults: tuple[Fault, ...]
    heal_s: float

    def config(self) -> Config:
        t = dict(self.timings)
        t["vip_probe_count"] = int(t["vip_probe_count"])
        return make_config(
            self.members,
            witnesses=self.witnesses,
            timings=Timings(**t),  # type: ignore[arg-type]
            groups=self.groups,
            auto_failback=self.auto_failback,
            ping=self.ping,
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["faults"] = [asdict(f) for f in self.faults]
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> Schedule:
        known = {f.name for f in fields(Schedule)}
        missing = known - set(d)
        if missing:
            raise ValueError(f"fault script lacks {sorted(missing)}")
        faults = tuple(
            Fault(float(f["at_s"]), str(f["kind"]), dict(f["args"])) for f in d["faults"]
        )
        for f in faults:
            if f.kind not in FAULT_KINDS:
                raise ValueError(f"fault script: unknown fault kind {f.kind!r} at {f.at_s}")
        return Schedule(**{**{k: d[k] for k in known}, "faults": faults})

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def draw_timings(rng: random.Random) -> dict[str, float]:
    keepalive = _log_uniform(rng, 0.1, 1.0)
    deadtime = keepalive * rng.uniform(2.5, 8.0)
    ping_interval = keepalive * rng.uniform(0.5, 2.0)
    timings = {
        "keepalive_s": keepalive,
        "deadtime_s": deadtime,
        "warntime_s": (keepalive + deadtime) / 2,
        "initdead_s": deadtime * rng.uniform(1.0, 2.0),
        "ping_interval_s": ping_interval,
        "deadping_s": ping_interval * rng.uniform(2.5, 6.0),
        # From shorter than detection (phi convicts in about half a deadtime) to many times
        # longer, where only the voters' rules stand between a claimant and the holder.
        "lease_s": deadtime * _log_uniform(rng, 0.25, 8.0),
        "max_drift": rng.choice(DRIFTS),
        "vip_probe_count": float(rng.randint(1, 3)),
        "vip_probe_interval_s": rng.uniform(0.01, 0.06),
        "failback_delay_s": deadtime * rng.uniform(0.5, 3.0),
    }
    return {k: round(v, 6) for k, v in timings.items()}


def draw(seed: int, *, members: int | None = None) -> Schedule:
    """One schedule from `seed` (and `members`, when fixed)."""
    rng = random.Random(seed)
    n = members or rng.choices(list(NODE_WEIGHTS), list(NODE_WEIGHTS.values()))[0]
    witnesses = 1 if rng.random() < 0.3 else 0
    timings = draw_timings(rng)
    lease, rho = timings["lease_s"], timings["max_drift"]
    deadtime = timings["deadtime_s"]
    names = [f"n{i}" for i in range(n)] + [f"w{i}" for i in range(witnesses)]
    # Clocks anywhere in the band, often at its edges; the worst case (the first holder
    # slow, every voter fast) in a fifth of the schedules.
    worst = rng.random() < 0.2
    rates = {}
    for name in names:
        if worst:
            r = 1 - rho if name == "n0" else 1 + rho
        elif rng.random() < 0.5:
            r = 1 + rng.choice((-rho, rho))
        else:
            r = 1 + rng.uniform(-rho, rho)
        rates[name] = round(r, 9)
    path = {
        "loss": rng.choice((0.0, 0.0, 0.02, 0.05, 0.1)),
        "delay_s": _log_uniform(rng, 0.0005, 0.25 * lease),
        "jitter_s": rng.choice((0.0, 0.02, 0.25 * lease)),
        "duplicate": rng.choice((0.0, 0.02, 0.1)),
        "late": rng.choice((0.0, 0.0, 0.01, 0.05)),
        "late_s": rng.uniform(0.5, 3.0) * lease,
    }
    schedule = Schedule(
        seed=rng.getrandbits(32),
        members=n,
        witnesses=witnesses,
        groups=1 if rng.random() < 0.8 else 2,
        ping=rng.random() < 0.7,
        auto_failback=rng.random() < 0.7,
        timings=timings,
        rates=rates,
        path={k: round(v, 6) for k, v in path.items()},
        faults=(),
        heal_s=0.0,
    )
    even = len(schedule.config().voters) % 2 == 0
    warm = max(timings["initdead_s"], 2 * lease) + deadtime
    window = rng.uniform(3.0, 10.0) * max(deadtime, lease)
    members_ = [f"n{i}" for i in range(n)]
    ping = schedule.ping
    faults = [
        _draw_fault(rng, warm + rng.uniform(0, window), names, members_, even, ping, timings)
        for _ in range(rng.randint(1, 8))
    ]
    # Half the stale releases come first, at the first holder's first epoch: the epoch a
    # restarted agent, which knows of no other, asks for again.
    faults = [
        replace(f, at_s=round(warm, 6)) if f.kind == "stale_release" and rng.random() < 0.5 else f
        for f in faults
    ]
    two_voters = len(schedule.config().voters) == 2
    for kind, share in LATER_KINDS.items():
        own = random.Random(f"{seed}:{kind}")
        fits = {"probe_race": two_voters, "orphan_return": n >= 3}.get(kind, True)
        if own.random() < share and fits:
            at_s = warm if own.random() < 0.5 else warm + own.uniform(0, window)
            faults.append(_draw_later(own, kind, at_s, even, timings))
    faults.sort(key=lambda f: f.at_s)
    settle = timings["deadping_s"] + timings["ping_interval_s"] + 3 * timings["keepalive_s"]
    end = max(
        f.at_s
        + max(float(f.args.get("for_s", 0.0)), float(f.args.get("cut_holder_s", 0.0)))
        + (float(f.args["down_s"]) + 3 * max(lease, deadtime) if "down_s" in f.args else 0.0)
        + (settle if f.kind == "isolate_ping" else 0.0)
        for f in faults
    )
    return replace(schedule, faults=tuple(faults), heal_s=round(max(end, warm + window), 6))


def _draw_fault(
    rng: random.Random,
    at_s: float,
    names: list[str],
    members: list[str],
    even: bool,
    ping: bool,
    t: dict[str, float],
) -> Fault:
    lease, deadtime = t["lease_s"], t["deadtime_s"]
    kind = rng.choice(DRAWN_KINDS)
    if kind == "isolate_ping" and even and not ping:
        kind = "ping"  # no ping node to tell the cut-off node: that would be limit L2
    span = max(lease, deadtime)
    for_s = round(rng.uniform(0.1, 3.0) * span, 6)
    victim = "holder" if kind in AT_HOLDER and rng.random() < 0.5 else rng.choice(names)
    args: dict[str, Any] = {"for_s": for_s}
    if kind == "partition":
        side = [x for x in names if x != victim and rng.random() < 0.5]
        if victim == "holder" or not side:
            side.append(victim)
        args |= {
            "a": side,
            "b": [x for x in names if x not in side and x != victim],
            "symmetric": rng.random() < 0.6,
            "service": not even and rng.random() < 0.5,
        }
    elif kind == "cut":
        a, b = rng.sample(names, 2)
        args |= {"src": a, "dst": b}
    elif kind == "isolate":
        args |= {"node": victim, "service": not even and rng.random() < 0.5}
    elif kind == "loss":
        args |= {
            "node": victim,
            "loss": round(rng.uniform(0.2, 0.9), 3),
            "outgoing": rng.random() < 0.5,
        }
    elif kind == "delay":
        args |= {
            "node": victim,
            "delay_s": round(rng.uniform(0.1, 1.0) * lease, 6),
            "jitter_s": round(rng.uniform(0.0, 1.0) * lease, 6),
        }
    elif kind == "pause":
        args |= {"node": victim, "for_s": round(rng.uniform(0.1, 3.0) * lease, 6)}
    elif kind == "pause_after_grant":
        # Just after a grant, anywhere inside the promise, or just before it runs out.
        span_h = holder_span_s(lease, t["max_drift"])
        after = rng.choice((0.0, rng.uniform(0.0, span_h), max(0.0, span_h - 0.02 * lease)))
        args |= {
            "node": rng.choice(members),
            "after_s": round(after, 6),
            "for_s": round(rng.uniform(0.5, 3.0) * lease, 6),
        }
    elif kind == "pause_at_probe":
        # Paused as it sends a VIP probe, so the answer is read late: often shorter than
        # the runtime's stall threshold (no Stalled reaches the core), sometimes longer.
        probe_s = t["vip_probe_count"] * t["vip_probe_interval_s"]
        stall_s = stall_threshold_s(t["keepalive_s"], lease)
        d = rng.choice((rng.uniform(1.0, 6.0) * probe_s, rng.uniform(0.3, 1.5) * stall_s))
        args |= {"node": rng.choice(members), "for_s": round(d, 6)}
    elif kind in ("kill", "crash"):
        args |= {"node": victim}  # witnesses too: a voter that restarts
    elif kind == "graceful" or kind == "ping":
        args |= {"node": rng.choice(members)}
    elif kind == "ping_mid_claim":
        # Cut off, and its ping node lost just as it begins a claim: it must not start.
        # With two voters only a node that holds nothing and has a ping node (else L2).
        if even and not ping:
            kind = "ping"
            args |= {"node": rng.choice(members)}
        else:
            args |= {"node": "follower" if even else rng.choice(members)}
    elif kind == "voter_restart":
        # A voter that promised the holder restarts while that promise runs (it forgot
        # it: it must stay quiet for a voter span).
        # Half the time the holder is cut off at the same moment, so a claimant asks the
        # voter while the promise it forgot still runs.
        args = {
            "for_s": round(rng.uniform(0.02, 0.6) * lease, 6),
            "pick": round(rng.random(), 6),
            "cut_holder_s": round(rng.uniform(1.0, 3.0) * span, 6) if rng.random() < 0.5 else 0.0,
            "service": not even,
        }
    elif kind == "stale_release":
        # The holder gives the group up (a graceful restart of its agent, or standby then
        # takeover in the same run); its releases are held back past its next grant and
        # delivered while it is cut off: a voter must not end the newer promise. (It is
        # cut off `cut_after_s` after it next starts the group.)
        args = _stale_args(rng, ("restart", "standby"), even, t)
    elif kind == "isolate_ping":
        # Tutorial test 3: a node loses its only interface, ping node included. With two
        # voters only a node that holds and claims nothing (picked when the fault begins,
        # checked again at the cut): a holder cut off on the service network is limit L2.
        args |= {"node": "follower" if even else rng.choice(members)}
    else:  # rate
        rho = t["max_drift"]
        args = {"node": victim, "rate": round(1 + rng.uniform(-rho, rho), 9)}
    return Fault(round(at_s, 6), kind, args)


def _draw_later(
    rng: random.Random, kind: str, at_s: float, even: bool, t: dict[str, float]
) -> Fault:
    lease, deadtime = t["lease_s"], t["deadtime_s"]
    span = max(lease, deadtime)
    if kind == "probe_race":
        # Two voters, the heartbeat link cut both ways (the service network up): each
        # takes the other for dead. The holder goes to standby; as the other node next
        # probes its VIP it is paused, mostly for less than the runtime's stall threshold
        # (no Stalled), and the first holder takes over just after that probe's end, so
        # its own probe sees nothing and it starts. The paused node's silent answer is
        # then late and wrong: it must probe again, not start.
        probe_s = t["vip_probe_count"] * t["vip_probe_interval_s"]
        stall_s = stall_threshold_s(t["keepalive_s"], lease)
        return Fault(
            round(at_s, 6),
            kind,
            {
                "settle_s": round(deadtime * rng.uniform(1.5, 3.0) + t["keepalive_s"], 6),
                "pause_s": round(rng.uniform(0.3, 1.2) * stall_s, 6),
                "gap_s": round(rng.uniform(0.0, 1.0) * probe_s, 6),
                "for_s": round(rng.uniform(2.0, 4.0) * span, 6),
            },
        )
    if kind == "orphan_return":
        # The first holder goes to standby and the group moves on; its new holder is cut
        # off (the service network too) and paused past its lease, so a third node takes
        # over beside its VIP (limit L1). As it runs again, slow to stop, the first holder
        # takes over on the third one's release: the VIP of the returned orphan is still
        # up, and only a probe sees it (swarm seed 18,283).
        keepalive = t["keepalive_s"]
        return Fault(
            round(at_s, 6),
            kind,
            {
                "settle_s": round(deadtime * rng.uniform(1.5, 3.0) + keepalive, 6),
                "pause_s": round(rng.uniform(1.5, 3.0) * span + lease, 6),
                "give_s": round(rng.uniform(0.0, 2.0) * keepalive, 6),
                "slow_s": round(rng.uniform(1.0, 4.0) * keepalive, 6),
            },
        )
    assert kind == "stale_run", kind
    # stale_release's story (a holder's agent runs again, cut off soon after it starts
    # the group), with a graceful restart or kill -9, and late copies of its earlier run's
    # lease messages too (Sim.hold_stale_copies): its last requests land with its
    # releases, and its voters' last grants as the new run's seq numbers reach theirs. A
    # voter must not give the earlier run the promise back, a claimant must count no
    # grant to its earlier run. Half of them at the first holder's first epoch (the epoch
    # its new run asks for again, with seq numbers that soon come round again).
    return Fault(round(at_s, 6), kind, _stale_args(rng, ("restart", "kill"), even, t))


def _stale_args(
    rng: random.Random, hows: tuple[str, ...], even: bool, t: dict[str, float]
) -> dict[str, Any]:
    """The arguments of stale_release and stale_run (`how` the holder gives its group up)."""
    lease, deadtime = t["lease_s"], t["deadtime_s"]
    return {
        "how": rng.choice(hows),
        "down_s": round(rng.uniform(0.0, 0.5) * lease, 6),
        "cut_after_s": round(rng.uniform(0.0, 1.0) * lease, 6),
        "for_s": round(rng.uniform(1.0, 3.0) * max(lease, deadtime), 6),
        "late_s": round(rng.uniform(0.1, 1.0) * deadtime + rng.uniform(0.0, 0.5) * lease, 6),
        "service": not even,
    }


class _Player:
    """Plays a schedule's faults on a Sim, each undone at its end."""

    def __init__(self, sim: Sim, schedule: Schedule) -> None:
        self.sim = sim
        self.schedule = schedule
        self.names = sorted(sim.hosts)
        self.overrides: list[tuple[int, dict[Pair, PathOptions]]] = []
        self._token = 0
        self._ping_lost: dict[str, int] = {}  # overlapping ping faults per node
        self.healed = False  # after the heal, a fault's own undo is moot

    def heal(self) -> None:
        self.healed = True
        self.overrides.clear()
        self._ping_lost.clear()
        self.sim.heal()

    def later(self, at_s: float, fn: Callable[[], object]) -> None:
        """Undo a fault at `at_s`, unless the heal came first."""

        def undo() -> None:
            if not self.healed:
                fn()

        self.sim.at(at_s, undo)

    def _lose_ping(self, node: str) -> None:
        self._ping_lost[node] = self._ping_lost.get(node, 0) + 1
        if self._ping_lost[node] == 1:
            self.sim.set_ping(node, False)

    def _regain_ping(self, node: str) -> None:
        self._ping_lost[node] -= 1
        if self._ping_lost[node] == 0:
            self.sim.set_ping(node, True)

    def schedule_all(self) -> None:
        for f in self.schedule.faults:
            self.sim.at(f.at_s, lambda f=f: self.begin(f))  # type: ignore[misc]

    def _links(self, node: str) -> list[Pair]:
        """Every directed pair between `node` and the others: all of its links."""
        others = [o for o in self.names if o != node]
        return [(node, o) for o in others] + [(o, node) for o in others]

    def _cuts(self, f: Fault) -> tuple[list[Pair], list[Pair]]:
        a = f.args
        if f.kind == "partition":
            pairs = [(x, y) for x in a["a"] for y in a["b"]]
            if a["symmetric"]:
                pairs += [(y, x) for x, y in pairs]
        elif f.kind == "cut":
            pairs = [(a["src"], a["dst"])]
        else:  # isolate
            pairs = self._links(a["node"])
        service = (
            [(x, y) for x, y in pairs] + [(y, x) for x, y in pairs] if a.get("service") else []
        )
        return pairs, service

    def holder(self) -> str | None:
        """Who runs the first group now (an executing holder first)."""
        g = self.sim.config.groups[0].name
        hs = sorted(self.sim.holders(g), key=lambda n: (not self.sim.executing(n), n))
        return hs[0] if hs else None

    def _resolve(self, f: Fault) -> Fault | None:
        """`f` with "holder" replaced by the holder's name; None when nobody holds."""
        a = f.args
        if "holder" not in (a.get("node"), *a.get("a", ())):
            return f
        holder = self.holder()
        if holder is None:
            return None
        args = dict(a)
        if args.get("node") == "holder":
            args["node"] = holder
        if "a" in args:
            args["a"] = [holder if x == "holder" else x for x in args["a"]]
            args["b"] = [x for x in args["b"] if x != holder]
        return replace(f, args=args)

    def _voter_restart(self, for_s: float, pick: float, cut_holder_s: float, svc: bool) -> None:
        sim = self.sim
        g = sim.config.groups[0].name
        holder = self.holder()
        if holder is not None and cut_holder_s > 0:
            pairs = self._links(holder)
            service = pairs if svc else []
            sim.log(f"FAULT voter_restart: {holder} cut off for {cut_holder_s:.3f}s")
            sim.net.hold(pairs, service)
            self.later(sim.now_s + cut_holder_s, lambda: sim.net.release(pairs, service))
        voters = [v.name for v in sim.config.voters if v.name != holder and sim.executing(v.name)]
        promising = []
        for v in voters:
            node = sim.hosts[v].node
            promise = None if node is None else node.promise(g)
            if promise is not None and promise[0] == holder:
                promising.append(v)
        chosen = promising or voters
        if not chosen:
            sim.log("FAULT voter_restart: no voter, skipped")
            return
        voter = chosen[min(len(chosen) - 1, int(pick * len(chosen)))]
        sim.log(f"FAULT voter_restart {voter} (promised {holder}: {voter in promising})")
        sim.kill_agent(voter)
        self.later(sim.now_s + for_s, lambda: sim.restart(voter))

    def begin(self, f: Fault) -> None:
        sim = self.sim
        resolved = self._resolve(f)
        if resolved is None:
            sim.log(f"FAULT {f.kind} at the holder: nobody holds, skipped")
            return
        f = resolved
        a = f.args
        sim.log(f"FAULT {f.kind} {a}")
        end_s = sim.now_s + float(a.get("for_s", 0.0))
        match f.kind:
            case "partition" | "cut" | "isolate":
                pairs, service = self._cuts(f)
                sim.net.hold(pairs, service)
                self.later(end_s, lambda: sim.net.release(pairs, service))
            case "loss" | "delay":
                node = a["node"]
                base = sim.net.default
                if f.kind == "loss":
                    opt = replace(base, loss=float(a["loss"]))
                else:
                    opt = replace(base, delay_s=float(a["delay_s"]), jitter_s=float(a["jitter_s"]))
                others = [o for o in self.names if o != node]
                paths = {(node, o) if a.get("outgoing", True) else (o, node): opt for o in others}
                self._token += 1
                token = self._token
                self.overrides.append((token, paths))
                self._apply_paths()
                self.later(end_s, lambda: self._drop_paths(token))
            case "pause":
                sim.pause(a["node"], float(a["for_s"]))
            case "pause_after_grant":
                node, after, d = a["node"], float(a["after_s"]), float(a["for_s"])
                sim.on_grant(
                    node, lambda: self.later(sim.now_s + after, lambda: sim.pause(node, d))
                )
            case "pause_at_probe":
                node, d = a["node"], float(a["for_s"])
                sim.on_probe(node, lambda: sim.pause(node, d))
            case "kill" | "crash" | "graceful":
                down = {"kill": sim.kill_agent, "crash": sim.crash_host}
                down.get(f.kind, sim.graceful_stop)(a["node"])
                self.later(end_s, lambda: sim.restart(a["node"]))
            case "ping":
                self._lose_ping(a["node"])
                self.later(end_s, lambda: self._regain_ping(a["node"]))
            case "isolate_ping":
                self._isolate_ping(a["node"], float(a["for_s"]))
            case "stale_release" | "stale_run":
                self._stale_release(
                    str(a["how"]),
                    float(a["down_s"]),
                    float(a["cut_after_s"]),
                    float(a["for_s"]),
                    float(a["late_s"]),
                    bool(a["service"]),
                    copies=f.kind == "stale_run",
                )
            case "orphan_return":
                times = (a["settle_s"], a["pause_s"], a["give_s"], a["slow_s"])
                self._orphan_return(*(float(x) for x in times))
            case "probe_race":
                self._probe_race(
                    float(a["settle_s"]), float(a["pause_s"]), float(a["gap_s"]), float(a["for_s"])
                )
            case "ping_mid_claim":
                self._ping_mid_claim(a["node"], float(a["for_s"]))
            case "voter_restart":
                self._voter_restart(
                    float(a["for_s"]),
                    float(a["pick"]),
                    float(a["cut_holder_s"]),
                    bool(a["service"]),
                )
            case "rate":
                sim.set_rate(a["node"], float(a["rate"]))
            case _:
                raise ValueError(f"unknown fault kind {f.kind!r}")

    def _stale_release(
        self,
        how: str,
        down_s: float,
        cut_after_s: float,
        for_s: float,
        late_s: float,
        svc: bool,
        *,
        copies: bool = False,
    ) -> None:
        """The holder gives its group up (`how`: standby, a graceful restart, kill -9 and
        start) with its releases held back, and, `copies`, late copies of its run's lease
        messages (Sim.hold_stale_copies); all of them land once it is cut off again."""
        sim = self.sim
        holder = self.holder()
        if holder is None or not sim.executing(holder):
            sim.log("FAULT stale_release: nobody holds, skipped")
            return
        g = sim.config.groups[0].name
        if copies:
            sim.hold_stale_copies(holder)
        sim.hold_releases(holder)
        if how == "standby":
            sim.deliver(holder, AdminCommand(AdminKind.STANDBY))
        elif how == "kill":
            sim.kill_agent(holder)
        else:
            sim.graceful_stop(holder)

        def back() -> None:
            sim.hold_releases(holder, capture=False)
            if how == "standby":
                sim.deliver(holder, AdminCommand(AdminKind.TAKEOVER))
            else:
                sim.restart(holder)

        def cut() -> None:
            if g not in sim.hosts[holder].up or not sim.executing(holder):
                sim.log(f"FAULT stale_release: {holder} holds nothing now, releases let go")
                sim.let_go_releases(holder)
                return
            pairs = self._links(holder)
            service = pairs if svc else []
            sim.log(f"FAULT stale_release: {holder} cut off, its old releases late")
            sim.net.hold(pairs, service)
            self.later(sim.now_s + late_s, lambda: sim.let_go_releases(holder))
            self.later(sim.now_s + for_s, lambda: sim.net.release(pairs, service))

        self.later(sim.now_s + down_s, back)
        sim.on_notice(
            holder,
            NoticeKind.FAILOVER_COMPLETED,
            lambda: self.later(sim.now_s + cut_after_s, cut),
        )

    def _probe_race(self, settle_s: float, pause_s: float, gap_s: float, for_s: float) -> None:
        """Two claims on the half rule one just after the other, the first paused as it
        probes (the fault kind's story is at _draw_later)."""
        sim = self.sim
        holder = self.holder()
        others = [v.name for v in sim.config.voters if v.name != holder]
        if holder is None or len(others) != 1 or not sim.executing(holder):
            sim.log("FAULT probe_race: no holder of two voters, skipped")
            return
        other = others[0]
        pairs = [(holder, other), (other, holder)]
        sim.net.hold(pairs, [])
        t = sim.config.timings
        probe_s = t.vip_probe_count * t.vip_probe_interval_s
        raced: list[bool] = []

        def race() -> None:
            if self.healed:
                return
            raced.append(True)
            sim.pause(other, pause_s)
            self.later(
                sim.now_s + probe_s + gap_s,
                lambda: sim.deliver(holder, AdminCommand(AdminKind.TAKEOVER)),
            )

        def standby() -> None:
            if not (sim.executing(holder) and sim.executing(other)):
                sim.log("FAULT probe_race: a node is down, no race")
                return
            sim.log(f"FAULT probe_race: {holder} to standby, {other} paused as it probes")
            sim.on_probe(other, race)
            sim.deliver(holder, AdminCommand(AdminKind.STANDBY))

        def end() -> None:
            sim.net.release(pairs, [])
            if not raced and sim.executing(holder):
                sim.deliver(holder, AdminCommand(AdminKind.TAKEOVER))  # out of standby

        self.later(sim.now_s + settle_s, standby)
        self.later(sim.now_s + for_s, end)

    def _orphan_return(self, settle_s: float, pause_s: float, give_s: float, slow_s: float) -> None:
        """An orphan that returns into a slow stop as the group is handed over (the fault
        kind's story is at _draw_later)."""
        sim = self.sim
        first = self.holder()
        if first is None or not sim.executing(first) or len(sim.config.members) < 3:
            sim.log("FAULT orphan_return: no holder of three members, skipped")
            return
        sim.deliver(first, AdminCommand(AdminKind.STANDBY))

        def orphan() -> None:
            holder = self.holder()
            if holder is None or holder == first or not sim.executing(holder):
                sim.log("FAULT orphan_return: the group did not move, no orphan")
                sim.deliver(first, AdminCommand(AdminKind.TAKEOVER))
                return
            pairs = self._links(holder)
            sim.log(f"FAULT orphan_return: {holder} cut off and paused")
            # Registered before the pause: its links are back as the agent runs again.
            self.later(sim.now_s + pause_s, lambda: sim.net.release(pairs, pairs))
            sim.net.hold(pairs, pairs)
            sim.slow_stop(holder, slow_s)
            sim.pause(holder, pause_s)
            self.later(
                sim.now_s + pause_s + give_s,
                lambda: sim.deliver(first, AdminCommand(AdminKind.TAKEOVER)),
            )

        self.later(sim.now_s + settle_s, orphan)

    def _follower(self) -> str | None:
        """A member that runs no group now and whose agent executes."""
        sim = self.sim
        for name in self.names:
            h = sim.hosts[name]
            if name.startswith("n") and not h.up and sim.executing(name):
                return name
        return None

    def _ping_mid_claim(self, node: str, for_s: float) -> None:
        sim = self.sim
        target = self._follower() if node == "follower" else node
        agent = None if target is None else sim.hosts[target].node
        if target is None or agent is None or agent.running() or agent.claiming():
            sim.log("FAULT ping_mid_claim: no idle follower, skipped")
            return
        pairs = self._links(target)
        sim.log(f"FAULT ping_mid_claim: {target} cut off")
        sim.net.hold(pairs, pairs)
        self._ping_lost[target] = self._ping_lost.get(target, 0) + 1

        def lose() -> None:
            if not self.healed:
                sim.log(f"FAULT ping_mid_claim: {target} loses its ping node as it claims")
                sim.lose_ping_now(target)

        sim.on_notice(target, NoticeKind.FAILOVER_STARTED, lose)

        def heal() -> None:
            sim.net.release(pairs, pairs)
            self._regain_ping(target)

        self.later(sim.now_s + for_s, heal)

    def _isolate_ping(self, node: str, for_s: float) -> None:
        """The node loses its ping node, then (once that is known and steady) every link."""
        sim = self.sim
        target = self._follower() if node == "follower" else node
        if target is None:
            sim.log("FAULT isolate_ping: no follower, skipped")
            return
        self._lose_ping(target)
        t = sim.config.timings
        settle_s = t.deadping_s + t.ping_interval_s + 2 * t.keepalive_s + t.keepalive_s

        def cut() -> None:
            agent = sim.hosts[target].node
            busy = sim.hosts[target].up or (agent is not None and bool(agent.claiming()))
            if node == "follower" and (busy or not sim.executing(target)):
                # A claim under way may get its grant just before the cut and start a group
                # cut off on the service network: limit L2 again (swarm soak seed 3104).
                sim.log(f"FAULT isolate_ping: {target} holds or claims a group now, skipped")
                self._regain_ping(target)
                return
            pairs = self._links(target)
            sim.log(f"FAULT isolate_ping: {target} cut off")
            sim.net.hold(pairs, pairs)

            def heal() -> None:
                sim.net.release(pairs, pairs)
                self._regain_ping(target)

            self.later(sim.now_s + for_s, heal)

        self.later(sim.now_s + settle_s, cut)

    def _apply_paths(self) -> None:
        merged: dict[Pair, PathOptions] = {}
        for _, paths in self.overrides:
            merged.update(paths)
        self.sim.net.paths = merged

    def _drop_paths(self, token: int) -> None:
        self.overrides = [(t, p) for t, p in self.overrides if t != token]
        self._apply_paths()


@dataclass(slots=True)
class SwarmResult(ScheduleResult):
    orphan_bound_s: float = 0.0


def orphan_bound_s(config: Config, stop_s: float) -> float:
    """How long an L1 overlap may outlive its orphan agent's return (restart or resume):
    a resumed agent drops a lapsed lease at once; a restarted one yields its adopted VIP on
    the first status of the running holder, or stops after `2L` without a lease
    (node.ADOPT_LIMIT_LEASES), plus a heartbeat and the wake-up after it, plus `stop_s`, the
    longest the stop that takes the VIP down may last (limit L4; soak seed 28,942: a restarted
    orphan stopped after 2L, as it should, into orphan_return's slow stop)."""
    t = config.timings
    return 2 * t.lease_s / (1 - t.max_drift) + 2 * t.keepalive_s + t.lease_s / 4 + stop_s


def run(schedule: Schedule, *, trace_limit: int = 200) -> SwarmResult:
    """Play `schedule`: safety after every step, then heal, and liveness within
    `liveness_bound_s`; an L1 overlap that outlives `orphan_bound_s` is a violation."""
    config = schedule.config()
    p = schedule.path
    path = PathOptions(
        loss=p["loss"],
        delay_s=p["delay_s"],
        jitter_s=p["jitter_s"],
        duplicate=p["duplicate"],
        late=p["late"],
        late_s=p["late_s"],
    )
    stop_delay_s = STOP_DELAY_OF_GUARD * STOP_GUARD_FRACTION * config.timings.lease_s
    sim = Sim(
        config, schedule.seed, path=path, trace_limit=trace_limit, stop_delay_max_s=stop_delay_s
    )
    for name, rate in schedule.rates.items():
        sim.hosts[name].clock.rate = rate
    player = _Player(sim, schedule)
    player.schedule_all()
    sim.run_until(schedule.heal_s)
    # Heal: every fault undone, a clean network, agents back.
    player.heal()
    sim.net.default = PathOptions(delay_s=0.0005)
    # In-flight late copies still arrive: the bound counts from their last arrival.
    late_tail = p["late_s"] + p["delay_s"] + p["jitter_s"]
    run_until_settled(sim, sim.now_s + late_tail + liveness_bound_s(config))
    sim.check_liveness("after heal:")
    sim.close_overlaps()
    result = SwarmResult(schedule.seed)
    slow_s = max(
        (float(f.args["slow_s"]) for f in schedule.faults if f.kind == "orphan_return"),
        default=0.0,
    )
    bound = orphan_bound_s(config, max(stop_delay_s, slow_s))
    for span_s, outlived_s in sim.stats.orphan_spans:
        if outlived_s > bound:
            result.safety.append(
                f"an L1 overlap of {span_s:.3f}s outlived its orphan's return by "
                f"{outlived_s:.3f}s (bound {bound:.3f}s)"
            )
    result.safety += [f"{v.at_s:.3f} {v.detail}" for v in sim.violations if v.kind == "safety"]
    result.liveness = [f"{v.at_s:.3f} {v.detail}" for v in sim.violations if v.kind == "liveness"]
    result.steps, result.messages = sim.stats.steps, sim.stats.messages
    result.sim_s = sim.now_s
    result.orphans = sim.stats.orphan_overlaps
    result.orphan_spans = list(sim.stats.orphan_spans)
    result.orphan_bound_s = bound
    if result.safety or result.liveness:
        result.trace = sim.trace[-80:]
    return result
