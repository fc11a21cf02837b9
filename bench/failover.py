"""Failover in the lab: client-observed outages of real agents, N runs per scenario.

    sudo python bench/failover.py --runs 10 --profile native --scenarios crash,graceful-stop --json
    sudo python bench/failover.py --runs 3 --profile tutorial --scenarios crash --time-limit 900

One lab (network namespaces, nothing in the root namespace) and one cluster per invocation;
every run starts from the baseline the scenario runner restores (both agents up, master
serving), after `--settle` seconds of quiet so the detectors have a history, as a real
cluster has before a failure. Runs of the scenarios are interleaved (crash, graceful-stop,
crash, ...) so slow phases of the shared machine fall on all of them.

Per run: the longest client outage (one request every 20 ms to the VIP) that began in the
failover step and in the failback step, two-holder samples (both nodes' addresses every
20 ms), and the agents' log events of each step as seconds after the step's start
(detection, lease wait, probe, VIP add, nginx start). One JSON object on stdout with --json;
progress on stderr. SIGTERM, SIGINT or --time-limit stop after the running run and still
report. Results go to docs/benchmarks.md "## Failover in the lab".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipha.lab.scenarios import (
    NODES,
    PROFILES,
    SCENARIO_NAMES,
    Cluster,
    Result,
    make_cluster,
    run_scenario,
    scenario,
)
from gossipha.lab.topology import Lab, sweep_stale

# Agent log line: "2026-11-26 06:44:54,042 INFO gossipha.agent: vip probed group=web ..."
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")
# (label, what the message starts with); the first of each per node and step is kept.
EVENTS = (
    ("peer_dead", "peer_dead"),
    ("failover_started", "failover_started"),
    ("vip_probed", "vip probed"),
    ("vip_added", "vip added"),
    ("service_started", "service start "),
    ("group_started", "group started"),
    ("stopping_group", "stopping group"),
    ("vip_removed", "vip removed"),
    ("group_stopped", "group stopped"),
)
_KV = re.compile(r"(\w+)=(\S+)")


def quantiles(values: list[float]) -> dict[str, float | None]:
    """median, p90 (nearest rank) and max; None for no values."""
    if not values:
        return {"median": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {
        "median": round(statistics.median(ordered), 3),
        "p90": round(p90, 3),
        "max": round(ordered[-1], 3),
    }


def log_events(path: Path, from_wall: float, to_wall: float) -> dict[str, float]:
    """First occurrence of each EVENTS entry in an agent log between two epoch times,
    as seconds after `from_wall`; also `probe_s` and `nginx_start_s` as the agent
    measured them."""
    found: dict[str, float] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return found
    for line in lines[-5000:]:  # bounded: a run adds a few dozen lines
        m = _LOG_LINE.match(line)
        if m is None:
            continue
        wall = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if not from_wall - 0.002 <= wall <= to_wall:
            continue
        message = m.group(2)
        fields = dict(_KV.findall(message))
        for label, prefix in EVENTS:
            if message.startswith(prefix) and label not in found:
                found[label] = round(wall - from_wall, 3)
                if label == "vip_probed" and "took_s" in fields:
                    found["probe_s"] = float(fields["took_s"])
                if label == "service_started" and "duration_s" in fields:
                    found["nginx_start_s"] = float(fields["duration_s"])
    return found


def run_record(cluster: Cluster, result: Result, wall_offset_s: float) -> dict[str, Any]:
    """One run: outage per step and the agents' events in each step."""
    per_step = result.step_outages_s()
    steps: list[dict[str, Any]] = []
    for i, step in enumerate(result.steps):
        from_wall = step.started_s + wall_offset_s
        to_wall = from_wall + step.elapsed_s + 0.5
        steps.append(
            {
                "name": step.name,
                "ok": step.ok,
                "elapsed_s": round(step.elapsed_s, 3),
                "outage_s": round(per_step[i], 3),
                "events": {n: log_events(cluster.agent_log(n), from_wall, to_wall) for n in NODES},
            }
        )
    return {
        "passed": result.passed,
        "error": result.error,
        "longest_outage_s": round(result.outage_s, 3),
        "failover_s": round(per_step[0], 3) if per_step else None,
        "failback_s": round(per_step[1], 3) if len(per_step) > 1 else None,
        "dual_holder_instants": result.dual_holder_instants,
        "steps": steps,
    }


