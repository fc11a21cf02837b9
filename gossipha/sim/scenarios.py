"""Scripted scenarios (the tutorial's three tests) and seeded random schedules.

A random schedule: warm up, crash the holder's host (measures detection and failover),
restart it, then a few random faults (partitions, cuts, loss, pauses, agent kills, ping
loss, clock-rate changes), then heal and check that every group has exactly one holder
within the liveness bound. Safety is checked after every step throughout.

Faults respect the guarantee being tested (docs/design.md): with an even number of voters
(two nodes, no witness) the service network stays connected, since the tie-breaker (the
VIP probe) is what keeps a cut-off pair apart (limit L2). Every other combination runs;
overlaps inside limit L1 (a VIP left up by an agent that is not executing, unseen across a
cut service network) are counted in `ScheduleResult.orphans`, all others are violations.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from functools import partial

from gossipha.config.model import Config
from gossipha.sim.harness import Sim
from gossipha.sim.net import PathOptions


def liveness_bound_s(config: Config) -> float:
    """After the last fault heals, every group has a holder within this (docs/design.md)."""
    t = config.timings
    lease = t.lease_s * (1 + t.max_drift) / (1 - t.max_drift)
    probe = t.vip_probe_count * t.vip_probe_interval_s
    return (
        max(t.initdead_s, t.deadtime_s + t.keepalive_s)
        + 2 * lease  # promises to the old holder run out, plus a split-brain back-off
        + 2 * t.lease_s  # back-off after a refused attempt
        + t.lease_s  # one attempt
        + probe
        + t.deadping_s
        + 1.0
    )


@dataclass(slots=True)
class ScheduleResult:
    seed: int
    safety: list[str] = field(default_factory=list)
    liveness: list[str] = field(default_factory=list)
    detect_s: float | None = None
    detect_all_s: float | None = None
    failover_s: float | None = None
    steps: int = 0
    messages: int = 0
    bytes: int = 0
    sim_s: float = 0.0
    orphans: int = 0  # overlaps inside documented limit L1 (Sim.orphaned), not violations
    # Per L1 overlap: (length, how long it outlived its orphan agent's return), seconds.
    orphan_spans: list[tuple[float, float]] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)


def _first_holder(sim: Sim, group: str) -> str | None:
    hs = sim.holders(group)
    return hs[0] if len(hs) == 1 else None


def crash_and_measure(
    sim: Sim, victim: str, group: str, horizon_s: float
) -> tuple[float | None, float | None, float | None]:
    """Crash `victim`'s host now; return (first dead notice, all peers know, new holder)."""
    t0 = sim.now_s
    sim.crash_host(victim)
    n_starts = len(sim.stats.starts)
    peers = {n for n, h in sim.hosts.items() if n != victim and h.node is not None}
    # Until every live peer knows and the group runs elsewhere (or the horizon ends).
    while sim.now_s < t0 + horizon_s:
        sim.run_until(min(t0 + horizon_s, sim.now_s + 0.1))
        knew = {by for t, by, p in sim.stats.dead_notices if p == victim and t >= t0}
        moved = any(g == group for _, _, g, _ in sim.stats.starts[n_starts:])
        if moved and knew >= peers:
            break
    dead = [(t, by) for t, by, p in sim.stats.dead_notices if p == victim and t >= t0]
    first = dead[0][0] - t0 if dead else None
    knowers: dict[str, float] = {}
    for t, by in dead:
        knowers.setdefault(by, t)
    all_know = max(knowers.values()) - t0 if peers and set(knowers) >= peers else None
    starts = [t for t, _, g, _ in sim.stats.starts[n_starts:] if g == group]
    failover = starts[0] - t0 if starts else None
    return first, all_know, failover


def run_until_settled(sim: Sim, deadline_s: float) -> None:
    """Run to `deadline_s`, or stop early once the cluster has been settled (Sim.settled)
    for two leases and a failback delay (an auto_failback may be pending): no fault is
    left, so nothing would change after that."""
    t = sim.config.timings
    lease_s = t.lease_s
    quiet_s = 2 * lease_s + t.failback_delay_s
    since: float | None = None
    while sim.now_s < deadline_s:
        sim.run_until(min(deadline_s, sim.now_s + lease_s / 4))
        if not sim.settled():
            since = None
        elif since is None:
            since = sim.now_s
        elif sim.now_s - since >= quiet_s:
            return


