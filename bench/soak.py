"""Soak: many seeded random fault schedules of the real core, in parallel processes.

    python bench/soak.py --schedules 100000 --workers 2 --json     # from the repository root
    python bench/soak.py --schedules 20000 --time-limit 3000       # stop early, report so far
    python bench/soak.py --replay 1234 --members 2 --witnesses 1   # one seed, with its trace

Long soaks in pieces: `--part I/N` runs the I-th of N equal slices of every kind's seed range;
`--resume A.json ...` skips the seeds that earlier reports (`--json` output) covered, e.g. to
finish a run stopped by --time-limit; `--sum A.json B.json ...` adds up the reports of one
layout (same --schedules, --start, mix, loss, jitter and timings), refuses overlapping seeds,
and says whether the parts cover it all and on which commits they ran. Every report names
the exact command, the commit and the seed ranges it covered (`covered`, per kind).

The schedules are exactly those of tests/sim/test_random.py: `random_schedule` from
gossipha.sim.scenarios with loss 5 %, jitter 20 ms, the test's CI timings and its MIX of
clusters, each kind on its own contiguous seed range. `--schedules S --start F` runs the
same schedules as `GOSSIPHA_SIM_SCHEDULES=S GOSSIPHA_SIM_SEED=F pytest tests/sim/test_random.py`
(2,000 from seed 0 is the normal suite). Overlaps inside the documented limit L1 (orphan
VIPs) are counted apart, as the test does. Violations are printed to stderr as found;
SIGTERM or SIGINT (or --time-limit) stops after the running chunks and still reports.
Exit status 1, with the reasons on stderr, when any safety or liveness violation was found,
when schedules were planned but none ran (measured nothing), or (`--sum`) when the parts do
not cover the whole layout.
Results go to docs/benchmarks.md "## Simulator".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipha.sim.harness import make_config
from gossipha.sim.scenarios import percentiles, random_schedule
from tests.sim.test_random import CI_TIMINGS, MIX

LOSS = 0.05
JITTER_S = 0.02
CHUNK = 10  # schedules per task (the test uses 50; seeds do not depend on it): prompt stops
FIRST_SEEDS = 20  # how many violating seeds of each kind to keep
CODE_PATHS = ("gossipha", "bench", "tests/sim")  # what a run's verdict depends on


Kind = tuple[int, int]  # (members, witnesses)
Ranges = list[tuple[int, int]]  # inclusive (first, last) seed pairs, sorted, disjoint


def kind_key(members: int, witnesses: int) -> str:
    return f"members={members},witnesses={witnesses}"


def layout(schedules: int, start: int) -> list[tuple[int, int, int, int]]:
    """(members, witnesses, first seed, count) per kind: tests/sim/test_random.py `_chunks`."""
    out = []
    seed = start
    for members, witnesses, share in MIX:
        total = round(schedules * share)
        out.append((members, witnesses, seed, total))
        seed += total
    return out


def merge(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def subtract(ranges: Ranges, minus: Ranges) -> Ranges:
    out: Ranges = []
    for first, last in merge(ranges):
        for a, b in merge(minus):
            if b < first or a > last:
                continue
            if a > first:
                out.append((first, a - 1))
            first = b + 1
            if first > last:
                break
        if first <= last:
            out.append((first, last))
    return out


def count(ranges: Ranges) -> int:
    return sum(last - first + 1 for first, last in ranges)


def todo(
    schedules: int, start: int, part: tuple[int, int], done: dict[str, Ranges]
) -> dict[Kind, Ranges]:
    """The seeds to run per kind: slice `part` = (I, N) of each kind's range, less `done`."""
    index, parts = part
    out: dict[Kind, Ranges] = {}
    for members, witnesses, first, total in layout(schedules, start):
        lo = first + total * index // parts
        hi = first + total * (index + 1) // parts
        mine = [(lo, hi - 1)] if hi > lo else []
        out[(members, witnesses)] = subtract(mine, done.get(kind_key(members, witnesses), []))
    return out