def median_events(records: list[dict[str, Any]], step: int) -> dict[str, dict[str, float]]:
    """Per node and event, the median offset over the runs that logged it."""
    out: dict[str, dict[str, float]] = {}
    for node in NODES:
        seen: dict[str, list[float]] = {}
        for rec in records:
            if len(rec["steps"]) > step:
                for label, value in rec["steps"][step]["events"][node].items():
                    seen.setdefault(label, []).append(value)
        out[node] = {k: round(statistics.median(v), 3) for k, v in seen.items()}
    return out


def summarize(name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    failover = [r["failover_s"] for r in records if r["failover_s"] is not None]
    failback = [r["failback_s"] for r in records if r["failback_s"] is not None]
    return {
        "runs": len(records),
        "passed": sum(1 for r in records if r["passed"]),
        "outage_s": quantiles(failover),
        "failback_s": quantiles(failback),
        "longest_outage_s": quantiles([r["longest_outage_s"] for r in records]),
        "dual_holder_instants": sum(r["dual_holder_instants"] for r in records),
        "events_failover_median": median_events(records, 0),
        "events_failback_median": median_events(records, 1),
        "errors": [r["error"] for r in records if r["error"]],
        "per_run": [
            {k: r[k] for k in ("failover_s", "failback_s", "dual_holder_instants", "passed")}
            for r in records
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="native")
    parser.add_argument("--scenarios", default="crash,graceful-stop,ping-lost")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--settle", type=float, default=3.0, help="quiet seconds before a run")
    parser.add_argument("--time-limit", type=float, default=3600.0, help="stop starting runs")
    parser.add_argument("--verbose", action="store_true", help="the runner's steps on stderr")
    args = parser.parse_args(argv)
    names = [n for n in args.scenarios.split(",") if n]
    unknown = [n for n in names if n not in SCENARIO_NAMES]
    if unknown or args.runs < 1:
        parser.error(f"unknown scenario(s) {unknown}; expected {', '.join(SCENARIO_NAMES)}")
    if os.geteuid() != 0:
        print("failover.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    profile = PROFILES[args.profile]

    stop = {"now": False}
    main_pid = os.getpid()

    def on_signal(signum: int, _frame: object) -> None:
        if os.getpid() != main_pid:  # a forked helper (pyroute2's netns): die as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        stop["now"] = True
        print(
            f"failover.py: {signal.Signals(signum).name}: stopping after this run", file=sys.stderr
        )

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def say(line: str) -> None:
        if args.verbose:
            print(line, file=sys.stderr, flush=True)

    records: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    started = time.monotonic()
    wall_offset_s = time.time() - time.monotonic()
    sweep_stale()
    with Lab() as lab:
        cluster = make_cluster(lab, profile, say=say)
        try:
            for i in range(args.runs):
                for name in names:
                    if stop["now"] or time.monotonic() - started > args.time_limit:
                        stop["now"] = True
                        break
                    cluster.ensure_baseline()
                    time.sleep(args.settle)
                    result = run_scenario(cluster, scenario(name), say=say)
                    rec = run_record(cluster, result, wall_offset_s)
                    records[name].append(rec)
                    print(
                        f"[{time.monotonic() - started:7.1f}s] {name} run {i + 1}: "
                        f"failover {rec['failover_s']}s failback {rec['failback_s']}s "
                        f"dual {rec['dual_holder_instants']} "
                        f"{'ok' if rec['passed'] else 'FAILED: ' + str(rec['error'])}",
                        file=sys.stderr,
                        flush=True,
                    )
                if stop["now"]:
                    break
        finally:
            cluster.close()
    report = {
        "profile": profile.name,
        "runs": args.runs,
        "settle_s": args.settle,
        "stopped_early": stop["now"],
        "duration_s": round(time.monotonic() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "scenarios": {n: summarize(n, recs) for n, recs in records.items()},
    }
    if args.json:
        print(json.dumps(report))
    else:
        for n, s in report["scenarios"].items():
            print(
                f"{n:15} runs {s['runs']:3}  outage {s['outage_s']}  "
                f"failback {s['failback_s']}  dual {s['dual_holder_instants']}"
            )
    failed = any(s["dual_holder_instants"] for s in report["scenarios"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
