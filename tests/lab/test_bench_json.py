"""The --json of bench/failover.py and bench/resources.py is a contract others script
against: a short real run of each (keepalived-fast: the quickest system to start and
fail over) must produce every documented field with sane values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench(script: str, *args: str, timeout_s: float) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, object] = json.loads(proc.stdout)
    return data


@pytest.mark.netns
def test_failover_json_of_a_peer_run() -> None:
    report = _bench(
        "failover.py",
        "--systems",
        "keepalived-fast",
        "--scenarios",
        "graceful-stop:1",
        "--settle",
        "1",
        timeout_s=240,
    )
    for key in ("profile", "runs", "settle_s", "stopped_early", "duration_s", "machine"):
        assert key in report, key
    systems = report["systems"]
    assert isinstance(systems, dict) and list(systems) == ["keepalived-fast"]
    summary = systems["keepalived-fast"]["scenarios"]["graceful-stop"]
    assert report["scenarios"] == systems["keepalived-fast"]["scenarios"]
    # keepalived's own safety is what the benchmark measures, not what this contract test
    # asserts: a graceful stop of keepalived-fast showed one dual-holder sample in a CI run.
    assert summary["runs"] == 1 and isinstance(summary["dual_holder_instants"], int)
    assert 0 < summary["vip_on_new_s"]["median"] < 10
    assert summary["moves"] == 2, "stopped master: slave serves, then master again"
    for key in ("outage_s", "failback_s", "longest_outage_s", "runs_nobody_serving"):
        assert key in summary, key
    assert report["ratios"] == {}


@pytest.mark.netns
def test_resources_json_of_an_idle_peer() -> None:
    report = _bench(
        "resources.py",
        "--systems",
        "keepalived-fast",
        "--idle-seconds",
        "3",
        "--settle",
        "1",
        timeout_s=180,
    )
    assert report["idle_s"] == 3 and report["gossipha_native_meets_target"] is None
    data = report["systems"]["keepalived-fast"]
    for node in ("master", "slave"):
        n = data["nodes"][node]
        assert n["processes"] >= 2, n  # keepalived's parent and its VRRP child
        assert any("keepalived" in name for name in n["names"]), n
        assert 0 <= n["cpu_fraction"] < 0.5
        assert 1 << 20 < n["rss_bytes"] < 200 << 20 and 0 < n["pss_bytes"] <= n["rss_bytes"]
        assert n["tx_pps"] > 0, "the ping track script, at least"
    assert data["nodes"]["master"]["tx_pps"] > 3, "VRRP adverts every 200 ms from the master"
    assert data["max"]["rss_bytes"] == max(data["nodes"][n]["rss_bytes"] for n in data["nodes"])


@pytest.mark.netns
def test_floor_json_sends_the_native_pairs_packets() -> None:
    """bench/floor.py's processes exchange what an idle native pair does: per second,
    master 10 heartbeats and 5 echoes out, 10 heartbeats, 5 answers and 5 replies in.
    (A fresh lab's interfaces also send some IPv6 chatter in their first seconds: hence
    the settling time and the margin.)"""
    report = _bench(
        "floor.py", "--modes", "bare,sealed", "--idle-seconds", "5", "--settle", "3", timeout_s=120
    )
    assert report["idle_s"] == 5 and report["keepalive_s"] == 0.2
    assert report["target"] == {"cpu_fraction_max": 0.005}
    assert list(report["modes"]) == ["bare", "sealed"]
    for mode in ("bare", "sealed"):
        nodes = report["modes"][mode]["nodes"]
        master, slave = nodes["master"], nodes["slave"]
        assert 14 <= master["tx_pps"] <= 18 and 19 <= master["rx_pps"] <= 24, (mode, master)
        assert 19 <= slave["tx_pps"] <= 24 and 14 <= slave["rx_pps"] <= 18, (mode, slave)
        # CPU time comes in 10 ms clock ticks: a bare sender can use none in 5 s.
        assert all(0 <= n["cpu_fraction"] < 0.5 for n in nodes.values()), nodes
        top = max(n["cpu_fraction"] for n in nodes.values())
        assert report["modes"][mode]["max_cpu_fraction"] == top
    assert (
        set(report["ratios"]) == {"sealed_over_bare"} and report["ratios"]["sealed_over_bare"] > 0
    )
