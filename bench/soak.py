"""Soak: many seeded random fault schedules of the real core, in parallel processes.

    python bench/soak.py --schedules 100000 --workers 2 --json     # from the repository root
    python bench/soak.py --schedules 20000 --time-limit 3000       # stop early, report so far
    python bench/soak.py --replay 1234                             # one seed, with its trace

The schedules are exactly those of tests/sim/test_random.py: `random_schedule` from
gossipha.sim.scenarios with loss 5 %, jitter 20 ms, the test's CI timings, and its mix of
clusters. Seed s runs the test's batch for `s % 2000` (2 members for 1,000 of every 2,000
seeds, 3 members for 600, 2 members + 1 witness for 400), so seeds 0..1999 replay the test
one for one and later seeds continue the same mix. Exit status 1 when any safety or
liveness violation was found; the first seeds of each kind are listed for replay.
Results go to docs/benchmarks.md "## Simulator".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipha.sim.harness import make_config
from gossipha.sim.scenarios import percentiles, random_schedule
from tests.sim.test_random import BATCHES, CI_TIMINGS

LOSS = 0.05
JITTER_S = 0.02
PERIOD = sum(b[3] for b in BATCHES)  # 2,000
CHUNK = 50  # schedules per task: small enough that a time limit stops promptly
FIRST_SEEDS = 20  # how many violating seeds of each kind to keep


def cluster_of(seed: int) -> tuple[int, int]:
    """(members, witnesses) that tests/sim/test_random.py uses for `seed` (mod 2,000)."""
    offset = seed % PERIOD
    for members, witnesses, first, count in BATCHES:
        if first <= offset < first + count:
            return members, witnesses
    raise AssertionError(f"BATCHES do not cover offset {offset}")


@dataclass(slots=True)
class Tally:
    """What one chunk (or the whole run) found; merged in the parent."""

    schedules: int = 0
    safety_schedules: int = 0
    liveness_schedules: int = 0
    safety_violations: int = 0
    liveness_violations: int = 0
    safety_seeds: list[str] = field(default_factory=list)
    liveness_seeds: list[str] = field(default_factory=list)
    steps: int = 0
    sim_s: float = 0.0
    detect_s: list[float] = field(default_factory=list)
    failover_s: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.schedules += other.schedules
        self.safety_schedules += other.safety_schedules
        self.liveness_schedules += other.liveness_schedules
        self.safety_violations += other.safety_violations
        self.liveness_violations += other.liveness_violations
        self.safety_seeds.extend(other.safety_seeds)
        self.liveness_seeds.extend(other.liveness_seeds)
        self.steps += other.steps
        self.sim_s += other.sim_s
        self.detect_s.extend(other.detect_s)
        self.failover_s.extend(other.failover_s)


def label(seed: int) -> str:
    members, witnesses = cluster_of(seed)
    return f"seed={seed} members={members} witnesses={witnesses}"


def run_chunk(first: int, count: int) -> Tally:
    """Run seeds first..first+count-1 in this (worker) process."""
    tally = Tally()
    configs: dict[tuple[int, int], Any] = {}
    for seed in range(first, first + count):
        key = cluster_of(seed)
        if key not in configs:
            configs[key] = make_config(key[0], witnesses=key[1], timings=CI_TIMINGS)
        r = random_schedule(configs[key], seed, loss=LOSS, jitter_s=JITTER_S)
        tally.schedules += 1
        tally.steps += r.steps
        tally.sim_s += r.sim_s
        if r.detect_s is not None:
            tally.detect_s.append(r.detect_s)
        if r.failover_s is not None:
            tally.failover_s.append(r.failover_s)
        if r.safety:
            tally.safety_schedules += 1
            tally.safety_violations += len(r.safety)
            tally.safety_seeds.append(f"{label(seed)}: {r.safety[0]}")
        elif r.liveness:
            tally.liveness_schedules += 1
            tally.liveness_violations += len(r.liveness)
            tally.liveness_seeds.append(f"{label(seed)}: {r.liveness[0]}")
    return tally


def git_state() -> str | None:
    """HEAD, plus "+dirty" when gossipha/ has uncommitted edits (the code that was run)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "gossipha"],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def soak(schedules: int, workers: int, start: int, time_limit_s: float | None) -> dict[str, Any]:
    commit = git_state()  # read before the run: the workers fork with this code loaded
    started = time.perf_counter()
    total = Tally()
    chunks = [
        (s, min(CHUNK, start + schedules - s)) for s in range(start, start + schedules, CHUNK)
    ]
    pending: set[Future[Tally]] = set()
    stopped_early = False
    last_report = started
    with ProcessPoolExecutor(workers) as pool:
        queue = iter(chunks)
        for _ in range(2 * workers):
            nxt = next(queue, None)
            if nxt is not None:
                pending.add(pool.submit(run_chunk, *nxt))
        while pending:
            done, pending = wait(pending, timeout=30, return_when=FIRST_COMPLETED)
            for fut in done:
                total.add(fut.result())
            elapsed = time.perf_counter() - started
            over = time_limit_s is not None and elapsed >= time_limit_s
            if over:
                stopped_early = stopped_early or next(queue, None) is not None
            else:
                for _ in done:
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending.add(pool.submit(run_chunk, *nxt))
            if time.perf_counter() - last_report >= 60:
                last_report = time.perf_counter()
                print(
                    f"soak: {total.schedules}/{schedules} schedules, "
                    f"{total.safety_schedules} unsafe, {total.liveness_schedules} stuck, "
                    f"{total.schedules / elapsed:.1f}/s",
                    file=sys.stderr,
                    flush=True,
                )
    wall = time.perf_counter() - started
    return {
        "commit": commit,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "workers": workers,
        "first_seed": start,
        "requested_schedules": schedules,
        "schedules": total.schedules,
        "target_reached": total.schedules >= schedules,
        "stopped_by_time_limit": stopped_early,
        "loss": LOSS,
        "jitter_s": JITTER_S,
        "safety_schedules": total.safety_schedules,
        "safety_violations": total.safety_violations,
        "liveness_schedules": total.liveness_schedules,
        "liveness_violations": total.liveness_violations,
        "first_safety_seeds": sorted(total.safety_seeds, key=_seed_key)[:FIRST_SEEDS],
        "first_liveness_seeds": sorted(total.liveness_seeds, key=_seed_key)[:FIRST_SEEDS],
        "detect_s": percentiles(total.detect_s),
        "failover_s": percentiles(total.failover_s),
        "schedules_per_s": round(total.schedules / wall, 2) if wall else None,
        "steps_per_s": round(total.steps / wall, 1) if wall else None,
        "simulated_s": round(total.sim_s, 1),
        "wall_s": round(wall, 1),
    }


def _seed_key(text: str) -> int:
    return int(text.split()[0].removeprefix("seed="))


def replay(seed: int) -> int:
    members, witnesses = cluster_of(seed)
    config = make_config(members, witnesses=witnesses, timings=CI_TIMINGS)
    r = random_schedule(config, seed, loss=LOSS, jitter_s=JITTER_S)
    print(f"{label(seed)} safety={r.safety} liveness={r.liveness}")
    print("\n".join(r.trace))
    return 1 if r.safety or r.liveness else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--schedules", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--time-limit", type=float, default=None, help="seconds; then stop and report")
    p.add_argument("--replay", type=int, default=None, help="run one seed and print its trace")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    if args.replay is not None:
        return replay(args.replay)
    report = soak(args.schedules, args.workers, args.start, args.time_limit)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    bad = report["safety_schedules"] or report["liveness_schedules"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
