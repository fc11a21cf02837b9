"""A long swarm soak in resumable chunks, and the sum of chunk reports.

    python bench/swarm_soak.py run --out DIR [--first 0] [--seeds 100000] [--chunk 2000]
        [--workers 2] [--with-fault KIND ...]
    python bench/swarm_soak.py sum DIR ... [--json]

`run` calls `gossipha sim --swarm --seed S --schedules CHUNK --json` (with `--with-fault`
when given) for S = FIRST, FIRST + CHUNK, ... and keeps each report as DIR/chunk-S.json,
skipping chunks already there, so a soak stopped by a session's end goes on where it
stopped. It stops at the first chunk with a violation (its report names the seed and
the replay command).

`sum` adds up the chunk reports of one or more directories: schedules, violations, L1
orphan overlaps (count, total, longest, longest past the orphan's return), the clusters
and faults drawn, and the seed ranges covered, per directory and in all. A fault kind
added after a soak (gossipha/sim/swarm.py LATER_KINDS) leaves every schedule without it
as it was; its schedules are soaked apart with `--with-fault`, and the two directories
summed together make the soak of the newer draw. Exit 1 when a report has a violation,
a directory's seeds have a gap or an overlap, or nothing was run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run(out: Path, first: int, seeds: int, chunk: int, workers: int, kinds: list[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for seed in range(first, first + seeds, chunk):
        path = out / f"chunk-{seed}.json"
        if path.exists() and path.stat().st_size:
            continue
        n = min(chunk, first + seeds - seed)
        cmd = [sys.executable, "-m", "gossipha", "sim", "--swarm", "--json"]
        cmd += ["--seed", str(seed), "--schedules", str(n), "--workers", str(workers)]
        for kind in kinds:
            cmd += ["--with-fault", kind]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode not in (0, 1) or not proc.stdout.strip():
            print(f"chunk {seed}: gossipha sim failed ({proc.returncode})", file=sys.stderr)
            print(proc.stderr[-3000:], file=sys.stderr)
            return 2
        path.write_text(proc.stdout.splitlines()[0] + "\n")
        print(f"chunk {seed}: exit {proc.returncode}", file=sys.stderr)
        if proc.returncode == 1:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
    return 0


def _ranges(spans: list[tuple[int, int]]) -> tuple[list[list[int]], list[str]]:
    """Merged [first, last] seed ranges of chunk spans, and the overlaps among them."""
    merged: list[list[int]] = []
    problems = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            problems.append(f"seeds {lo}-{min(hi, merged[-1][1])} twice")
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged, problems


def sum_dir(path: Path) -> dict[str, Any]:
    reports = [json.loads(p.read_text()) for p in sorted(path.glob("chunk-*.json"))]
    spans = []
    schedules = drawn = safety = liveness = orphans = 0
    total_s = longest_s = outlived_s = wall_s = 0.0
    nodes: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    with_fault: set[str] = set()
    first_violation = None
    for r in reports:
        sw = r["swarm"]
        n_drawn = int(sw.get("drawn", r["schedules"]))
        spans.append((int(r["seed"]), int(r["seed"]) + n_drawn - 1))
        schedules += int(r["schedules"])
        drawn += n_drawn
        safety += int(r["safety_violations"])
        liveness += int(r["liveness_violations"])
        orphans += int(r["orphan_overlaps"])
        o = r["orphan_overlap_s"]
        total_s += float(o["total"])
        longest_s = max(longest_s, float(o["max"]))
        outlived_s = max(outlived_s, float(o["max_outlived"]))
        wall_s += float(r["wall_s"])
        nodes.update(sw["nodes"])
        faults.update(sw["faults"])
        with_fault.update(sw.get("with_fault") or ())
        if first_violation is None and r["first_violation"] is not None:
            first_violation = r["first_violation"]
    ranges, problems = _ranges(spans)
    if len(ranges) > 1:
        problems.append(f"seeds not contiguous: {ranges}")
    return {
        "dir": str(path),
        "chunks": len(reports),
        "seeds": ranges,
        "drawn": drawn,
        "schedules": schedules,
        "with_fault": sorted(with_fault) or None,
        "safety_violations": safety,
        "liveness_violations": liveness,
        "orphan_overlaps": orphans,
        "orphan_overlap_s": {
            "total": round(total_s, 4),
            "max": round(longest_s, 4),
            "max_outlived": round(outlived_s, 4),
        },
        "nodes": dict(sorted(nodes.items())),
        "faults": dict(sorted(faults.items())),
        "wall_s": round(wall_s, 1),
        "first_violation": first_violation,
        "problems": problems,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--first", type=int, default=0)
    r.add_argument("--seeds", type=int, default=100_000)
    r.add_argument("--chunk", type=int, default=2000)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--with-fault", dest="kinds", action="append", default=[])
    s = sub.add_parser("sum")
    s.add_argument("dirs", type=Path, nargs="+")
    s.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.cmd == "run":
        return run(args.out, args.first, args.seeds, args.chunk, args.workers, args.kinds)
    parts = [sum_dir(d) for d in args.dirs]
    report = {
        "parts": parts,
        "schedules": sum(p["schedules"] for p in parts),
        "safety_violations": sum(p["safety_violations"] for p in parts),
        "liveness_violations": sum(p["liveness_violations"] for p in parts),
        "orphan_overlaps": sum(p["orphan_overlaps"] for p in parts),
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for p in parts:
            print(
                f"{p['dir']}: seeds {p['seeds']} with_fault={p['with_fault']}: "
                f"{p['schedules']} schedules, {p['safety_violations']} safety, "
                f"{p['liveness_violations']} liveness, {p['orphan_overlaps']} L1 overlaps "
                f"(longest {p['orphan_overlap_s']['max']} s)"
            )
    bad = [f"{p['dir']}: {x}" for p in parts for x in p["problems"]]
    if report["safety_violations"] or report["liveness_violations"]:
        bad.append("violations found")
    if not report["schedules"]:
        bad.append("nothing was run")
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
