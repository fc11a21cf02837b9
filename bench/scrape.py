"""Scraping cost: does polling an agent's /metrics 100 times a second make it miss heartbeats?

    sudo python bench/scrape.py
    sudo python bench/scrape.py --rate 100 --duration 10 --json

Two real agents from the lab's native gossipha.toml (native default timings: keepalive
200 ms, warntime 500 ms, deadtime 1 s), each serving /metrics on its heartbeat address
(`--listen 192.168.17.5x:9694`). After `--settle` seconds, two windows of `--duration` s
each: first idle (the baseline), then a scraper in the ping namespace (on the heartbeat
network) GETs the master's /metrics `--rate` times a second on one keep-alive connection, as
Prometheus does (`--new-connections`: one TCP connection per scrape). Every scrape is bounded
by a 2 s timeout and the scraper by the window plus 5 s.

Per window, from both agents' /metrics (read before and after, from the same namespace):
heartbeats each side received from the other per link and how many inter-arrival gaps
exceeded 1.5 and 2 keepalives (a gap above 2 keepalives is a missed heartbeat: the master
sent late, or read late), peer warn/suspect/dead transitions, the master's event-loop lag,
its CPU (utime+stime of the agent's process from /proc) and the scrapes' p50/p99/max
latency. Exit status 1, with the reasons on stderr, if the load window has a missed
heartbeat or a transition, or measured nothing (no scrape answered, or no heartbeat counted
between the agents in a window).
Results go to docs/benchmarks.md "## Scraping".
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families

from gossipha.config.native import NATIVE_DEFAULTS
from gossipha.lab.scenarios import HOSTNAMES, NODES, NativeCluster
from gossipha.lab.topology import Lab, sweep_stale

PORT = 9694
SCRAPER_NS = "ping"
KEEPALIVE_S = NATIVE_DEFAULTS.keepalive_s
# Inter-arrival buckets (observe/metrics.py INTERARRIVAL_FACTORS) used as thresholds.
LATE_FACTOR = 1.5
MISSED_FACTOR = 2.0
STARTUP_BOUND_S = 30.0

# Runs in the scraper's namespace: N GETs at a fixed rate, one JSON line of results.
SCRAPER = r"""
import http.client, json, sys, time
host, port, fresh = sys.argv[1], int(sys.argv[2]), sys.argv[5] == "1"
rate, duration = float(sys.argv[3]), float(sys.argv[4])
n = int(rate * duration)
period = 1.0 / rate
lat, errors, sizes, conn = [], 0, [], None
t0 = time.monotonic()
for i in range(n):
    due = t0 + i * period
    if time.monotonic() > t0 + duration + 5.0:
        break
    pause = due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    start = time.perf_counter()
    try:
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=2.0)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            errors += 1
        sizes.append(len(body))
        if fresh:
            conn.close()
            conn = None
    except Exception:
        errors += 1
        if conn is not None:
            conn.close()
        conn = None
    lat.append(time.perf_counter() - start)
elapsed = time.monotonic() - t0
print(json.dumps({"latencies_s": lat, "errors": errors, "elapsed_s": elapsed,
                  "mean_bytes": sum(sizes) / len(sizes) if sizes else 0}))
