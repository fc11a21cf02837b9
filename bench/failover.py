"""Failover in the lab: client-observed outages of real agents, N runs per scenario, and the
same scenarios run with Heartbeat 3 and keepalived in the same lab for the ratios.

    sudo python bench/failover.py --runs 10 --profile native --scenarios crash,graceful-stop --json
    sudo python bench/failover.py --runs 3 --profile tutorial --scenarios crash --time-limit 900
    sudo python bench/failover.py --systems gossipha-native,keepalived-default \
        --scenarios crash:10,graceful-stop:10,loss-watch:1 --json --plot docs/img/failover.png

Systems (`--systems`, default: gossipha with `--profile`): gossipha-native (gossipha.toml,
native defaults), gossipha-tutorial (the tutorial's /etc/ha.d as it is), gossipha-fast
(ha.cf at keepalive 200ms, deadtime 2), heartbeat-tutorial (Debian's Heartbeat with the
tutorial's files), heartbeat-fast (its fastest: the fast ha.cf timings),
keepalived-default (advert_int 1, ping track script), keepalived-fast (VRRPv3, advert_int
200 ms). See gossipha/lab/peers.py. Scenarios take an optional run count (`crash:10`);
besides the lab's own scenarios there are two that judge nothing and only watch (every
system is measured the same way): `link-cut-watch` (eth1 down on both for --cut-seconds,
then up for --heal-seconds) and `loss-watch` (20% loss of everything on eth1 of both for
--loss-seconds).

One lab (network namespaces, nothing in the root namespace) per invocation and one cluster
per system, the systems one after the other; every run starts from the baseline the
scenario runner restores (both agents up, master serving), after `--settle` seconds of
quiet so the detectors have a history, as a real cluster has before a failure. Runs of the
scenarios are interleaved (crash, graceful-stop, crash, ...) so slow phases of the shared
machine fall on all of them.

Per run: the longest client outage (one request every 20 ms to the VIP) that began in the
failover step and in the failback step, two-holder samples (both nodes' addresses every
20 ms), and the agents' log events of each step as seconds after the step's start
(detection, lease wait, probe, VIP add, nginx start). One JSON object on stdout with --json;
progress on stderr. SIGTERM, SIGINT or --time-limit stop after the running run and still
report (`--time-limit` is per system). Results go to docs/benchmarks.md "## Failover in the
lab" and "## Beside Heartbeat and keepalived".

JSON (stable; fields are only added): profile, runs, settle_s, stopped_early, duration_s,
machine {cpus, python, load_avg}, scenarios (the first system's), and systems {name:
{profile, duration_s, stopped_early, scenarios {name: {runs, passed, outage_s,
failback_s, longest_outage_s, vip_on_new_s, moves, dual_holder_instants, ...}}}}, ratios
{scenario: {"peer/gossipha": median outage ratio}}. Exit status 1 (with the reasons on
stderr) when a system could not run, a planned scenario has no run, a gossipha run failed,
or the lab could not measure a run (see `failures`); 2 when not root.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipha.lab.peers import GOSSIPHA_SYSTEMS, SYSTEMS, system_cluster
from gossipha.lab.scenarios import (
    NODES,
    PEER,
    PROFILES,
    SCENARIO_NAMES,
    Cluster,
    Result,
    Run,
    Scenario,
    run_scenario,
    scenario,
)
from gossipha.lab.stopping import StopRequest
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


def vip_on_new_s(result: Result) -> float | None:
    """Seconds from the first step's start until the VIP was on the other node (alone or
    not) for the first time; None if it never moved there."""
    if not result.steps or not result.holder_changes:
        return None
    before = result.holder_changes[0][1]
    if len(before) != 1:
        return None
    other = PEER[before[0]]
    start = result.steps[0].started_s
    for t_s, holders in result.holder_changes:
        if t_s >= start and other in holders:
            return round(t_s - start, 3)
    return None


def run_record(cluster: Cluster, result: Result, wall_offset_s: float) -> dict[str, Any]:
    """One run: outage per step, where the VIP went, and the agents' events in each step."""
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
        "lab_error": result.lab_error,
        "longest_outage_s": round(result.outage_s, 3),
        "failover_s": round(per_step[0], 3) if per_step else None,
        "failback_s": round(per_step[1], 3) if len(per_step) > 1 else None,
        "dual_holder_instants": result.dual_holder_instants,
        "vip_on_new_s": vip_on_new_s(result),
        # The client answered by another node than the one before (service moves).
        "moves": len(result.switches),
        "nobody_serving": any(not h for _, h in result.holder_changes[1:]),
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
        "vip_on_new_s": quantiles([r["vip_on_new_s"] for r in records if r["vip_on_new_s"]]),
        "moves": sum(r["moves"] for r in records),
        "runs_with_moves": sum(1 for r in records if r["moves"]),
        "runs_nobody_serving": sum(1 for r in records if r["nobody_serving"]),
        "events_failover_median": median_events(records, 0),
        "events_failback_median": median_events(records, 1),
        "errors": [r["error"] for r in records if r["error"]],
        "lab_errors": [r["lab_error"] for r in records if r.get("lab_error")],
        "per_run": [
            {
                k: r[k]
                for k in (
                    "failover_s",
                    "failback_s",
                    "dual_holder_instants",
                    "vip_on_new_s",
                    "moves",
                    "passed",
                )
            }
            for r in records
        ],
    }


