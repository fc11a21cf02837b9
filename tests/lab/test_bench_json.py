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
    assert summary["runs"] == 1 and summary["dual_holder_instants"] == 0
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
