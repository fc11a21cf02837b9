"""What an idle cluster agent costs, gossipha beside Heartbeat 3 and keepalived, same lab.

    sudo python bench/resources.py --idle-seconds 60 --json
    sudo python bench/resources.py --systems gossipha-native,heartbeat-tutorial --json

Each system runs the tutorial's two-node cluster in one lab (gossipha/lab/peers.py for the
peers), one after the other. Once master serves, the cluster is left alone for --settle
seconds, then every process of the agent on each node (all processes in the node's
namespace but nginx; for Heartbeat its master control, media and ping processes and
ipfail, for keepalived its parent and VRRP child) is read from /proc at the start and end
of --idle-seconds: CPU as a share of one core (own, and with the reaped children it ran:
status checks, track scripts), resident memory (RSS, and PSS, which splits shared pages
among the processes that map them, so a multi-process daemon is not counted twice), the
process count, and packets per second on the node's interfaces.

The issue's target: an idle gossipha agent at native default timings under 0.5 % of a core
and under 45 MB resident (Heartbeat: about 43 MB in seven processes).

JSON (stable; fields are only added): idle_s, settle_s, duration_s, machine {cpus, python,
load_avg}, target {cpu_fraction_max, rss_bytes_max}, systems {name: {profile, nodes {node:
{processes, names, cpu_fraction, cpu_with_children_fraction, rss_bytes, pss_bytes,
tx_pps, rx_pps}}, max {cpu_fraction, cpu_with_children_fraction, rss_bytes, pss_bytes},
error (set when the system could not run)}}, gossipha_native_meets_target (None when
gossipha-native was not measured). Exit status 1, with the reasons on stderr, when a system
could not run or a node showed no agent process (0 CPU then means nothing was measured,
not a met target), or when gossipha-native misses the target; 2 when not root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipha.lab.peers import SYSTEMS, system_cluster
from gossipha.lab.scenarios import NODES, Cluster
from gossipha.lab.topology import Lab, sweep_stale
from gossipha.lab.usage import (
    ProcessUsage,
    UsageError,
    link_rate,
    sample_links,
    sample_process,
)

CPU_TARGET = 0.005
RSS_TARGET = 45 * 1024 * 1024
DEFAULT_SYSTEMS = (
    "gossipha-native",
    "gossipha-tutorial",
    "heartbeat-tutorial",
    "keepalived-default",
)


def _descendants(pids: set[int]) -> set[int]:
    """`pids` and every process whose parent chain leads to one of them."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat.rsplit(")", 1)[-1].split()[1])
    found = set(pids)
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()[-40:]
    except OSError:
        return "?"


def agent_pids(cluster: Cluster, node: str) -> list[int]:
    """Every process in the node's namespace but the lab's nginx and its workers, and
    the wrappers the lab starts a process through (they exec, so none is left)."""
    nginx = cluster.nginx_pid(node)
    exclude = _descendants({nginx}) if nginx is not None else set()
    return sorted(p for p in cluster.lab.pids(node) if p not in exclude)


def measure_node(cluster: Cluster, node: str, idle_s: float) -> dict[str, Any]:
    pids = agent_pids(cluster, node)
    before: dict[int, ProcessUsage] = {}
    for pid in pids:
        with contextlib.suppress(UsageError):
            before[pid] = sample_process(pid)
    links_before = sample_links(cluster.lab, node)
    time.sleep(idle_s)
    links_after = sample_links(cluster.lab, node)
    cpu_s = children_s = 0.0
    rss = pss = 0
    kept: list[int] = []
    elapsed = idle_s
    for pid, first in before.items():
        try:
            last = sample_process(pid)
        except UsageError:
            continue  # a transient process (a status check) that ended: its parent counts it
        kept.append(pid)
        elapsed = last.at_s - first.at_s
        cpu_s += last.cpu_s - first.cpu_s
        children_s += last.children_cpu_s - first.children_cpu_s
        rss += last.rss_bytes
        pss += last.pss_bytes or 0
    links = link_rate(links_before, links_after)
    return {
        "processes": len(kept),
        "names": sorted({_name(p) for p in kept}),
        "cpu_fraction": round(cpu_s / elapsed, 5),
        "cpu_with_children_fraction": round((cpu_s + children_s) / elapsed, 5),
        "rss_bytes": rss,
        "pss_bytes": pss,
        "tx_pps": round(links.tx_pps, 1),
        "rx_pps": round(links.rx_pps, 1),
    }


