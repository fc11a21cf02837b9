"""Two real agents in the lab, watched and driven the way an operator would.

Each agent serves /metrics and /status on its heartbeat address (`--listen`), scraped from
inside the lab's namespaces, and its admin socket under the test's directory. Checks: the
master's metrics show heartbeats from the slave; /status names the holder; `gossipha
standby` on the master moves the group to the slave; nginx killed on the master is
restarted by the master's agent while the client keeps being served; and a master whose
nginx cannot start again gives the group to the slave.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from gossipha.lab import Lab
from gossipha.lab.claims import AGENT_NGINX_GIVEN_UP, AGENT_NGINX_RESTARTED
from gossipha.lab.observe import Client, HolderSampler, fetch, summarize
from gossipha.lab.scenarios import HOSTNAMES, child_env
from gossipha.lab.topology import TUTORIAL_VIP
from tests.netns.helpers import STARTUP_BOUND_S, Agents, vip_line
from tests.netns.helpers import wait_until as _wait

pytestmark = pytest.mark.netns

VIP = str(TUTORIAL_VIP.ip)
PORT = 9694
# Implicit service check: 1 s interval, 3 failures, then a restart (stop + start). These
# bound the waits; the outages asserted are the claims of gossipha/lab/claims.py.
RESTART_BOUND_S = 12.0
GIVE_UP_BOUND_S = 20.0


def _listen(lab: Lab, node: str) -> str:
    return str(lab.address(node, "eth1").ip)


def _get(lab: Lab, node: str, path: str, *, target: str | None = None) -> str | None:
    """GET http://<target's eth1>:PORT<path> from inside `node`'s namespace; None on error."""
    url = f"http://{_listen(lab, target or node)}:{PORT}{path}"
    code = (
        "import sys, urllib.request\n"
        "try:\n"
        f"    print(urllib.request.urlopen({url!r}, timeout=2).read().decode())\n"
        "except Exception as exc:\n"
        "    print(exc, file=sys.stderr); sys.exit(1)\n"
    )
    result = lab.run(node, [sys.executable, "-c", code], uts=False, check=False, timeout_s=10.0)
    return result.stdout if result.returncode == 0 else None


def _status(lab: Lab, node: str) -> dict[str, object] | None:
    text = _get(lab, node, "/status")
    if text is None:
        return None
    doc = orjson.loads(text)
    assert isinstance(doc, dict)
    return doc


def _holder(lab: Lab, node: str) -> str | None:
    doc = _status(lab, node)
    if doc is None:
        return None
    groups = doc["groups"]
    assert isinstance(groups, list) and groups
    holder = groups[0]["holder"]
    return holder if isinstance(holder, str) else None