# ---- systems and the watch-only scenarios ----


def watch_scenarios(cut_s: float, loss_s: float, heal_s: float = 60.0) -> dict[str, Scenario]:
    """Faults applied for a fixed time with nothing asserted: what each system does."""

    def link_cut(run: Run) -> None:
        lab = run.lab
        try:
            with run.step(f"eth1 down on both for {cut_s:.0f}s"):
                for node in NODES:
                    lab.set_link(node, "eth1", False)
                time.sleep(cut_s)
            with run.step(f"eth1 up on both: watched {heal_s:.0f}s"):
                for node in NODES:
                    lab.set_link(node, "eth1", True)
                time.sleep(heal_s)
        finally:
            for node in NODES:
                lab.set_link(node, "eth1", True)

    def loss(run: Run) -> None:
        lab = run.lab
        try:
            with run.step(f"20% loss of everything on eth1 of both for {loss_s:.0f}s"):
                for node in NODES:
                    lab.nft_loss(node, "eth1", 20)
                time.sleep(loss_s)
        finally:
            for node in NODES:
                lab.nft_loss_clear(node)
        with run.step("loss cleared: watched 10s"):
            time.sleep(10.0)

    return {
        "link-cut-watch": Scenario(
            "link-cut-watch", f"heartbeat link (eth1) down on both for {cut_s:.0f}s", link_cut
        ),
        "loss-watch": Scenario("loss-watch", f"20% loss on eth1 for {loss_s:.0f}s", loss),
    }


def parse_plan(spec: str, default_runs: int, known: set[str]) -> dict[str, int]:
    """`crash:10,graceful-stop,loss-watch:1` -> {scenario: runs}; ValueError names the bad
    entry and what was expected."""
    plan: dict[str, int] = {}
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        name, _, count = entry.partition(":")
        if name not in known:
            raise ValueError(
                f"unknown scenario {name!r}; expected one of {', '.join(sorted(known))}"
            )
        try:
            runs = int(count) if count else default_runs
        except ValueError:
            raise ValueError(f"{entry!r}: the run count after ':' must be an integer") from None
        if runs < 1:
            raise ValueError(f"{entry!r}: the run count must be at least 1")
        plan[name] = runs
    if not plan:
        raise ValueError("no scenario given")
    return plan