def chunks(
    schedules: int,
    start: int,
    part: tuple[int, int] = (0, 1),
    done: dict[str, Ranges] | None = None,
) -> list[tuple[int, int, int, int]]:
    """(members, witnesses, first seed, count): the seeds of tests/sim/test_random.py
    `_chunks`, interleaved so that a run stopped early has covered every kind of cluster
    in proportion (the test runs the biggest clusters first)."""
    out: list[tuple[float, tuple[int, int, int, int]]] = []
    spans = {(m, w): (f, t) for m, w, f, t in layout(schedules, start)}
    for (members, witnesses), ranges in todo(schedules, start, part, done or {}).items():
        kind_first, total = spans[(members, witnesses)]
        for lo, hi in ranges:
            for first in range(lo, hi + 1, CHUNK):
                progress = (first - kind_first) / total
                n = min(CHUNK, hi + 1 - first)
                out.append((progress, (members, witnesses, first, n)))
    return [c for _, c in sorted(out, key=lambda pc: (pc[0], -pc[1][0]))]


@dataclass(slots=True)
class Tally:
    """What one chunk (or the whole run) found; merged in the parent."""

    schedules: int = 0
    safety_schedules: int = 0
    liveness_schedules: int = 0
    safety_violations: int = 0
    liveness_violations: int = 0
    orphans: int = 0
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
        self.orphans += other.orphans
        self.safety_seeds.extend(other.safety_seeds)
        self.liveness_seeds.extend(other.liveness_seeds)
        self.steps += other.steps
        self.sim_s += other.sim_s
        self.detect_s.extend(other.detect_s)
        self.failover_s.extend(other.failover_s)


def label(members: int, witnesses: int, seed: int) -> str:
    return f"seed={seed} members={members} witnesses={witnesses}"


def run_chunk(members: int, witnesses: int, first: int, count: int) -> Tally:
    """Run seeds first..first+count-1 of one cluster kind in this (worker) process."""
    tally = Tally()
    config = make_config(members, witnesses=witnesses, timings=CI_TIMINGS)
    for seed in range(first, first + count):
        r = random_schedule(config, seed, loss=LOSS, jitter_s=JITTER_S)
        tally.schedules += 1
        tally.steps += r.steps
        tally.sim_s += r.sim_s
        tally.orphans += getattr(r, "orphans", 0)
        if r.detect_s is not None:
            tally.detect_s.append(r.detect_s)
        if r.failover_s is not None:
            tally.failover_s.append(r.failover_s)
        if r.safety:
            tally.safety_schedules += 1
            tally.safety_violations += len(r.safety)
            tally.safety_seeds.append(f"{label(members, witnesses, seed)}: {r.safety[0]}")
        elif r.liveness:
            tally.liveness_schedules += 1
            tally.liveness_violations += len(r.liveness)
            tally.liveness_seeds.append(f"{label(members, witnesses, seed)}: {r.liveness[0]}")
    return tally