def measure_system(lab: Lab, name: str, idle_s: float, settle_s: float) -> dict[str, Any]:
    cluster = system_cluster(lab, name)
    print(f"== {name}: starting", file=sys.stderr, flush=True)
    try:
        took = cluster.start()
        print(f"   master serves after {took:.1f}s; settling {settle_s:.0f}s", file=sys.stderr)
        time.sleep(settle_s)
        nodes = {n: measure_node(cluster, n, idle_s) for n in NODES} if idle_s > 0 else {}
    finally:
        cluster.close()
        with contextlib.suppress(Exception):
            cluster.stop_all()
    keys = ("cpu_fraction", "cpu_with_children_fraction", "rss_bytes", "pss_bytes")
    result = {
        "profile": cluster.profile.name,
        "nodes": nodes,
        "max": {k: max(n[k] for n in nodes.values()) for k in keys} if nodes else {},
    }
    for node, data in nodes.items():
        print(
            f"   {node}: {data['processes']} processes, cpu {100 * data['cpu_fraction']:.2f}% "
            f"(with children {100 * data['cpu_with_children_fraction']:.2f}%), "
            f"RSS {data['rss_bytes'] / 2**20:.1f} MiB, PSS {data['pss_bytes'] / 2**20:.1f} MiB, "
            f"tx {data['tx_pps']}/s",
            file=sys.stderr,
            flush=True,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS))
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        parser.error(f"--systems: unknown {unknown}; expected some of {', '.join(SYSTEMS)}")
    if args.idle_seconds <= 0:
        parser.error("--idle-seconds must be positive")
    if os.geteuid() != 0:
        print("resources.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    started = time.monotonic()
    sweep_stale()
    results: dict[str, Any] = {}
    with Lab() as lab:
        for name in systems:
            try:
                results[name] = measure_system(lab, name, args.idle_seconds, args.settle)
            except Exception as exc:  # one system failing to run must not lose the others
                error = f"{type(exc).__name__}: {exc}"
                print(f"resources.py: {name}: {error}", file=sys.stderr, flush=True)
                results[name] = {"profile": None, "nodes": {}, "max": {}, "error": error}
    problems = failures(results)
    native = results.get("gossipha-native", {})
    measured = bool(native.get("nodes")) and not any(
        p.startswith("gossipha-native") for p in problems
    )
    meets = (
        native["max"]["cpu_fraction"] < CPU_TARGET and native["max"]["rss_bytes"] < RSS_TARGET
        if measured
        else None
    )
    report = {
        "idle_s": args.idle_seconds,
        "settle_s": args.settle,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "target": {"cpu_fraction_max": CPU_TARGET, "rss_bytes_max": RSS_TARGET},
        "systems": results,
        "gossipha_native_meets_target": meets,
    }
    if args.json:
        print(json.dumps(report))
    else:
        for name, data in results.items():
            m = data["max"]
            if not m:
                print(f"{name:20} not measured")
                continue
            print(
                f"{name:20} cpu {100 * m['cpu_fraction']:.2f}%  "
                f"RSS {m['rss_bytes'] / 2**20:.1f} MiB  PSS {m['pss_bytes'] / 2**20:.1f} MiB"
            )
    if meets is False:
        problems.append("gossipha-native misses the target (cpu or RSS)")
    for line in problems:
        print(f"resources.py: FAILED: {line}", file=sys.stderr)
    return 1 if problems else 0


def failures(results: dict[str, Any]) -> list[str]:
    """Systems that measured nothing: could not run, or a node where no agent process was
    found (its 0 CPU and 0 bytes are an empty sum, not an idle agent)."""
    out: list[str] = []
    if not results:
        out.append("no system ran (measured nothing)")
    for name, data in results.items():
        if data.get("error"):
            out.append(f"{name}: could not run: {data['error']}")
            continue
        if not data["nodes"]:
            out.append(f"{name}: no node measured")
        for node, n in data["nodes"].items():
            if n["processes"] == 0 or n["rss_bytes"] == 0:
                out.append(f"{name} {node}: no agent process found (measured nothing)")
    return out


if __name__ == "__main__":
    sys.exit(main())
