"""Scale with real agents: N = 3 to 32 `gossipha agent` processes in network namespaces.

    sudo python bench/scale_lab.py --sizes 3,8,16,32 --layouts all,five --crash-runs 3 \\
        --idle-seconds 60 --json --time-limit 1500

One lab per (N, layout), built from `gossipha.lab.fleet` (N nodes on a service and a
heartbeat network bridged in a switch namespace; one gossipha.toml at native default
timings; one group: a VIP on eth0 and a resource.d script that runs nothing) and torn down
after it. Layouts: `all` (``voter = true`` on every node) and `five` (no voter keys: the
default rule, at most 5 voters, first by name). Stale ``gha-`` labs of dead runs are swept
first. Per configuration, in order:

1. **Start**: every agent spawned at once. `first_holder_s`: the first netlink pass (the
   VIP on an up interface, every node read in turn) in which exactly one node held it;
   `first_vip_added_s`: the first ``vip added`` in any agent's log; `agree_s`: the end of
   the first round of /status reads (each agent's own 127.0.0.1:9694, in its namespace)
   in which every agent named the same holder and a netlink pass saw that node, and only
   it, holding; `agents_up_s`: when the last agent logged ``observe api listening``
   (Python start-up of N processes on a shared machine). All in seconds after the spawn.
2. **Idle**: after `--settle` s, a window of `--idle-seconds` in which nothing else reads
   the agents: CPU (utime+stime from /proc/PID/stat, as % of one core), children's CPU
   (the holder's service status script) apart, VmRSS and PSS (smaps_rollup) at the end,
   and packets per second on the node's interfaces but lo (/proc/PID/net/dev; one agent
   per namespace, so these are the agent's packets plus ARP). Median and max over
   agents, and the holder's. `moves` counts ``vip added`` log lines in the window.
3. **Crash**: `--crash-runs` times: `Lab.crash` of the holder's node (SIGKILL of every
   process in it, links down); `failover_s`: until a netlink read saw the VIP on another
   node (reads of every other node in turn, ~10 ms apart); `failover_log_s`: the new
   holder's ``vip added`` log time, both after the crash call started. Then the node is
   restored (links up, agent restarted) and `reagree_s` is the time until all agents
   agree again; `--settle` s of quiet before the next crash.

JSON (``--json``, one object on stdout; progress on stderr): `command`, `commit`,
`started_wall`, `duration_s`, `stopped_early`, `skipped` (configurations not started),
`params` {sizes, layouts, crash_runs, idle_s, settle_s, memlock_unlimited},
`timings` (native defaults), `machine` {cpus, python, kernel, load_avg_start,
load_avg_end, load_avg_samples}, and `configs`: one object per configuration with `n`,
`layout`, `voters`, `ok`, `error`, `duration_s`, `load_avg` (at its end),
`start` {spawn_s, agents_up_s, first_vip_added_s, first_holder_s, first_holder, holder,
agree_s, status_round_s, last_to_agree, multi_holder_passes, failover_started,
peer_dead (log lines over all agents until agreement: acquisition attempts, deaths
declared)}, `idle` {window_s, load_avg_start, load_avg_end, holder, holder_before,
moves, peer_dead, mlock, cpu_pct, children_cpu_pct, rss_mb, rss_anon_mb, pss_mb, rx_pps, tx_pps
(each {median, max, holder}), cluster_tx_pps, per_agent [{node, voter, cpu_pct,
children_cpu_pct, rss_mb, rss_anon_mb, pss_mb, rx_pps, tx_pps, threads}]}, `crash` {runs,
failover_s, failover_log_s, reagree_s (each {median, max}), per_run [{victim,
victim_voter, new_holder, failover_s, failover_log_s, reagree_s, last_to_agree,
multi_holder_passes, peer_dead (the victim's deaths included), error}]}. Exit status 1,
with the reasons on stderr, when no configuration ran, any configuration failed, or a pass
saw two nodes holding; 2 when not root.

SIGTERM, SIGINT or --time-limit stop after the running configuration and still report.
Results go to docs/benchmarks.md "### Real agents in namespaces, N = 3 to 32".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipha.config.native import NATIVE_DEFAULTS
from gossipha.lab.fleet import Fleet, VoterLayout, fleet_hosts, voter_count
from gossipha.lab.stopping import StopRequest
from gossipha.lab.topology import Lab, sweep_stale
from gossipha.lab.usage import (
    LinkCounters,
    ProcessUsage,
    UsageError,
    link_rate,
    process_rate,
    sample_links,
    sample_process,
)

MB = 1024 * 1024
POLL_S = 0.01  # pause between netlink passes while waiting for a holder
FAILOVER_BOUND_S = 30.0


def stats(values: Sequence[float], digits: int = 3) -> dict[str, float | None]:
    if not values:
        return {"median": None, "max": None}
    return {
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "-uno", "--", "gossipha", "bench"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


class Progress:
    def __init__(self, started: float) -> None:
        self.started = started

    def __call__(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {line}", file=sys.stderr, flush=True)


def count_lines(fleet: Fleet, prefix: str, from_wall: float, to_wall: float) -> int:
    """Log lines starting with `prefix` in every agent's log between two epoch times."""
    return sum(
        1 for n in fleet.nodes for w in fleet.log_events(n, prefix, from_wall) if w <= to_wall
    )