def git_state() -> str | None:
    """HEAD, plus "+dirty" when the code that was run (gossipha/, bench/, the test's MIX and
    timings in tests/sim/) has uncommitted edits."""
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
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def soak(
    schedules: int,
    workers: int,
    start: int,
    time_limit_s: float | None,
    part: tuple[int, int] = (0, 1),
    done: dict[str, Ranges] | None = None,
) -> dict[str, Any]:
    commit = git_state()  # read before the run: the workers fork with this code loaded
    plan = chunks(schedules, start, part, done)
    planned = sum(c[3] for c in plan)
    covered: dict[str, Ranges] = {kind_key(m, w): [] for m, w, _, _ in layout(schedules, start)}
    print(f"soak: {command()}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    total = Tally()
    stop: dict[str, str | None] = {"signal": None}

    def on_signal(signum: int, frame: object) -> None:
        del frame
        stop["signal"] = signal.Signals(signum).name

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    pending: dict[Future[Tally], tuple[int, int, int, int]] = {}
    stopped_early = False
    last_report = started
    try:
        with ProcessPoolExecutor(workers, initializer=_ignore_signals) as pool:
            queue = iter(plan)
            for _ in range(workers):  # more would sit in the call queue, past cancelling
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(run_chunk, *nxt)] = nxt
            while pending:
                finished, _ = wait(pending, timeout=5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    members, witnesses, first, n = pending.pop(fut)
                    result = fut.result()
                    assert result.schedules == n
                    total.add(result)
                    covered[kind_key(members, witnesses)].append((first, first + n - 1))
                    for line in result.safety_seeds + result.liveness_seeds:
                        print(f"soak: violation {line}", file=sys.stderr, flush=True)
                elapsed = time.perf_counter() - started
                over = time_limit_s is not None and elapsed >= time_limit_s
                if over or stop["signal"]:
                    stopped_early = stopped_early or next(queue, None) is not None
                    for fut in list(pending):
                        if fut.cancel():  # queued, not started: drop it
                            del pending[fut]
                            stopped_early = True
                else:
                    for _ in finished:
                        nxt = next(queue, None)
                        if nxt is not None:
                            pending[pool.submit(run_chunk, *nxt)] = nxt
                if time.perf_counter() - last_report >= 60:
                    last_report = time.perf_counter()
                    print(
                        f"soak: {total.schedules}/{planned} schedules, "
                        f"{total.safety_schedules} unsafe, {total.liveness_schedules} stuck, "
                        f"{total.orphans} L1 overlaps, {total.schedules / elapsed:.1f}/s",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    wall = time.perf_counter() - started
    covered = {k: merge(v) for k, v in covered.items()}
    return {
        "command": command(),
        "commit": commit,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "workers": workers,
        **layout_id(schedules, start),
        "part": f"{part[0]}/{part[1]}",
        "resumed": bool(done),
        "planned_schedules": planned,
        "schedules": total.schedules,
        "covered": covered,
        "target_reached": total.schedules >= planned,
        "stopped_early": stopped_early,
        "stopped_by": stop["signal"] or ("time limit" if stopped_early else None),
        "safety_schedules": total.safety_schedules,
        "safety_violations": total.safety_violations,
        "liveness_schedules": total.liveness_schedules,
        "liveness_violations": total.liveness_violations,
        "l1_orphan_overlaps": total.orphans,
        "first_safety_seeds": sorted(total.safety_seeds, key=_seed_key)[:FIRST_SEEDS],
        "first_liveness_seeds": sorted(total.liveness_seeds, key=_seed_key)[:FIRST_SEEDS],
        "detect_s": percentiles(total.detect_s),
        "failover_s": percentiles(total.failover_s),
        "schedules_per_s": round(total.schedules / wall, 2) if wall else None,
        "steps_per_s": round(total.steps / wall, 1) if wall else None,
        "simulated_s": round(total.sim_s, 1),
        "wall_s": round(wall, 1),
    }


def command() -> str:
    """The exact command of this run, to paste (the interpreter as invoked)."""
    return shlex.join([sys.executable, *sys.argv])


def layout_id(schedules: int, start: int) -> dict[str, Any]:
    """What makes two reports' seeds the same schedules (and so summable)."""
    return {
        "first_seed": start,
        "requested_schedules": schedules,
        "mix": [list(m) for m in MIX],
        "loss": LOSS,
        "jitter_s": JITTER_S,
        "timings": {k: v for k, v in asdict(CI_TIMINGS).items()},
        "kinds": {kind_key(m, w): [f, f + t - 1] for m, w, f, t in layout(schedules, start)},
    }


def load_reports(paths: list[str]) -> list[dict[str, Any]]:
    reports = []
    for path in paths:
        with open(path) as f:
            reports.append(json.load(f))
    return reports


def covered_by(reports: list[dict[str, Any]], schedules: int, start: int) -> dict[str, Ranges]:
    """Seeds covered by earlier reports of this layout (refuses reports of another one)."""
    want = layout_id(schedules, start)
    done: dict[str, Ranges] = {}
    for r in reports:
        for key, value in want.items():
            if r.get(key) != value:
                raise SystemExit(f"soak: {r.get('command')}: another layout ({key} differs)")
        for kind, ranges in r["covered"].items():
            done[kind] = merge(done.get(kind, []) + [(a, b) for a, b in ranges])
    return done


SUMMED = (
    "schedules",
    "safety_schedules",
    "safety_violations",
    "liveness_schedules",
    "liveness_violations",
    "l1_orphan_overlaps",
    "simulated_s",
    "wall_s",
)


def sum_reports(paths: list[str]) -> dict[str, Any]:
    """Add up the parts of one layout; overlapping seeds would count twice, so refuse."""
    reports = load_reports(paths)
    if not reports:
        raise SystemExit("soak: --sum needs reports")
    first = reports[0]
    schedules, start = first["requested_schedules"], first["first_seed"]
    covered_by(reports, schedules, start)  # same layout, or exit
    seen: dict[str, Ranges] = {}
    for path, r in zip(paths, reports, strict=True):
        for kind, ranges in r["covered"].items():
            mine = [(a, b) for a, b in ranges]
            if count(subtract(mine, seen.get(kind, []))) != count(mine):
                raise SystemExit(f"soak: {path} covers seeds of {kind} already counted")
            seen[kind] = merge(seen.get(kind, []) + mine)
    missing = {
        kind: subtract([(a, b)], seen.get(kind, []))
        for kind, (a, b) in layout_id(schedules, start)["kinds"].items()
    }
    commits = sorted({str(r["commit"]) for r in reports})
    out: dict[str, Any] = {
        **layout_id(schedules, start),
        "parts": [
            {k: r[k] for k in ("command", "commit", "covered", "schedules", "wall_s")}
            for r in reports
        ],
        "commits": commits,
        "one_clean_commit": len(commits) == 1 and not commits[0].endswith("+dirty"),
        "covered": seen,
        "missing": {k: v for k, v in missing.items() if v},
        "complete": not any(missing.values()),
    }
    for key in SUMMED:
        out[key] = round(sum(r[key] for r in reports), 1)
    out["schedules"] = int(out["schedules"])
    assert out["schedules"] == sum(count(v) for v in seen.values())
    out["first_safety_seeds"] = sorted(
        (s for r in reports for s in r["first_safety_seeds"]), key=_seed_key
    )[:FIRST_SEEDS]
    out["first_liveness_seeds"] = sorted(
        (s for r in reports for s in r["first_liveness_seeds"]), key=_seed_key
    )[:FIRST_SEEDS]
    return out


def _ignore_signals() -> None:
    """Workers leave SIGINT/SIGTERM to the parent, which stops after the running chunks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _seed_key(text: str) -> int:
    return int(text.split()[0].removeprefix("seed="))


def replay(seed: int, members: int, witnesses: int) -> int:
    config = make_config(members, witnesses=witnesses, timings=CI_TIMINGS)
    r = random_schedule(config, seed, loss=LOSS, jitter_s=JITTER_S)
    print(f"{label(members, witnesses, seed)} safety={r.safety} liveness={r.liveness}")
    print("\n".join(r.trace))
    return 1 if r.safety or r.liveness else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--schedules", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--time-limit", type=float, default=None, help="seconds; then stop and report")
    p.add_argument("--replay", type=int, default=None, help="run one seed and print its trace")
    p.add_argument("--members", type=int, default=2, help="with --replay")
    p.add_argument("--witnesses", type=int, default=0, help="with --replay")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--part", default="0/1", help="I/N: the I-th (from 0) of N seed slices")
    p.add_argument("--resume", nargs="+", default=[], metavar="REPORT", help="skip their seeds")
    p.add_argument("--sum", nargs="+", default=[], metavar="REPORT", help="add up reports")
    args = p.parse_args()
    if args.replay is not None:
        return replay(args.replay, args.members, args.witnesses)
    if args.sum:
        report = sum_reports(args.sum)
        print(
            json.dumps(report) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items())
        )
        problems = failures(report)
        if not report["complete"]:
            problems.append("the reports do not cover the whole layout (see `missing`)")
        for line in problems:
            print(f"soak: FAILED: {line}", file=sys.stderr)
        return 1 if problems else 0
    index, _, parts = args.part.partition("/")
    part = (int(index), int(parts or 1))
    if not 0 <= part[0] < part[1]:
        p.error("--part I/N needs 0 <= I < N")
    done = covered_by(load_reports(args.resume), args.schedules, args.start)
    report = soak(args.schedules, args.workers, args.start, args.time_limit, part, done)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    problems = failures(report)
    for line in problems:
        print(f"soak: FAILED: {line}", file=sys.stderr)
    return 1 if problems else 0


def failures(report: dict[str, Any]) -> list[str]:
    """Violations found, or planned schedules of which none ran."""
    out: list[str] = []
    if report["safety_schedules"]:
        out.append(f"{report['safety_schedules']} schedules broke safety")
    if report["liveness_schedules"]:
        out.append(f"{report['liveness_schedules']} schedules broke liveness")
    if report.get("planned_schedules", 1) > 0 and report["schedules"] == 0:
        out.append("no schedule ran (measured nothing)")
    return out


if __name__ == "__main__":
    sys.exit(main())