def random_schedule(
    config: Config,
    seed: int,
    *,
    loss: float = 0.0,
    jitter_s: float = 0.0,
    chaos_faults: int = 3,
    measure_bytes: bool = False,
    lease_hook: object | None = None,
) -> ScheduleResult:
    del lease_hook
    rng = random.Random(seed)
    t = config.timings
    sim = Sim(
        config,
        seed,
        path=PathOptions(loss=loss, delay_s=0.0005, jitter_s=jitter_s, duplicate=0.01),
        measure_bytes=measure_bytes,
    )
    result = ScheduleResult(seed)
    names = sorted(sim.hosts)
    members = [n.name for n in config.members]
    even = len(config.voters) % 2 == 0
    group = config.groups[0].name
    # 1. warm up and measure one crash of the holder.
    sim.run_until(max(t.initdead_s, t.lease_s * 2) + 1.0 + rng.uniform(0, 1))
    holder = _first_holder(sim, group)
    horizon = t.deadtime_s + 3 * t.lease_s + 1.0
    if holder is not None:
        first, all_know, fo = crash_and_measure(sim, holder, group, horizon)
        result.detect_s, result.detect_all_s, result.failover_s = first, all_know, fo
        sim.restart(holder)
    # 2. chaos.
    t_chaos = sim.now_s
    span = 6.0
    for _ in range(chaos_faults):
        at = t_chaos + rng.uniform(0, span)
        kind = rng.choice(
            [
                "partition",
                "isolate",
                "cut",
                "loss",
                "pause",
                "kill",
                "crash",
                "ping",
                "rate",
                "graceful",
            ]
        )
        victim = rng.choice(names)
        member = rng.choice(members)
        if kind == "partition":
            side = [n for n in names if rng.random() < 0.5] or [victim]
            other = [n for n in names if n not in side]
            sym = rng.random() < 0.7
            sim.fault(
                at,
                f"partition {side}|{other} sym={sym}",
                partial(sim.net.partition, side, other, symmetric=sym),
            )
        elif kind == "isolate":
            others = [n for n in names if n != victim]
            svc = not even
            sim.fault(
                at,
                f"isolate {victim} service={svc}",
                partial(sim.net.partition, [victim], others, service=svc),
            )
        elif kind == "cut":
            a, b = rng.sample(names, 2) if len(names) > 1 else (victim, victim)
            sim.fault(at, f"cut {a}->{b}", partial(sim.net.cut.add, (a, b)))
        elif kind == "loss":
            p = PathOptions(loss=rng.uniform(0.2, 0.6), delay_s=0.001, jitter_s=t.keepalive_s)
            sim.fault(
                at,
                f"loss {victim} {p.loss:.2f}",
                partial(sim.net.paths.update, {(victim, o): p for o in names if o != victim}),
            )
        elif kind == "pause":
            d = rng.uniform(0.2, 3.0) * t.lease_s
            sim.at(at, partial(sim.pause, victim, d))
        elif kind == "kill":
            sim.at(at, partial(sim.kill_agent, member))
            sim.at(at + rng.uniform(0.5, 4.0), partial(sim.restart, member))
        elif kind == "crash":
            sim.at(at, partial(sim.crash_host, member))
            sim.at(at + rng.uniform(0.5, 4.0), partial(sim.restart, member))
        elif kind == "ping":
            sim.fault(at, f"ping lost {member}", partial(sim.set_ping, member, False))
        elif kind == "graceful":
            sim.at(at, partial(sim.graceful_stop, member))
            sim.at(at + rng.uniform(1.0, 4.0), partial(sim.restart, member))
        else:
            rate = 1 + rng.uniform(-t.max_drift, t.max_drift)
            sim.fault(at, f"rate {victim} {rate:.4f}", partial(sim.set_rate, victim, rate))
    sim.run_until(t_chaos + span + 4.0)
    # 3. heal: liveness within the bound.
    sim.heal()
    sim.net.default = PathOptions(loss=loss, delay_s=0.0005, jitter_s=jitter_s)
    run_until_settled(sim, sim.now_s + liveness_bound_s(config))
    sim.check_liveness("after heal:")
    result.safety = [f"{v.at_s:.3f} {v.detail}" for v in sim.violations if v.kind == "safety"]
    result.liveness = [f"{v.at_s:.3f} {v.detail}" for v in sim.violations if v.kind == "liveness"]
    result.steps, result.messages, result.bytes = (
        sim.stats.steps,
        sim.stats.messages,
        sim.stats.bytes,
    )
    result.sim_s = sim.now_s
    sim.close_overlaps()
    result.orphans = sim.stats.orphan_overlaps
    result.orphan_spans = list(sim.stats.orphan_spans)
    if result.safety or result.liveness:
        result.trace = sim.trace[-60:]
    return result


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p99": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"median": round(statistics.median(ordered), 4), "p99": round(p99, 4)}