def _nginx_pid(root: Path) -> int | None:
    try:
        pid = int((root / "nginx.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"nginx" in cmdline else None


def _kill_nginx(root: Path, pid: int) -> None:
    """SIGKILL nginx's master and its workers, by PID (a killed master alone leaves its
    workers holding port 80: no restart could bind it)."""
    victims = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            victims.append(int(stat.parent.name))
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def _gossipha(*args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command on this host (the admin socket is a file, not the network)."""
    return subprocess.run(
        [sys.executable, "-m", "gossipha", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=20.0,
        check=False,
    )


def _start_both(lab: Lab, agents: Agents) -> None:
    for node in ("master", "slave"):
        agents.start(node, "--listen", f"{_listen(lab, node)}:{PORT}")
        if node == "master":
            time.sleep(0.3)
    _wait(
        lambda: "master holds the VIP\n" + agents.tail("master"),
        lambda: bool(vip_line(lab, "master")),
        STARTUP_BOUND_S,
    )
    _wait(
        "client sees the master page",
        lambda: fetch(lab, "client", VIP, timeout_s=0.3) == "master",
        5.0,
    )
    _wait(
        "master's agent started the group and watches it",
        lambda: "health monitor started" in agents.log("master"),
        10.0,
    )


def test_metrics_status_and_standby(lab: Lab, agents: Agents) -> None:
    _start_both(lab, agents)
    master, slave = HOSTNAMES["master"], HOSTNAMES["slave"]

    # /metrics from inside the master's namespace: heartbeats from the slave are counted.
    def slave_heartbeats() -> bool:
        text = _get(lab, "master", "/metrics") or ""
        for line in text.splitlines():
            if line.startswith("gossipha_heartbeats_received_total{") and (
                f'peer="{slave}"' in line
            ):
                return float(line.rsplit(" ", 1)[1]) > 0
        return False

    _wait("master's /metrics counts the slave's heartbeats", slave_heartbeats, 5.0, 0.2)
    # Gauges follow the 1 Hz status refresh.
    _wait(
        "master's /metrics: group held",
        lambda: bool(
            re.search(
                r'gossipha_group_held{group="[^"]+"} 1\.0', _get(lab, "master", "/metrics") or ""
            )
        ),
        5.0,
        0.2,
    )
    text = _get(lab, "master", "/metrics") or ""
    assert re.search(rf'gossipha_peer_state{{peer="{slave}",state="alive"}} 1\.0', text), text
    # The slave's own endpoint, scraped inside its namespace.
    slave_text = _get(lab, "slave", "/metrics") or ""
    assert re.search(r'gossipha_group_held{group="[^"]+"} 0\.0', slave_text), slave_text
    assert (_get(lab, "slave", "/healthz") or "").strip() == "ok"

    # /status on both: the master holds the group.
    _wait("both /status name the master", lambda: _holder(lab, "slave") == master, 5.0, 0.2)
    doc = _status(lab, "master")
    assert doc is not None and doc["node"] == master
    groups = doc["groups"]
    assert isinstance(groups, list) and groups[0]["holder"] == master
    assert groups[0]["phase"] == "running" and groups[0]["lease_remaining_s"] > 0
    nodes = doc["nodes"]
    assert isinstance(nodes, list) and nodes[1]["name"] == slave
    assert nodes[1]["state"] == "alive"

    # gossipha standby on the master: the group moves to the slave, the client follows.
    sampler = HolderSampler(lab, VIP, interval_s=0.01, duration_s=30.0)
    sampler.start()
    try:
        done = _gossipha("standby", "--socket", str(agents.admin_socket("master")))
        assert done.returncode == 0, done.stderr
        assert "standby" in done.stdout
        _wait(
            lambda: "slave holds the VIP after standby\n" + agents.tail("slave"),
            lambda: bool(vip_line(lab, "slave")),
            10.0,
        )
        _wait(
            "client sees the slave page",
            lambda: fetch(lab, "client", VIP, timeout_s=0.3) == "slave",
            5.0,
        )
        _wait("master's /status: slave holds", lambda: _holder(lab, "master") == slave, 5.0, 0.2)
        doc = _status(lab, "master")
        assert doc is not None and doc["standby"] is True
        assert not vip_line(lab, "master")
        assert agents.procs["master"].poll() is None, "standby does not stop the agent"
    finally:
        sampler.stop()
    assert sampler.error is None, sampler.error
    both = [s for s in sampler.samples if s.dual]
    assert not both, f"two VIP holders at once: {both[:3]}"

    # Without an agent on the socket the command says so.
    missing = _gossipha("takeover", "--socket", str(agents.root / "none.sock"))
    assert missing.returncode == 1 and "no gossipha agent" in missing.stderr


def test_nginx_killed_on_the_master_is_restarted_there(lab: Lab, agents: Agents) -> None:
    _start_both(lab, agents)
    root = agents.nginx_root["master"]
    _wait("master's nginx pid", lambda: _nginx_pid(root) is not None, 5.0)
    before = _nginx_pid(root)
    assert before is not None
    client = Client(lab, interval_s=0.05, duration_s=60.0)
    client.start()
    try:
        time.sleep(0.5)
        _kill_nginx(root, before)
        _wait(
            "master's agent restarts nginx",
            lambda: _nginx_pid(root) not in (None, before),
            RESTART_BOUND_S,
            0.1,
        )
        _wait(
            "client sees the master page again",
            lambda: fetch(lab, "client", VIP, timeout_s=0.3) == "master",
            5.0,
        )
        time.sleep(1.0)
    finally:
        client.stop()
    log = agents.tail("master")
    assert "restarting the group's services here" in log, log
    assert "group restarted" in log, log
    assert vip_line(lab, "master") and not vip_line(lab, "slave"), "no failover needed"
    summary = summarize(client.samples(), [])
    assert summary.answered > 0 and client.samples()[-1].who == "master"
    print(f"nginx restarted on the master: outage {summary.longest_outage_s:.2f}s")
    assert summary.longest_outage_s <= AGENT_NGINX_RESTARTED.bound_s, summary
    text = _get(lab, "master", "/metrics") or ""
    assert re.search(r'gossipha_health_checks_total{group="[^"]+",result="failed"} [1-9]', text)


def test_nginx_that_cannot_start_again_is_handed_to_the_slave(lab: Lab, agents: Agents) -> None:
    _start_both(lab, agents)
    root = agents.nginx_root["master"]
    _wait("master's nginx pid", lambda: _nginx_pid(root) is not None, 5.0)
    pid = _nginx_pid(root)
    assert pid is not None
    # nginx breaks for good on the master: its start fails from now on.
    # A new file renamed over the old one: a shell still running the old script (sh reads
    # as it goes) keeps reading the old text.
    script = agents.ha_d["master"] / "resource.d" / "nginx"
    broken = script.with_name("nginx.broken")
    lines = script.read_text().splitlines(keepends=True)
    [at] = [i for i, line in enumerate(lines) if line.startswith("for action; do :; done")]
    lines.insert(at + 1, '[ "$action" = start ] && exit 1  # broken for good\n')
    broken.write_text("".join(lines))
    broken.chmod(0o755)
    os.replace(broken, script)
    client = Client(lab, interval_s=0.05, duration_s=60.0)
    client.start()
    try:
        time.sleep(0.5)
        _kill_nginx(root, pid)
        _wait(
            "slave holds the VIP",
            lambda: bool(vip_line(lab, "slave")),
            GIVE_UP_BOUND_S,
            0.1,
        )
        _wait(
            "client sees the slave page",
            lambda: fetch(lab, "client", VIP, timeout_s=0.3) == "slave",
            5.0,
        )
        # The client writes a line per answer as it comes: stopping it the instant our own
        # fetch saw the slave could cut its first slave answer off.
        _wait(
            "the client's log has an answer from the slave",
            lambda: any(c.who == "slave" for c in client.samples()),
            2.0,
            0.05,
        )
    finally:
        client.stop()
    assert not vip_line(lab, "master")
    log = agents.tail("master")
    assert "group restart failed; giving it up" in log, log
    summary = summarize(client.samples(), [])
    # The last answer came from the slave (a request cut by the client's stop may be None).
    assert [c.who for c in client.samples() if c.who][-1] == "slave"
    print(f"nginx given up on the master: outage {summary.longest_outage_s:.2f}s")
    assert summary.longest_outage_s <= AGENT_NGINX_GIVEN_UP.bound_s, summary