def run_start(fleet: Fleet, bound_s: float, stop: Callable[[], bool]) -> dict[str, Any]:
    wall0 = time.time()
    t0 = time.monotonic()
    fleet.start_all()
    spawn_s = time.monotonic() - t0
    first_holder_s: float | None = None
    holder_seen: str | None = None
    multi = 0
    deadline = t0 + bound_s
    while first_holder_s is None:
        began = time.monotonic()
        held = fleet.holders()
        multi += len(held) > 1
        if len(held) == 1:
            first_holder_s, holder_seen = began - t0, held[0]
            break
        if began > deadline or stop():
            raise TimeoutError(f"no holder within {bound_s:.0f} s")
        time.sleep(POLL_S)
    agreement = fleet.wait_agreement(max(1.0, deadline - time.monotonic()), stop)
    agreed_wall = time.time()
    added = [w for n in fleet.nodes for w in fleet.log_events(n, "vip added", wall0)]
    ups = [fleet.log_events(n, "observe api listening", wall0) for n in fleet.nodes]
    agents_up = max(min(u) for u in ups) - wall0 if all(ups) else None
    return {
        "spawn_s": round(spawn_s, 3),
        "agents_up_s": None if agents_up is None else round(agents_up, 3),
        "first_vip_added_s": round(min(added) - wall0, 3) if added else None,
        "first_holder_s": round(first_holder_s, 3),
        "first_holder": holder_seen,
        "holder": agreement.holder,
        "agree_s": round(agreement.at_s - t0, 3),
        "status_round_s": round(agreement.round_s, 3),
        "last_to_agree": agreement.last_node,
        "multi_holder_passes": multi + agreement.multi_holder_passes,
        # Until agreement, over all agents: acquisition attempts and false deaths.
        "failover_started": count_lines(fleet, "failover_started", wall0, agreed_wall),
        "peer_dead": count_lines(fleet, "peer_dead", wall0, agreed_wall),
    }