"""


class ListeningCluster(NativeCluster):
    """The lab's native cluster, each agent's /metrics on its heartbeat address."""

    def agent_args(self, node: str) -> list[str]:
        ip = self.lab.address(node, "eth1").ip
        return [*super().agent_args(node), "--listen", f"{ip}:{PORT}"]


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape_once(lab: Lab, node: str) -> Samples:
    """`node`'s /metrics, read from the scraper's namespace, as {(name, labels): value}."""
    host = str(lab.address(node, "eth1").ip)
    sock = lab.socket(SCRAPER_NS, socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    conn = http.client.HTTPConnection(host, PORT, timeout=5.0)
    try:
        sock.connect((host, PORT))
        conn.sock = sock
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode()
        if resp.status != 200:
            raise RuntimeError(f"{node} /metrics answered {resp.status}")
    finally:
        conn.close()
        sock.close()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _sum(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def _buckets_above(samples: Samples, factor: float, **labels: str) -> float:
    """Observations of the inter-arrival histogram above `factor` keepalives."""
    name = "gossipha_heartbeat_interarrival_seconds_bucket"
    total = 0.0
    for (n, ls), v in samples.items():
        d = dict(ls)
        if n != name or any(d.get(k) != val for k, val in labels.items()):
            continue
        le = float(d["le"])
        if math.isinf(le):
            total += v
        elif math.isclose(le, factor * KEEPALIVE_S):
            total -= v
    return total


def view(before: Samples, after: Samples, peer: str) -> dict[str, Any]:
    """What one agent saw of `peer` between two snapshots."""
    links = sorted(
        {
            dict(ls)["link"]
            for (n, ls) in after
            if n == "gossipha_heartbeats_received_total" and dict(ls).get("peer") == peer
        }
    )
    per_link: dict[str, Any] = {}
    for link in links:
        lb = {"peer": peer, "link": link}
        per_link[link] = {
            "heartbeats": round(
                _sum(after, "gossipha_heartbeats_received_total", **lb)
                - _sum(before, "gossipha_heartbeats_received_total", **lb)
            ),
            "late_gaps": round(
                _buckets_above(after, LATE_FACTOR, **lb) - _buckets_above(before, LATE_FACTOR, **lb)
            ),
            "missed_gaps": round(
                _buckets_above(after, MISSED_FACTOR, **lb)
                - _buckets_above(before, MISSED_FACTOR, **lb)
            ),
        }
    transitions = {
        state: round(
            _sum(after, "gossipha_peer_transitions_total", peer=peer, state=state)
            - _sum(before, "gossipha_peer_transitions_total", peer=peer, state=state)
        )
        for state in ("warn", "suspect", "dead")
    }
    return {
        "links": per_link,
        "missed_gaps": sum(v["missed_gaps"] for v in per_link.values()),
        "transitions": transitions,
    }


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def window(lab: Lab, pid: int, run: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    """One window: snapshots of both agents and the master's CPU around `run()` (which
    returns the scraper's results, or None for the idle window)."""
    before = {n: scrape_once(lab, n) for n in NODES}
    cpu0, t0 = cpu_s(pid), time.monotonic()
    scraper = run()
    elapsed = time.monotonic() - t0
    cpu1 = cpu_s(pid)
    after = {n: scrape_once(lab, n) for n in NODES}
    master, slave = HOSTNAMES["master"], HOSTNAMES["slave"]
    out: dict[str, Any] = {
        "elapsed_s": round(elapsed, 2),
        "master_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
        # heartbeats the scraped agent sent (as its peer received them)
        "slave_sees_master": view(before["slave"], after["slave"], master),
        # heartbeats the scraped agent received (timed by its own loop)
        "master_sees_slave": view(before["master"], after["master"], slave),
        "master_loop_lag_s": after["master"].get(("gossipha_event_loop_lag_seconds", frozenset())),
        "master_loop_lag_max_s": after["master"].get(
            ("gossipha_event_loop_lag_max_seconds", frozenset())
        ),
        "master_loop_lag_max_before_s": before["master"].get(
            ("gossipha_event_loop_lag_max_seconds", frozenset())
        ),
    }
    if scraper is not None:
        lat = scraper["latencies_s"]
        out["scrapes"] = {
            "count": len(lat),
            "errors": scraper["errors"],
            "rate_per_s": round(len(lat) / scraper["elapsed_s"], 1),
            "p50_ms": round(1000 * pct(lat, 0.50), 2),
            "p99_ms": round(1000 * pct(lat, 0.99), 2),
            "max_ms": round(1000 * max(lat), 2) if lat else None,
            "mean_ms": round(1000 * statistics.fmean(lat), 2) if lat else None,
            "mean_bytes": round(scraper["mean_bytes"]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="scrapes per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per window")
    parser.add_argument("--settle", type=float, default=5.0, help="quiet seconds after start")
    parser.add_argument("--new-connections", action="store_true", help="one TCP conn per scrape")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 1000 and 0 < args.duration <= 600 and 0 <= args.settle <= 600):
        parser.error("rate in (0, 1000], duration in (0, 600], settle in [0, 600]")
    if os.geteuid() != 0:
        print("scrape.py: needs root (network namespaces)", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    sweep_stale()
    with Lab() as lab:
        cluster = ListeningCluster(lab)
        try:
            took = cluster.start()
            say(f"master serving after {took:.1f}s; settling {args.settle:g}s")
            time.sleep(args.settle)
            pid = cluster.agents["master"].pid
            assert b"gossipha" in Path(f"/proc/{pid}/cmdline").read_bytes(), "not the agent"
            say(f"idle window {args.duration:g}s")
            idle = window(lab, pid, lambda: time.sleep(args.duration))
            host = str(lab.address("master", "eth1").ip)
            argv_ = [
                sys.executable,
                "-c",
                SCRAPER,
                host,
                str(PORT),
                str(args.rate),
                str(args.duration),
                "1" if args.new_connections else "0",
            ]

            def scrape() -> dict[str, Any]:
                done = lab.run(SCRAPER_NS, argv_, uts=False, timeout_s=args.duration + 30.0)
                result: dict[str, Any] = json.loads(done.stdout)
                return result

            say(f"load window {args.duration:g}s: {args.rate:g} scrapes/s of the master")
            load = window(lab, pid, scrape)
            holders = cluster.holders()
        finally:
            cluster.close()
    report = {
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "connections": "new per scrape" if args.new_connections else "keep-alive",
        "keepalive_s": KEEPALIVE_S,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "idle": idle,
        "load": load,
        "holders_after": list(holders),
    }
    missed = sum(load[v]["missed_gaps"] for v in ("slave_sees_master", "master_sees_slave"))
    moved = sum(
        sum(load[v]["transitions"].values()) for v in ("slave_sees_master", "master_sees_slave")
    )
    report["missed_heartbeats"] = missed
    report["peer_transitions"] = moved
    problems = failures(report)
    if args.json:
        print(json.dumps(report))
    else:
        s = load["scrapes"]
        print(
            f"{s['count']} scrapes in {load['elapsed_s']}s ({s['rate_per_s']}/s, "
            f"{s['errors']} errors, {s['mean_bytes']} B): p50 {s['p50_ms']} ms, "
            f"p99 {s['p99_ms']} ms, max {s['max_ms']} ms"
        )
        for name, w in (("idle", idle), ("load", load)):
            sm, ms = w["slave_sees_master"], w["master_sees_slave"]
            lag_ms = 1000 * (w["master_loop_lag_max_s"] or math.nan)
            print(
                f"{name:5} master CPU {w['master_cpu_pct']}%  loop lag max {lag_ms:.1f} ms  "
                f"missed gaps slave<-master {sm['missed_gaps']} master<-slave "
                f"{ms['missed_gaps']}  transitions {sum(sm['transitions'].values())}"
                f"+{sum(ms['transitions'].values())}"
            )
        print(f"missed heartbeats under load: {missed}, peer transitions: {moved}")
    for line in problems:
        print(f"scrape.py: FAILED: {line}", file=sys.stderr)
    return 1 if problems else 0


def failures(report: dict[str, Any]) -> list[str]:
    """Why the exit status is 1: missed heartbeats or peer transitions under load, or a
    window that measured nothing (no heartbeat counted either way, no scrape answered)."""
    out: list[str] = []
    if report["missed_heartbeats"]:
        out.append(f"{report['missed_heartbeats']} missed heartbeats under load")
    if report["peer_transitions"]:
        out.append(f"{report['peer_transitions']} peer transitions under load")
    for name in ("idle", "load"):
        w = report[name]
        for side in ("slave_sees_master", "master_sees_slave"):
            if sum(link["heartbeats"] for link in w[side]["links"].values()) <= 0:
                out.append(f"{name} window: no heartbeat counted in {side} (measured nothing)")
    scrapes = report["load"].get("scrapes", {})
    if scrapes.get("count", 0) <= scrapes.get("errors", 0):
        out.append(
            f"load window: {scrapes.get('count', 0)} scrapes, {scrapes.get('errors', 0)} "
            "failed (measured nothing)"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
