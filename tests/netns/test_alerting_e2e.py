"""Alerting end to end: agents -> Prometheus (the shipped rules) and the agents' own push ->
Alertmanager, all inside the lab.

Two agents from the lab's native gossipha.toml with scaled-down timings, each serving
/metrics on its heartbeat address (`--listen`) and pushing to Alertmanager
(`[observe] alertmanager_url`). Debian's `prometheus` and `prometheus-alertmanager` run in the
ping namespace (on the heartbeat network, so both agents' addresses are reachable), listen on
its lab address only, and keep their data in the lab's workdir. Prometheus scrapes both agents
every second with the `cluster`/`node` target labels the rules group by, and loads
deploy/prometheus/gossipha-rules.yml with every `for:` divided by ten (the expressions are
the shipped ones). Prometheus alerts carry the external label `source="prometheus"`; the
agent's pushes have no `source` label, so Alertmanager keeps the two apart.

The fault: the slave's heartbeats are dropped on their way out (iptables, UDP 694), so the
master sees it go warn and then dead while the slave still hears the master. Both sources'
GossiphaPeerWarn and GossiphaPeerDead must reach Alertmanager, warn first; when the rule is
removed all four must resolve. Every wait is bounded; a failure message carries Prometheus'
/api/v1/alerts, Alertmanager's alerts and the agents' logs.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gossipha.lab import Lab
from gossipha.lab.observe import fetch
from gossipha.lab.scenarios import HOSTNAMES, NATIVE, NODES, VIP, write_native
from tests.netns.helpers import Agents

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_RULES = ROOT / "deploy" / "prometheus" / "gossipha-rules.yml"
PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

OBSERVER = "ping"  # where Prometheus and Alertmanager run: on the heartbeat network
AGENT_PORT = 9694
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
HEARTBEAT_PORT = 694
CLUSTER = "web"  # [cluster] name of the lab's native gossipha.toml
# The shipped rules' `for:` durations are divided by this (10s -> 1s), at least 1 s.
FOR_SCALE = 10
# Fast timings; phi_acceptable_pause keeps phi from accusing before deadtime, so the warn
# state lasts about 3.5 s: several 1 s scrapes and evaluations see it.
TIMINGS = """
[timings]
keepalive = "200ms"
warntime = "500ms"
deadtime = "4s"
initdead = "4s"
phi_acceptable_pause = "10s"
"""
READY_BOUND_S = 20.0  # Prometheus / Alertmanager answer /-/ready
SCRAPED_BOUND_S = 15.0  # both targets up, peers alive, no alerts about them
FIRED_BOUND_S = 20.0  # fault -> all four alerts seen in Alertmanager
RESOLVED_BOUND_S = 20.0  # fault removed -> all four resolved
POLL_S = 0.2

MASTER, SLAVE = HOSTNAMES["master"], HOSTNAMES["slave"]
ALERTS = ("GossiphaPeerWarn", "GossiphaPeerDead")
SOURCES = ("agent", "prometheus")
EXPECTED = {(name, source) for name in ALERTS for source in SOURCES}


def _addr(lab: Lab, node: str) -> str:
    return str(lab.address(node, "eth1" if node in NODES else "eth0").ip)


# ---------------------------------------------------------------------------- config


def scaled_rules(text: str, scale: int = FOR_SCALE) -> str:
    """The shipped rules with every `for:` divided by `scale` (at least 1 s); nothing else
    changes, so the expressions under test are the shipped ones."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

    def shorter(match: re.Match[str]) -> str:
        seconds = float(match.group(2)) * units[match.group(3)]
        return f"{match.group(1)}{max(1, round(seconds / scale))}s"

    out, count = re.subn(r"(?m)^(\s*for:\s*)(\d+(?:\.\d+)?)(ms|s|m|h)\s*$", shorter, text)
    assert count > 0, "no `for:` found in the shipped rules"
    return out


def write_config(dest: Path, alertmanager_url: str) -> Path:
    """The lab's native gossipha.toml (and its authkeys and nginx script) under `dest`, with
    fast timings and the agents' push to Alertmanager."""
    config, _nginx_roots = write_native(dest)
    observe = f'\n[observe]\nalertmanager_url = "{alertmanager_url}"\n'
    config.write_text(config.read_text() + TIMINGS + observe)
    return config


def _prometheus_config(lab: Lab, rules: Path) -> dict[str, Any]:
    """prometheus.yml (JSON is YAML): deploy/prometheus/prometheus.yml at 1 s, lab targets."""
    return {
        "global": {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": "1s",
            "external_labels": {"source": "prometheus"},
        },
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"{_addr(lab, OBSERVER)}:{ALERTMANAGER_PORT}"]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": "gossipha",
                "static_configs": [
                    {
                        "targets": [f"{_addr(lab, node)}:{AGENT_PORT}"],
                        "labels": {"cluster": CLUSTER, "node": HOSTNAMES[node]},
                    }
                    for node in NODES
                ],
            }
        ],
    }


