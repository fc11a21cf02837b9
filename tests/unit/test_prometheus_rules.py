"""deploy/prometheus: promtool checks the rules, their unit tests and the scrape config;
amtool the Alertmanager example. Every metric the rules name exists in Metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry

from gossipha.observe.alerts import _FIRE
from gossipha.observe.metrics import Metrics
from tests.ci import cannot_run

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
METRIC_RE = re.compile(r"\b((?:gossipha|process)_[a-z0-9_]+)\b")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        cannot_run(f"{name} not installed")
    return path


def run(*args: str) -> None:
    res = subprocess.run(args, cwd=DEPLOY, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_check_rules() -> None:
    run(tool("promtool"), "check", "rules", "gossipha-rules.yml")


def test_promtool_test_rules() -> None:
    run(tool("promtool"), "test", "rules", "gossipha-rules.test.yml")


def test_promtool_check_config() -> None:
    run(tool("promtool"), "check", "config", "prometheus.yml")


def test_amtool_check_config() -> None:
    run(tool("amtool"), "check-config", "alertmanager.yml")


def test_rules_name_only_defined_metrics() -> None:
    names = Metrics(CollectorRegistry(), "c", "n").metric_names()
    text = (DEPLOY / "gossipha-rules.yml").read_text()  # no YAML parser needed: names only
    for metric in METRIC_RE.findall(text):
        assert metric in names, f"gossipha-rules.yml: unknown metric {metric}"
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", text, re.MULTILINE))
    assert {
        "GossiphaPeerWarn",
        "GossiphaPeerDead",
        "GossiphaNoHolder",
        "GossiphaSplitBrain",
        "GossiphaPeerFlapping",
    } <= alerts
    # the agent-pushed alerts share names with the rules where they mean the same thing
    pushed = {rule.name for rule in _FIRE.values()}
    assert {"GossiphaPeerWarn", "GossiphaPeerDead", "GossiphaNoHolder"} <= pushed & alerts
