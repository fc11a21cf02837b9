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


def alert_rules() -> dict[str, str]:
    """Each alert rule's name and its text, up to the next rule (the file is one group)."""
    text = (DEPLOY / "gossipha-rules.yml").read_text()
    chunks = re.split(r"(?m)^ +- alert: ", text)[1:]
    return {chunk.split("\n", 1)[0].strip(): chunk for chunk in chunks}


def test_split_brain_waits_out_scrape_skew_and_counts_nodes_across_targets() -> None:
    """Separately scraped targets show a handover as two holders for up to a scrape
    interval, so the rule needs `for:`; and it counts nodes, not series (promtool tests the
    behaviour in gossipha-rules.test.yml)."""
    rule = alert_rules()["GossiphaSplitBrain"]
    assert re.search(r"(?m)^ +for: [1-9]", rule), "GossiphaSplitBrain has no `for:`"
    assert "on (instance, job)" in rule and "count by (cluster, group)" in rule