def ratios(systems: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per scenario, each peer's median outage over each gossipha system's, measured in the
    same run ("peer/gossipha" keys)."""
    out: dict[str, dict[str, float | None]] = {}
    gossiphas = [s for s in systems if s in GOSSIPHA_SYSTEMS]
    for peer in (s for s in systems if s not in GOSSIPHA_SYSTEMS):
        for name, summary in systems[peer]["scenarios"].items():
            for ours in gossiphas:
                mine = systems[ours]["scenarios"].get(name)
                theirs_s = summary["outage_s"]["median"]
                ours_s = mine["outage_s"]["median"] if mine else None
                value = None if theirs_s is None or not ours_s else round(theirs_s / ours_s, 1)
                out.setdefault(name, {})[f"{peer}/{ours}"] = value
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def markdown(report: dict[str, Any]) -> str:
    """The docs/benchmarks.md table: one row per system and scenario."""
    rows = [
        "| system | scenario | runs | outage median | max | VIP on the other node (median) "
        "| failback median | service moves | runs with nobody holding | dual-holder samples |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system, data in report["systems"].items():
        for name, s in data["scenarios"].items():
            rows.append(
                f"| {system} | {name} | {s['runs']} | {_fmt(s['outage_s']['median'])} "
                f"| {_fmt(s['outage_s']['max'])} | {_fmt(s['vip_on_new_s']['median'])} "
                f"| {_fmt(s['failback_s']['median'])} | {s['moves']} "
                f"| {s['runs_nobody_serving']} | {s['dual_holder_instants']} |"
            )
    return "\n".join(rows) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Bar chart of median outage (max as a whisker) per system, one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    seen = [n for d in report["systems"].values() for n in d["scenarios"]]
    names = list(dict.fromkeys(seen))  # in the order they were run
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 4.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        labels, medians, shown, spans, notes = [], [], [], [], []
        for system, data in report["systems"].items():
            s = data["scenarios"].get(name)
            if s is None or s["outage_s"]["median"] is None:
                continue
            labels.append(system)
            medians.append(s["outage_s"]["median"])
            shown.append(max(s["outage_s"]["median"], 0.01))  # a log axis has no 0
            spans.append(max(s["outage_s"]["max"] - s["outage_s"]["median"], 0.0))
            dual = s["dual_holder_instants"]
            notes.append(f"{s['outage_s']['median']:.2f}" + (f"\n{dual} dual" if dual else ""))
        colors = ["tab:green" if lb.startswith("gossipha") else "tab:gray" for lb in labels]
        ax.bar(range(len(labels)), shown, yerr=[[0] * len(spans), spans], color=colors)
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(0.01, max([*shown, 0.1]) * 6)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.set_ylabel("client outage, s (median; whisker: max)")
        ax.set_title(name)
        for i, (m, note) in enumerate(zip(shown, notes, strict=True)):
            color = "tab:red" if "dual" in note else "black"
            ax.annotate(note, (i, m), ha="center", va="bottom", fontsize=7, color=color)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of a scenario without ':N'")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="native")
    parser.add_argument("--systems", help=f"comma-separated, of: {', '.join(SYSTEMS)}")
    parser.add_argument("--scenarios", default="crash,graceful-stop,ping-lost")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--markdown", action="store_true", help="the table on stdout")
    parser.add_argument("--plot", type=Path, help="write the outage chart (PNG) here")
    parser.add_argument("--settle", type=float, default=3.0, help="quiet seconds before a run")
    parser.add_argument("--cut-seconds", type=float, default=40.0, help="link-cut-watch")
    parser.add_argument("--heal-seconds", type=float, default=60.0, help="link-cut-watch")
    parser.add_argument("--loss-seconds", type=float, default=180.0, help="loss-watch")
    parser.add_argument("--time-limit", type=float, default=3600.0, help="per system")
    parser.add_argument("--verbose", action="store_true", help="the runner's steps on stderr")
    args = parser.parse_args(argv)
    watch = watch_scenarios(args.cut_seconds, args.loss_seconds, args.heal_seconds)
    try:
        plan = parse_plan(args.scenarios, args.runs, set(SCENARIO_NAMES) | set(watch))
    except ValueError as exc:
        parser.error(f"--scenarios: {exc}")
    systems = [s for s in (args.systems or f"gossipha-{args.profile}").split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        parser.error(f"--systems: unknown {unknown}; expected some of {', '.join(SYSTEMS)}")
    if os.geteuid() != 0:
        print("failover.py: needs root (network namespaces)", file=sys.stderr)
        return 2

    stop = StopRequest("failover.py", "this run").install()

    def say(line: str) -> None:
        if args.verbose:
            print(line, file=sys.stderr, flush=True)

    started = time.monotonic()
    wall_offset_s = time.time() - time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    sweep_stale()
    with Lab() as lab:
        for system in systems:
            if stop.requested:
                break
            try:
                results[system] = run_system(
                    lab, system, plan, watch, args, say, stop, wall_offset_s
                )
            except Exception as exc:  # one system failing to run must not lose the others
                print(f"failover.py: {system}: {type(exc).__name__}: {exc}", file=sys.stderr)
                results[system] = {
                    "profile": None,
                    "duration_s": None,
                    "stopped_early": True,
                    "error": f"{type(exc).__name__}: {exc}",
                    "scenarios": {},
                }
    first = next(iter(results.values()), {"profile": None, "scenarios": {}})
    report = {
        "profile": first["profile"],
        "runs": args.runs,
        "settle_s": args.settle,
        "stopped_early": stop.requested or any(r["stopped_early"] for r in results.values()),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "scenarios": first["scenarios"],
        "systems": results,
        "ratios": ratios(results),
    }
    if args.plot is not None:
        plot(report, args.plot)
    if args.json:
        print(json.dumps(report))
    elif args.markdown:
        print(markdown(report), end="")
    else:
        for system, data in results.items():
            for n, s in data["scenarios"].items():
                print(
                    f"{system:20} {n:15} runs {s['runs']:3}  outage {s['outage_s']}  "
                    f"failback {s['failback_s']}  moves {s['moves']}  "
                    f"dual {s['dual_holder_instants']}"
                )
    problems = failures(report)
    for line in problems:
        print(f"failover.py: FAILED: {line}", file=sys.stderr)
    return 1 if problems else 0


def failures(report: dict[str, Any]) -> list[str]:
    """Why the exit status is 1: a system that could not run, a planned scenario with no
    run, a gossipha run that failed (a step, two holders, the outage bound), or any run the
    lab could not measure. A peer's failed steps and dual holders are findings, not failures."""
    out: list[str] = []
    if not report["systems"]:
        out.append("no system ran (measured nothing)")
    for system, data in report["systems"].items():
        if data.get("error"):
            out.append(f"{system}: could not run: {data['error']}")
            continue
        ours = system in GOSSIPHA_SYSTEMS
        for name, s in data["scenarios"].items():
            if s["runs"] == 0:
                out.append(f"{system} {name}: no run finished (measured nothing)")
                continue
            if ours and s["passed"] < s["runs"]:
                errors = "; ".join(str(e) for e in s["errors"][:3])
                out.append(
                    f"{system} {name}: {s['runs'] - s['passed']} of {s['runs']} runs "
                    f"failed: {errors}"
                )
            elif s.get("lab_errors"):
                errors = "; ".join(str(e) for e in s["lab_errors"][:3])
                out.append(
                    f"{system} {name}: {len(s['lab_errors'])} of {s['runs']} runs "
                    f"not measured: {errors}"
                )
    return out


def run_system(
    lab: Lab,
    system: str,
    plan: dict[str, int],
    watch: dict[str, Scenario],
    args: argparse.Namespace,
    say: Callable[[str], None],
    stop: StopRequest,
    wall_offset_s: float,
) -> dict[str, Any]:
    """Every planned run of one system, scenarios interleaved, from one cluster."""
    records: dict[str, list[dict[str, Any]]] = {n: [] for n in plan}
    started = time.monotonic()
    stopped_early = False
    cluster = system_cluster(lab, system, say=say)
    print(f"== {system} ({cluster.profile.name})", file=sys.stderr, flush=True)
    try:
        for i in range(max(plan.values())):
            for name, runs in plan.items():
                if i >= runs:
                    continue
                if stop.requested or time.monotonic() - started > args.time_limit:
                    stopped_early = True
                    break
                cluster.ensure_baseline()
                time.sleep(args.settle)
                sc = watch[name] if name in watch else scenario(name)
                result = run_scenario(cluster, sc, say=say)
                rec = run_record(cluster, result, wall_offset_s)
                records[name].append(rec)
                print(
                    f"[{time.monotonic() - started:7.1f}s] {system} {name} run {i + 1}: "
                    f"outage {rec['failover_s']}s then {rec['failback_s']}s, "
                    f"VIP on the other node {rec['vip_on_new_s']}s, moves {rec['moves']}, "
                    f"dual {rec['dual_holder_instants']} "
                    f"{'ok' if rec['passed'] else 'FAILED: ' + str(rec['error'])}",
                    file=sys.stderr,
                    flush=True,
                )
            if stopped_early:
                break
    finally:
        cluster.close()
        with contextlib.suppress(Exception):
            cluster.stop_all()
    return {
        "profile": cluster.profile.name,
        "duration_s": round(time.monotonic() - started, 1),
        "stopped_early": stopped_early,
        "scenarios": {n: summarize(n, recs) for n, recs in records.items()},
    }


if __name__ == "__main__":
    sys.exit(main())