# ---------------------------------------------------------------------------- HTTP in the lab


class _NsConnection(http.client.HTTPConnection):
    """HTTP from inside a lab namespace (the socket is made there; we stay here)."""

    def __init__(self, lab: Lab, node: str, host: str, port: int, timeout_s: float) -> None:
        super().__init__(host, port, timeout=timeout_s)
        self._lab = lab
        self._node = node

    def connect(self) -> None:
        sock = self._lab.socket(self._node, socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _get(lab: Lab, port: int, path: str, timeout_s: float = 2.0) -> tuple[int, bytes] | None:
    """GET http://<observer>:port/path from the observer's namespace; None when unreachable."""
    conn = _NsConnection(lab, OBSERVER, _addr(lab, OBSERVER), port, timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _json(lab: Lab, port: int, path: str) -> Any:
    got = _get(lab, port, path)
    if got is None or got[0] != 200:
        return None
    return json.loads(got[1])


def _am_alerts(lab: Lab) -> list[dict[str, Any]] | None:
    doc = _json(lab, ALERTMANAGER_PORT, "/api/v2/alerts")
    return doc if isinstance(doc, list) else None


def _about_slave(alerts: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(alertname, source) -> alert, for the master's alerts about the slave."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for alert in alerts:
        labels = alert.get("labels", {})
        if (
            labels.get("alertname") in ALERTS
            and labels.get("cluster") == CLUSTER
            and labels.get("node") == MASTER
            and labels.get("peer") == SLAVE
        ):
            out[(labels["alertname"], labels.get("source", "agent"))] = alert
    return out


# ---------------------------------------------------------------------------- the stack


class _Stack:
    """Prometheus and Alertmanager in the observer, the agents in their nodes, all run by
    the test's `agents`; `report()` is what a failure prints."""

    def __init__(self, lab: Lab, agents: Agents) -> None:
        self.lab = lab
        self.agents = agents
        self.root = agents.root
        self.root.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, argv: list[str]) -> None:
        self.agents.spawn(name, OBSERVER, argv, self.root / f"{name}.log", uts=False)

    def start_alertmanager(self) -> None:
        assert ALERTMANAGER is not None
        config = self.root / "alertmanager.yml"
        config.write_text("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
        (self.root / "am-data").mkdir()
        self.spawn(
            "alertmanager",
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={self.root / 'am-data'}",
                f"--web.listen-address={_addr(self.lab, OBSERVER)}:{ALERTMANAGER_PORT}",
                "--cluster.listen-address=",  # no gossip port
                "--log.level=warn",
            ],
        )

    def start_prometheus(self) -> None:
        assert PROMETHEUS is not None
        rules = self.root / "gossipha-rules.yml"
        rules.write_text(scaled_rules(SHIPPED_RULES.read_text()))
        config = self.root / "prometheus.yml"
        config.write_text(json.dumps(_prometheus_config(self.lab, rules), indent=2))
        (self.root / "prom-data").mkdir()
        self.spawn(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.root / 'prom-data'}",
                f"--web.listen-address={_addr(self.lab, OBSERVER)}:{PROMETHEUS_PORT}",
                "--log.level=warn",
            ],
        )

    def start_agents(self, alertmanager_url: str) -> None:
        """The tutorial's start-up: master first, then the slave; each with `--listen`."""
        config = write_config(self.root, alertmanager_url)
        for node in NODES:
            self.agents.config[node] = config
            self.agents.start(node, "--listen", f"{_addr(self.lab, node)}:{AGENT_PORT}")
            if node == "master":
                time.sleep(0.5)

    def ready(self, name: str, port: int) -> bool:
        proc = self.agents.procs[name]
        assert proc.poll() is None, f"{name} exited {proc.returncode}\n{self.agents.tail(name)}"
        got = _get(self.lab, port, "/-/ready")
        return got is not None and got[0] == 200

    def report(self) -> str:
        parts = [
            "Prometheus /api/v1/alerts: "
            + json.dumps(_json(self.lab, PROMETHEUS_PORT, "/api/v1/alerts")),
            "Alertmanager /api/v2/alerts: " + json.dumps(_am_alerts(self.lab)),
        ]
        return "\n".join([*parts, self.agents.tails()])


@pytest.fixture
def stack(lab: Lab, agents: Agents) -> _Stack:
    """Prometheus, Alertmanager and the agents are stopped by the `agents` fixture."""
    for tool, path in (("prometheus", PROMETHEUS), ("prometheus-alertmanager", ALERTMANAGER)):
        if path is None:
            pytest.fail(f"{tool} is required (apt-get install {tool})", pytrace=False)
    return _Stack(lab, agents)


