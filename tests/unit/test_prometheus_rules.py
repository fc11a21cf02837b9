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


# --- runbooks ----------------------------------------------------------------------------

OPERATIONS = DEPLOY.parents[1] / "docs" / "operations.md"
# the project's repository, as in deploy/systemd/gossipha.service's Documentation=
RUNBOOK_BASE = "https://github.com/gossipha/gossipha/blob/main/docs/operations.md#"


def heading_anchors(markdown: str) -> set[str]:
    """The ids GitHub gives the headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated id suffixed -1, -2 (fenced blocks are skipped: `# comments`)."""
    seen: dict[str, int] = {}
    fence: str | None = None
    for line in markdown.splitlines():
        opening = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if opening:
            mark = opening.group(1)
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence):
                fence = None
            continue
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fence is None and heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            seen[slug] = seen.get(slug, -1) + 1
            if seen[slug]:
                seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def alert_rules() -> dict[str, str]:
    """Each alert rule's name and its text, up to the next rule (the file is one group)."""
    text = (DEPLOY / "gossipha-rules.yml").read_text()
    chunks = re.split(r"(?m)^ +- alert: ", text)[1:]
    return {chunk.split("\n", 1)[0].strip(): chunk for chunk in chunks}


def annotation(rule: str, key: str) -> str:
    """An annotation's text, inline or as a block scalar (`>-` and indented lines)."""
    found = re.search(rf"(?m)^( +){key}: *(.*)\n((?:\1 +\S.*\n?)*)", rule)
    if found is None:
        return ""
    inline, block = found.group(2).strip(), found.group(3)
    if inline.startswith((">", "|")):
        return " ".join(block.split())
    return inline.strip('"')


def test_every_alert_has_a_description_and_a_runbook_in_operations_md() -> None:
    anchors = heading_anchors(OPERATIONS.read_text(encoding="utf-8"))
    rules = alert_rules()
    text = (DEPLOY / "gossipha-rules.yml").read_text()
    assert len(rules) == text.count("- alert:") > 10, "alert names must be unique"
    for name, rule in rules.items():
        assert len(annotation(rule, "description")) > 40, f"{name}: no description"
        url = annotation(rule, "runbook_url")
        assert url == RUNBOOK_BASE + name.lower(), f"{name}: runbook_url {url!r}"
        assert name.lower() in anchors, f"{name}: no section {name} in docs/operations.md"
    pushed = {rule.name for rule in _FIRE.values()}
    missing = sorted(n for n in pushed | set(rules) if n.lower() not in anchors)
    assert not missing, f"docs/operations.md has no runbook section for {missing}"


def test_links_within_operations_md_resolve() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    anchors = heading_anchors(text)
    broken = sorted(set(re.findall(r"\]\(#([^)\s]+)\)", text)) - anchors)
    assert not broken, f"docs/operations.md links to missing sections: {broken}"


def test_split_brain_waits_out_scrape_skew_and_counts_nodes_across_targets() -> None:
    """Separately scraped targets show a handover as two holders for up to a scrape
    interval, so the rule needs `for:`; and it counts nodes, not series (promtool tests the
    behaviour in gossipha-rules.test.yml)."""
    rule = alert_rules()["GossiphaSplitBrain"]
    assert re.search(r"(?m)^ +for: [1-9]", rule), "GossiphaSplitBrain has no `for:`"
    assert "on (instance, job)" in rule and "count by (cluster, group)" in rule


def test_heading_anchors_follow_github() -> None:
    text = '# A `b` c\n```sh\n# not a heading\n```\n## "Peer dead", but x/y\n# A b c\n'
    assert heading_anchors(text) == {"a-b-c", "peer-dead-but-xy", "a-b-c-1"}