def run_idle(fleet: Fleet, window_s: float, voters: set[str]) -> dict[str, Any]:
    pids = {n: fleet.agent_pid(n) for n in fleet.nodes}
    missing = [n for n, p in pids.items() if p is None]
    if missing:
        raise RuntimeError(f"agents not running before the idle window: {missing}")
    holder_before = fleet.holders()
    wall0 = time.time()
    load_start = load_avg()
    before: dict[str, tuple[ProcessUsage, LinkCounters]] = {}
    for n, pid in pids.items():
        assert pid is not None
        before[n] = (sample_process(pid), sample_links(fleet.lab, n, pid=pid))
    time.sleep(window_s)
    after: dict[str, tuple[ProcessUsage, LinkCounters]] = {}
    for n, pid in pids.items():
        assert pid is not None
        after[n] = (sample_process(pid), sample_links(fleet.lab, n, pid=pid))
    load_end = load_avg()
    holder_after = fleet.holders()
    wall1 = time.time()
    moves = count_lines(fleet, "vip added", wall0, wall1)
    peer_dead = count_lines(fleet, "peer_dead", wall0, wall1)
    mlock = {
        line.split("result=", 1)[-1].strip().strip('"')
        for n in fleet.nodes
        for line in fleet.log_tail(n, 400).splitlines()
        if "memory lock" in line
    }
    per_agent: list[dict[str, Any]] = []
    for n in fleet.nodes:
        p = process_rate(before[n][0], after[n][0])
        k = link_rate(before[n][1], after[n][1])
        per_agent.append(
            {
                "node": n,
                "voter": n in voters,
                "cpu_pct": round(100 * p.cpu_fraction, 3),
                "children_cpu_pct": round(100 * p.children_cpu_fraction, 3),
                "rss_mb": round(p.rss_bytes / MB, 2),
                "rss_anon_mb": round(after[n][0].rss_anon_bytes / MB, 2),
                "pss_mb": None if p.pss_bytes is None else round(p.pss_bytes / MB, 2),
                "rx_pps": round(k.rx_pps, 2),
                "tx_pps": round(k.tx_pps, 2),
                "threads": after[n][0].threads,
            }
        )
    holder = holder_after[0] if len(holder_after) == 1 else None

    def summary(key: str) -> dict[str, float | None]:
        values = [float(a[key]) for a in per_agent if a[key] is not None]
        out = stats(values)
        out["holder"] = next((a[key] for a in per_agent if a["node"] == holder), None)
        return out

    return {
        "window_s": round(after[fleet.nodes[0]][0].at_s - before[fleet.nodes[0]][0].at_s, 2),
        "load_avg_start": load_start,
        "load_avg_end": load_end,
        "holder": holder,
        "holder_before": list(holder_before),
        "moves": moves,
        "peer_dead": peer_dead,
        "mlock": sorted(mlock),
        "cpu_pct": summary("cpu_pct"),
        "children_cpu_pct": summary("children_cpu_pct"),
        "rss_mb": summary("rss_mb"),
        "rss_anon_mb": summary("rss_anon_mb"),
        "pss_mb": summary("pss_mb"),
        "rx_pps": summary("rx_pps"),
        "tx_pps": summary("tx_pps"),
        "cluster_tx_pps": round(sum(a["tx_pps"] for a in per_agent), 1),
        "per_agent": per_agent,
    }


def run_crash(
    fleet: Fleet, holder: str, voters: set[str], bound_s: float, stop: Callable[[], bool]
) -> dict[str, Any]:
    others = [n for n in fleet.nodes if n != holder]
    wall_c = time.time()
    t_c = time.monotonic()
    fleet.crash(holder)
    new_holder: str | None = None
    failover_s: float | None = None
    multi = 0
    deadline = t_c + FAILOVER_BOUND_S
    while new_holder is None and time.monotonic() < deadline:
        seen = []
        for n in others:
            if fleet.holds(n):
                seen.append(n)
                if new_holder is None:
                    new_holder, failover_s = n, time.monotonic() - t_c
        multi += len(seen) > 1
        if new_holder is None:
            time.sleep(POLL_S)
    record: dict[str, Any] = {
        "victim": holder,
        "victim_voter": holder in voters,
        "new_holder": new_holder,
        "failover_s": None if failover_s is None else round(failover_s, 3),
        "failover_log_s": None,
        "reagree_s": None,
        "multi_holder_passes": multi,
        "error": None,
    }
    if new_holder is not None:
        added = fleet.log_events(new_holder, "vip added", wall_c)
        if added:
            record["failover_log_s"] = round(min(added) - wall_c, 3)
    else:
        record["error"] = f"no other node held the VIP within {FAILOVER_BOUND_S:.0f} s"
    t_r = time.monotonic()
    fleet.restore(holder)
    agreement = fleet.wait_agreement(bound_s, stop)
    record["reagree_s"] = round(agreement.at_s - t_r, 3)
    record["last_to_agree"] = agreement.last_node
    record["multi_holder_passes"] += agreement.multi_holder_passes
    record["peer_dead"] = count_lines(fleet, "peer_dead", wall_c, time.time())
    return record


