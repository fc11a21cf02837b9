"""Scale benchmark: detection, dissemination and per-node gossip load for N simulated nodes.

    python bench/sim_scale.py --json                         # from the repository root
    python bench/sim_scale.py --sizes 2,3,5,16 --seed 7

Native default timings (gossipha.sim.harness.native_timings: keepalive 200 ms, deadtime
1 s, phi_dead 8), no loss, 0.5 ms delay. Two layers are measured:

- `node`: the full `Node` state machine in `gossipha.sim.harness.Sim` (clock drift, lease,
  placement, status relay), for N <= --node-max (default 128). Every `Node.step` re-judges
  every peer and rebuilds the placement view, so one simulated second costs O(N^2) in
  Python: about 5 s of CPU at N = 128 and several minutes at N = 1024, hence the cap.
- `membership`: the `Membership` layer alone (gossip, phi detectors, suspicion, digests) on
  a small event loop in this file, for every size including 1,024. No lease, no status
  relay: its bytes are the digests only. Each node sends its heartbeat round every
  keepalive and re-judges its peers `--ticks` times per keepalive (the Node: 4).

Per size: steady-state messages and bytes per node per second (mean over nodes and the
busiest node; no faults, after warm-up), crash detection (first PEER_DEAD, seconds after
the crash: median and p99 over several crashes; fewer for big N), dissemination (when the
last live node learnt of the death, in seconds and keepalive intervals) and simulated steps
per wall second. Two load tests, each the larger of a layer's two max/min ratios across
sizes (per-node mean messages per second, per-node mean bytes per second):
`load_ratio_max_over_min` for the membership layer (N = 2 to 1,024 by default) and
`node_load_ratio_max_over_min` for the full Node (heartbeats, lease traffic and relayed
statuses; N = 2 to --node-max). Exit status 1, with the reasons on stderr, when either
exceeds 2, when a crash was not detected or not known to every live node by the horizon,
when a live node was declared dead (`false_dead_notices`; there is no loss), or when a
size measured nothing (no size, no crash simulated, no message sent).
Results go to docs/benchmarks.md "## Simulator".
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipha.config.model import Timings
from gossipha.core.membership import (
    ALL_PEERS_MAX_NODES,
    GOSSIP_EVERY,
    Digest,
    MemberEvent,
    Membership,
    PeerDead,
)
from gossipha.sim.harness import HEADER_BYTES, Sim, make_config, native_timings
from gossipha.sim.scenarios import crash_and_measure

LOAD_RATIO_LIMIT = 2.0
DELAY_S = 0.0005


# ----------------------------------------------------------------------------- helpers


def pct(values: list[float]) -> dict[str, float | int | None]:
    """Median and p99 (nearest rank), plus how many samples they rest on."""
    if not values:
        return {"median": None, "p99": None, "n": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {"median": round(statistics.median(ordered), 4), "p99": round(p99, 4), "n": len(values)}


def wire_bytes(obj: Any) -> int:
    """Bytes on the wire as the harness counts them: codec header + HMAC + compact JSON."""
    return HEADER_BYTES + len(json.dumps(obj, separators=(",", ":")))


@dataclass(slots=True)
class Plan:
    """How much to simulate at one size (bounded so N = 1,024 fits in minutes)."""

    crash_runs: int  # fresh simulations, one crash each (small N)
    crashes_per_run: int  # distinct victims crashed one after another (big N)
    load_window_s: float


def plan_for(n: int, layer: str) -> Plan:
    if layer == "node":
        if n <= 5:
            return Plan(20, 1, 10.0)
        if n <= 16:
            return Plan(10, 1, 10.0)
        return Plan(1, 3, 2.0)
    if n <= 16:
        return Plan(20, 1, 10.0)
    if n <= 128:
        return Plan(1, 5, 5.0)
    return Plan(1, 2, 2.0)


# ----------------------------------------------------------------------------- full Node


class CountingSim(Sim):
    """The harness, counting messages and bytes per sender while `counting` is set."""

    counting = False  # the base __init__ already sends (start-up heartbeats)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: Counter[str] = Counter()
        self.sent_bytes: Counter[str] = Counter()
        super().__init__(*args, **kwargs)

    def _send(self, src: str, dst: str, message: Any) -> None:
        if self.counting:
            self.sent[src] += 1
            self.sent_bytes[src] += wire_bytes(message.to_wire())
        super()._send(src, dst, message)


def node_layer(n: int, seed: int, timings: Timings) -> dict[str, Any]:
    plan = plan_for(n, "node")
    config = make_config(n, timings=timings)
    warm_s = max(timings.initdead_s, 2 * timings.lease_s) + 1.0
    horizon_s = timings.deadtime_s + 3 * timings.lease_s + 1.0
    detect, all_know, failover = [], [], []
    steps = 0
    wall = 0.0
    load: dict[str, Any] = {}
    rng = random.Random(seed)
    for run in range(plan.crash_runs):
        started = time.perf_counter()
        sim = CountingSim(config, seed + run)
        sim.run_until(warm_s + rng.uniform(0, timings.keepalive_s))
        if run == 0:
            # Steady state: no faults, a holder elected, every node joined.
            steps0, t0 = sim.stats.steps, sim.now_s
            sim.counting = True
            w0, c0 = time.perf_counter(), time.process_time()
            sim.run_until(t0 + plan.load_window_s)
            sim.counting = False
            load = _load(sim.sent, sim.sent_bytes, n, plan.load_window_s)
            load.update(_rates(sim.stats.steps - steps0, w0, c0, plan.load_window_s))
            load["holder"] = sim.holders("g0")
        victims = rng.sample(sorted(sim.hosts), plan.crashes_per_run)
        for victim in victims:
            first, everyone, fo = crash_and_measure(sim, victim, "g0", horizon_s)
            if first is not None:
                detect.append(first)
            if everyone is not None:
                all_know.append(everyone)
            if fo is not None and n > 1:
                failover.append(fo)
        steps += sim.stats.steps
        wall += time.perf_counter() - started
    crashes = plan.crash_runs * plan.crashes_per_run
    return {
        "layer": "node",
        "nodes": n,
        **load,
        "crashes": crashes,
        "detect_s": pct(detect),
        "all_know_s": pct(all_know),
        "all_know_intervals": pct([v / timings.keepalive_s for v in all_know]),
        "undetected": crashes - len(detect),
        "failover_s": pct(failover),
        "steps_per_s_overall": round(steps / wall, 1) if wall else None,
        "wall_s": round(wall, 1),
    }


def _load(sent: Counter[str], sent_bytes: Counter[str], n: int, window_s: float) -> dict[str, Any]:
    return {
        "load_window_s": window_s,
        "msgs_per_node_s": round(sum(sent.values()) / (n * window_s), 3),
        "bytes_per_node_s": round(sum(sent_bytes.values()) / (n * window_s), 1),
        "max_msgs_per_node_s": round(max(sent.values(), default=0) / window_s, 3),
        "max_bytes_per_node_s": round(max(sent_bytes.values(), default=0) / window_s, 1),
        "busiest_node": max(sent, key=lambda k: sent[k]) if sent else None,
    }


def _rates(steps: int, wall0: float, cpu0: float, sim_s: float) -> dict[str, float]:
    """Steady-state speed: steps per wall and per CPU second, CPU seconds per simulated one."""
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return {
        "steps_per_s": round(steps / wall, 1) if wall else 0.0,
        "steps_per_cpu_s": round(steps / cpu, 1) if cpu else 0.0,
        "cpu_s_per_sim_s": round(cpu / sim_s, 3),
    }


# ----------------------------------------------------------------------------- Membership


@dataclass(slots=True)
class GossipSim:
    """N `Membership` peer tables on one event queue: heartbeat rounds, ticks, delivery.

    No clock drift and no loss; each node starts at a random phase of the keepalive.
    """

    n: int
    seed: int
    timings: Timings
    ticks_per_beat: int
    now_s: float = 0.0
    steps: int = 0
    counting: bool = False
    sent: Counter[str] = field(default_factory=Counter)
    sent_bytes: Counter[str] = field(default_factory=Counter)
    dead_notices: list[tuple[float, str, str]] = field(default_factory=list)
    false_dead: int = 0  # PEER_DEAD notices about a node that was up (no loss: a bug)
    members: dict[str, Membership] = field(default_factory=dict)
    up: set[str] = field(default_factory=set)
    _queue: list[tuple[float, int, int, str, Any]] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        names = [f"n{i}" for i in range(self.n)]
        for name in names:
            peers = [p for p in names if p != name]
            m = Membership(
                name, 1, peers, ["hb"], self.timings, random.Random(rng.getrandbits(64)), 0.0
            )
            self.members[name] = m
            self.up.add(name)
            phase = rng.uniform(0.0, self.timings.keepalive_s)
            self._push(phase, 0, name, None)

    def _push(self, t_s: float, kind: int, name: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (t_s, self._seq, kind, name, payload))

    def _events(self, name: str, events: list[MemberEvent]) -> None:
        for ev in events:
            if isinstance(ev, PeerDead):
                self.dead_notices.append((self.now_s, name, ev.peer))
                self.false_dead += ev.peer in self.up

    def run_until(self, t_s: float) -> None:
        keepalive = self.timings.keepalive_s
        tick_s = keepalive / self.ticks_per_beat
        while self._queue and self._queue[0][0] <= t_s:
            when, _, kind, name, payload = heapq.heappop(self._queue)
            self.now_s = when
            if name not in self.up:
                continue
            m = self.members[name]
            self.steps += 1
            if kind == 2:  # arrival
                sender, digest = payload
                self._events(name, m.on_heartbeat(when, sender, "hb", digest))
                continue
            self._events(name, m.tick(when))
            if kind == 0:  # heartbeat round, then the ticks in between
                self._round(name, m)
                for k in range(1, self.ticks_per_beat):
                    self._push(when + k * tick_s, 1, name, None)
                self._push(when + keepalive, 0, name, None)
        self.now_s = max(self.now_s, t_s)

    def _round(self, name: str, m: Membership) -> None:
        for target, digest in m.outgoing(self.now_s):
            if self.counting:
                self.sent[name] += 1
                self.sent_bytes[name] += wire_bytes(_heartbeat_wire(name, digest))
            if target in self.up:
                self._push(self.now_s + DELAY_S, 2, target, (name, digest))

    def crash(self, name: str) -> None:
        self.up.discard(name)


def _heartbeat_wire(name: str, digest: Digest) -> dict[str, Any]:
    """The digest as a heartbeat would carry it, without the node status and relay."""
    return {"t": "hb", "from": name, "digest": digest.to_wire()}


def membership_layer(n: int, seed: int, timings: Timings, ticks: int) -> dict[str, Any]:
    plan = plan_for(n, "membership")
    warm_s = timings.initdead_s + 1.0
    horizon_s = timings.deadtime_s + 4.0 + 2 * math.log2(n) * timings.keepalive_s
    detect, all_know, fractions = [], [], []
    false_dead = 0
    steps = 0
    wall = 0.0
    load: dict[str, Any] = {}
    rng = random.Random(seed)
    for run in range(plan.crash_runs):
        started = time.perf_counter()
        sim = GossipSim(n, seed + run, timings, ticks)
        sim.run_until(warm_s)
        if run == 0:
            steps0, t0 = sim.steps, sim.now_s
            sim.counting = True
            w0, c0 = time.perf_counter(), time.process_time()
            sim.run_until(t0 + plan.load_window_s)
            sim.counting = False
            load = _load(sim.sent, sim.sent_bytes, n, plan.load_window_s)
            load.update(_rates(sim.steps - steps0, w0, c0, plan.load_window_s))
        for victim in rng.sample(sorted(sim.members), plan.crashes_per_run):
            t0 = sim.now_s
            peers = set(sim.up) - {victim}
            sim.crash(victim)
            knowers: dict[str, float] = {}
            seen = len(sim.dead_notices)
            # Advance a keepalive at a time and stop once every live node knows.
            while sim.now_s < t0 + horizon_s and not set(knowers) >= peers:
                sim.run_until(min(t0 + horizon_s, sim.now_s + timings.keepalive_s))
                for t, by, peer in sim.dead_notices[seen:]:
                    if peer == victim:
                        knowers.setdefault(by, t - t0)
                seen = len(sim.dead_notices)
            fractions.append(len(set(knowers) & peers) / len(peers) if peers else 1.0)
            if knowers:
                detect.append(min(knowers.values()))
            if peers and set(knowers) >= peers:
                all_know.append(max(knowers.values()))
        steps += sim.steps
        false_dead += sim.false_dead
        wall += time.perf_counter() - started
    crashes = plan.crash_runs * plan.crashes_per_run
    return {
        "layer": "membership",
        "nodes": n,
        "mode": "all-peers" if n <= ALL_PEERS_MAX_NODES else f"ring + gossip every {GOSSIP_EVERY}",
        "ticks_per_keepalive": ticks,
        **load,
        "crashes": crashes,
        "detect_s": pct(detect),
        "all_know_s": pct(all_know),
        "all_know_intervals": pct([v / timings.keepalive_s for v in all_know]),
        "undetected": crashes - len(detect),
        "not_all_know": crashes - len(all_know),
        "false_dead_notices": false_dead,
        "horizon_s": round(horizon_s, 3),
        "min_fraction_knowing": round(min(fractions, default=1.0), 4),
        "steps_per_s_overall": round(steps / wall, 1) if wall else None,
        "wall_s": round(wall, 1),
    }


# ----------------------------------------------------------------------------- report


def ratios(entries: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": [e["nodes"] for e in entries]}
    for key in ("msgs_per_node_s", "bytes_per_node_s"):
        values = [e[key] for e in entries if e.get(key)]
        out[key] = round(max(values) / min(values), 3) if values else None
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="2,3,5,16,128,1024")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--node-max", type=int, default=128, help="largest N for the full Node")
    p.add_argument(
        "--ticks",
        type=int,
        default=None,
        help="Membership ticks per keepalive (default: 4 like the Node, 1 above N = 256)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    timings = native_timings()
    started = time.perf_counter()
    node_entries, member_entries = [], []
    for n in sizes:
        ticks = args.ticks or (4 if n <= 256 else 1)
        member_entries.append(membership_layer(n, args.seed, timings, ticks))
        _progress(member_entries[-1])
        if n <= args.node_max:
            node_entries.append(node_layer(n, args.seed, timings))
            _progress(node_entries[-1])
    node_ratio = ratios(node_entries)
    member_ratio = ratios(member_entries)
    worst = _worst(member_ratio)
    node_worst = _worst(node_ratio)
    not_all_know = sum(e["not_all_know"] for e in member_entries)
    false_dead = sum(e["false_dead_notices"] for e in member_entries)
    report = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "timings": {
            "keepalive_s": timings.keepalive_s,
            "deadtime_s": timings.deadtime_s,
            "phi_dead": timings.phi_dead,
            "lease_s": timings.lease_s,
        },
        "node_max": args.node_max,
        "node": node_entries,
        "membership": member_entries,
        "load_ratios": {"node": node_ratio, "membership": member_ratio},
        "load_ratio_max_over_min": worst,
        "load_ratio_limit": LOAD_RATIO_LIMIT,
        "node_load_ratio_max_over_min": node_worst,
        "crashes_not_known_to_all": not_all_know,
        "false_dead_notices": false_dead,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            if isinstance(value, list):
                print(f"{key}:")
                for item in value:
                    print(f"  {item}")
            else:
                print(f"{key}: {value}")
    problems = failures(report)
    for line in problems:
        print(f"sim_scale: FAILED: {line}", file=sys.stderr)
    return 1 if problems else 0


def failures(report: dict[str, Any]) -> list[str]:
    """Why the exit status is 1 (see the module's docstring)."""
    out: list[str] = []
    entries = [*report["membership"], *report["node"]]
    if not entries:
        out.append("no size ran (measured nothing)")
    for key in ("load_ratio_max_over_min", "node_load_ratio_max_over_min"):
        if report[key] is not None and report[key] > LOAD_RATIO_LIMIT:
            out.append(f"{key} {report[key]} exceeds {LOAD_RATIO_LIMIT}")
    if report["crashes_not_known_to_all"]:
        out.append(f"{report['crashes_not_known_to_all']} crashes not known to every live node")
    if report["false_dead_notices"]:
        out.append(f"{report['false_dead_notices']} live nodes declared dead")
    for e in entries:
        name = f"{e['layer']} N={e['nodes']}"
        if not e["crashes"] or not e["msgs_per_node_s"]:
            out.append(
                f"{name}: {e['crashes']} crashes, {e['msgs_per_node_s']} msgs/node/s "
                "(measured nothing)"
            )
        elif e["undetected"]:
            out.append(f"{name}: {e['undetected']} of {e['crashes']} crashes never detected")
    return out


def _worst(ratio: dict[str, Any]) -> float | None:
    """The larger of the messages and bytes ratios (None when no size had a load)."""
    values = [ratio[k] for k in ("msgs_per_node_s", "bytes_per_node_s") if ratio[k] is not None]
    return max(values, default=None)


def _progress(entry: dict[str, Any]) -> None:
    """Each size's entry as one JSON line on stderr, so an interrupted run keeps its results."""
    print(f"sim_scale: {json.dumps(entry)}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