def _wait(
    stack: _Stack, what: str | Callable[[], str], check: Callable[[], bool], bound_s: float
) -> float:
    """Poll `check` every POLL_S until true; fail after `bound_s` with the stack's report
    (`what` may be a callable, to describe what was seen by then)."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > bound_s:
            said = what() if callable(what) else what
            pytest.fail(f"not within {bound_s:g}s: {said}\n{stack.report()}", pytrace=False)
        time.sleep(POLL_S)


# ---------------------------------------------------------------------------- the test


def _targets_up(lab: Lab) -> bool:
    doc = _json(lab, PROMETHEUS_PORT, "/api/v1/query?query=up%7Bjob%3D%22gossipha%22%7D")
    if not doc or doc.get("status") != "success":
        return False
    up = {r["metric"].get("node"): r["value"][1] for r in doc["data"]["result"]}
    return up == {MASTER: "1", SLAVE: "1"}


def _master_sees_slave_alive(lab: Lab) -> bool:
    query = "gossipha_peer_state%7Bnode%3D%22" + MASTER + "%22%2Cstate%3D%22alive%22%7D"
    doc = _json(lab, PROMETHEUS_PORT, f"/api/v1/query?query={query}")
    if not doc or doc.get("status") != "success":
        return False
    return any(
        r["metric"].get("peer") == SLAVE and r["value"][1] == "1" for r in doc["data"]["result"]
    )


def _slave_beats(lab: Lab, drop: bool) -> None:
    """Drop (or stop dropping) the slave's outgoing heartbeats on every link."""
    rule = ["OUTPUT", "-p", "udp", "--dport", str(HEARTBEAT_PORT), "-j", "DROP"]
    if drop:
        lab.iptables("slave", ["-I", *rule])
        return
    for _ in range(10):  # bounded: the test inserts the rule once
        deleted = lab.run("slave", ["iptables", "-w", "-D", *rule], uts=False, check=False)
        if deleted.returncode != 0:
            return


def test_warn_and_dead_reach_alertmanager_from_both_sources_then_resolve(
    lab: Lab, stack: _Stack
) -> None:
    am_url = f"http://{_addr(lab, OBSERVER)}:{ALERTMANAGER_PORT}"
    stack.start_alertmanager()
    stack.start_prometheus()
    _wait(
        stack,
        "alertmanager ready",
        lambda: stack.ready("alertmanager", ALERTMANAGER_PORT),
        READY_BOUND_S,
    )
    _wait(
        stack, "prometheus ready", lambda: stack.ready("prometheus", PROMETHEUS_PORT), READY_BOUND_S
    )
    rules = _json(lab, PROMETHEUS_PORT, "/api/v1/rules")
    loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert set(ALERTS) <= loaded, f"shipped rules not loaded: {sorted(loaded)}"

    stack.start_agents(am_url)
    _wait(
        stack,
        "the master serves",
        lambda: (
            stack.agents.holders() == ("master",)
            and fetch(lab, "client", VIP, timeout_s=0.3) == "master"
        ),
        NATIVE.startup_bound_s,
    )

    def baseline() -> bool:
        alerts = _am_alerts(lab)
        return (
            _targets_up(lab)
            and _master_sees_slave_alive(lab)
            and alerts is not None
            and not _about_slave(alerts)
        )

    _wait(stack, "both agents scraped, slave alive, no alerts about it", baseline, SCRAPED_BOUND_S)

    # The fault: the master stops hearing the slave.
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        _slave_beats(lab, drop=True)

        def fired() -> bool:
            alerts = _am_alerts(lab) or []
            for key, alert in _about_slave(alerts).items():
                seen.setdefault(key, alert)
            return set(seen) >= EXPECTED

        took_s = _wait(
            stack,
            lambda: (
                f"warn and dead from agent and rules; seen {sorted(seen)} of {sorted(EXPECTED)}"
            ),
            fired,
            FIRED_BOUND_S,
        )
    finally:
        _slave_beats(lab, drop=False)

    for source in SOURCES:
        warn, dead = seen[("GossiphaPeerWarn", source)], seen[("GossiphaPeerDead", source)]
        assert warn["labels"]["severity"] == "warning", warn
        assert dead["labels"]["severity"] == "critical", dead
        assert warn["startsAt"] < dead["startsAt"], f"{source}: warn after dead: {warn} {dead}"
    # Prometheus' alerts come from the rules (generatorURL), the agent's from its push.
    assert seen[("GossiphaPeerDead", "prometheus")]["generatorURL"], seen
    assert not seen[("GossiphaPeerDead", "agent")].get("generatorURL"), seen

    # Heartbeats flow again: every alert about the slave resolves, from both sources.
    def resolved() -> bool:
        alerts = _am_alerts(lab)
        return alerts is not None and not _about_slave(alerts)

    resolve_s = _wait(stack, "warn and dead resolved", resolved, RESOLVED_BOUND_S)
    assert stack.agents.holders() == ("master",), stack.report()
    print(f"alerts fired within {took_s:.1f}s, resolved {resolve_s:.1f}s after the fault ended")