def run_config(
    n: int, layout: VoterLayout, args: argparse.Namespace, say: Progress, stop: Callable[[], bool]
) -> dict[str, Any]:
    started = time.monotonic()
    voters_n = voter_count(n, layout)
    record: dict[str, Any] = {
        "n": n,
        "layout": layout.value,
        "voters": voters_n,
        "ok": False,
        "error": None,
        "start": None,
        "idle": None,
        "crash": None,
    }
    bound_s = args.start_timeout + 2.0 * n
    with Lab(fleet_hosts(n)) as lab:
        fleet = Fleet(lab, layout, memlock_unlimited=args.memlock_unlimited)
        voters = set(fleet.nodes[:voters_n])  # by name: n0..n4 come first in both rules
        try:
            fleet.open_handles()
            say(f"N={n} {layout.value}: {len(fleet.nodes)} agents starting ({voters_n} voters)")
            record["start"] = start = run_start(fleet, bound_s, stop)
            say(
                f"N={n} {layout.value}: first holder {start['first_holder']} at "
                f"{start['first_holder_s']} s, all agree on {start['holder']} at "
                f"{start['agree_s']} s (agents up {start['agents_up_s']} s)"
            )
            time.sleep(args.settle)
            record["idle"] = idle = run_idle(fleet, args.idle_seconds, voters)
            say(
                f"N={n} {layout.value}: idle {idle['window_s']} s: cpu {idle['cpu_pct']} %, "
                f"rss {idle['rss_mb']} MB, tx {idle['tx_pps']} pps, load {idle['load_avg_end']}"
            )
            runs: list[dict[str, Any]] = []
            holder = idle["holder"] or start["holder"]
            for i in range(args.crash_runs):
                if stop():
                    break
                rec = run_crash(fleet, holder, voters, bound_s, stop)
                runs.append(rec)
                say(
                    f"N={n} {layout.value}: crash {i + 1} of {rec['victim']}: "
                    f"{rec['new_holder']} holds after {rec['failover_s']} s "
                    f"(log {rec['failover_log_s']} s), all agree {rec['reagree_s']} s "
                    "after the restart"
                )
                if rec["new_holder"] is None:
                    break
                holder = rec["new_holder"]
                time.sleep(args.settle)
            record["crash"] = {
                "runs": len(runs),
                "failover_s": stats([r["failover_s"] for r in runs if r["failover_s"]]),
                "failover_log_s": stats([r["failover_log_s"] for r in runs if r["failover_log_s"]]),
                "reagree_s": stats([r["reagree_s"] for r in runs if r["reagree_s"]]),
                "per_run": runs,
            }
            record["ok"] = all(r["error"] is None for r in runs)
        except (TimeoutError, RuntimeError, UsageError, OSError) as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            say(f"N={n} {layout.value}: FAILED: {record['error']}")
            for node in fleet.nodes[:2]:
                say(f"  {node} log tail:\n{fleet.log_tail(node, 6)}")
        finally:
            fleet.close()
    record["duration_s"] = round(time.monotonic() - started, 1)
    record["load_avg"] = load_avg()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="3,8,16,32")
    parser.add_argument("--layouts", default="all,five")
    parser.add_argument("--crash-runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=5.0, help="quiet seconds before a phase")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="+2 s per node")
    parser.add_argument(
        "--memlock-unlimited",
        action="store_true",
        help="raise RLIMIT_MEMLOCK (as deploy/systemd) so agents mlockall; needs the privilege",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--time-limit", type=float, default=1500.0, help="stop starting configs")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        layouts = [VoterLayout(s) for s in args.layouts.split(",") if s]
    except ValueError as exc:
        parser.error(str(exc))
    if not sizes or not layouts or args.crash_runs < 0 or args.idle_seconds <= 0:
        parser.error("need sizes, layouts, --crash-runs >= 0 and --idle-seconds > 0")
    if os.geteuid() != 0:
        print("scale_lab.py: needs root (network namespaces)", file=sys.stderr)
        return 2

    stop = StopRequest("scale_lab.py", "this configuration").install()

    started = time.monotonic()
    say = Progress(started)
    report: dict[str, Any] = {
        "command": "python bench/scale_lab.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "commit": commit(),
        "started_wall": round(time.time(), 1),
        "params": {
            "sizes": sizes,
            "layouts": [lay.value for lay in layouts],
            "crash_runs": args.crash_runs,
            "idle_s": args.idle_seconds,
            "settle_s": args.settle,
            "memlock_unlimited": args.memlock_unlimited,
        },
        "timings": {
            "keepalive_s": NATIVE_DEFAULTS.keepalive_s,
            "deadtime_s": NATIVE_DEFAULTS.deadtime_s,
            "initdead_s": NATIVE_DEFAULTS.initdead_s,
            "lease_s": NATIVE_DEFAULTS.lease_s,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "load_avg_start": load_avg(),
        },
    }
    configs: list[dict[str, Any]] = []
    skipped: list[str] = []
    swept = sweep_stale()
    if swept:
        say(f"swept {len(swept)} stale namespaces")
    for n in sizes:
        for layout in layouts:
            # A configuration needs start-up, settle, the window and the crashes.
            need_s = args.idle_seconds + 2 * args.settle + args.crash_runs * (10 + 0.5 * n) + n
            if stop.requested or time.monotonic() - started + need_s > args.time_limit:
                skipped.append(f"{n}/{layout.value}")
                continue
            configs.append(run_config(n, layout, args, say, stop))
    report["machine"]["load_avg_end"] = load_avg()
    report["machine"]["load_avg_samples"] = [c["load_avg"] for c in configs]
    report["duration_s"] = round(time.monotonic() - started, 1)
    report["stopped_early"] = bool(skipped)
    report["skipped"] = skipped
    report["configs"] = configs
    if args.json:
        print(json.dumps(report))
    else:
        for c in configs:
            s, i, k = c["start"] or {}, c["idle"] or {}, c["crash"] or {}
            print(
                f"N={c['n']:3} {c['layout']:4} voters {c['voters']:2}  agree "
                f"{s.get('agree_s')} s  cpu {i.get('cpu_pct')}  rss {i.get('rss_mb')}  "
                f"tx pps {i.get('tx_pps')}  failover {k.get('failover_s')}  "
                f"{'ok' if c['ok'] else 'FAILED: ' + str(c['error'])}"
            )
    problems = failures(configs)
    for line in problems:
        print(f"scale_lab.py: FAILED: {line}", file=sys.stderr)
    return 1 if problems else 0


def failures(configs: list[dict[str, Any]]) -> list[str]:
    """Why the exit status is 1: nothing ran (every configuration skipped), a configuration
    failed (its error, or its crash runs' errors), or a netlink pass saw two holders."""
    out: list[str] = []
    if not configs:
        out.append("no configuration ran (measured nothing; see `skipped` and --time-limit)")
    for c in configs:
        name = f"N={c['n']} {c['layout']}"
        runs = (c["crash"] or {}).get("per_run", [])
        if not c["ok"]:
            errors = [c["error"], *(r["error"] for r in runs)]
            out.append(f"{name}: failed: {'; '.join(str(e) for e in errors if e)}")
        multi = (c["start"] or {}).get("multi_holder_passes", 0) + sum(
            r["multi_holder_passes"] for r in runs
        )
        if multi:
            out.append(f"{name}: {multi} netlink passes saw two nodes holding the VIP")
    return out


if __name__ == "__main__":
    sys.exit(main())
