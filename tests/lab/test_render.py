"""What the lab writes and reports, checked without root: configs, the JSON contract, preflight."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gossipha.cli import main
from gossipha.config.load import load
from gossipha.config.model import ServiceResource
from gossipha.lab.scenarios import (
    FAST,
    SCENARIO_NAMES,
    SCENARIOS,
    TUTORIAL,
    Result,
    StepResult,
    judge,
    scenario,
    write_ha_d,
)
from gossipha.lab.topology import _loss_script

JSON_KEYS = {"name", "outage_s", "dual_holder_instants", "holder_before", "holder_after", "passed"}


@pytest.mark.parametrize("second_link", [False, True])
@pytest.mark.parametrize("node", ["master", "slave"])
def test_rendered_ha_d_loads_with_the_profile_timings(
    tmp_path: Path, node: str, second_link: bool
) -> None:
    ha_d, nginx_root = write_ha_d(node, tmp_path, FAST, second_link=second_link)
    assert (ha_d / "authkeys").stat().st_mode & 0o777 == 0o600
    assert (ha_d / "haresources").read_text().split("#")[0].split() == [
        "masternginx",
        "192.168.171.100/24/eth0:0",
        "nginx",
    ]
    name = "masternginx" if node == "master" else "slavenginx"
    config = load(ha_d, name).config
    t = config.timings
    assert (t.keepalive_s, t.warntime_s, t.deadtime_s, t.initdead_s) == (0.2, 0.5, 2.0, 3.0)
    assert config.logging.logfile == tmp_path / node / "ha-log"
    assert [link.interface for link in config.links] == (
        ["eth1", "eth0"] if second_link else ["eth1"]
    )
    service = config.groups[0].resources[1]
    assert isinstance(service, ServiceResource)
    assert service.name == "nginx" and service.path == ha_d / "resource.d" / "nginx"
    assert nginx_root.is_dir()


def test_tutorial_profile_keeps_the_tutorial_timings(tmp_path: Path) -> None:
    ha_d, _ = write_ha_d("slave", tmp_path, TUTORIAL)
    t = load(ha_d, "slavenginx").config.timings
    assert (t.keepalive_s, t.warntime_s, t.deadtime_s, t.initdead_s) == (2.0, 10.0, 30.0, 60.0)


def test_nginx_script_reports_stopped_heartbeat_style(tmp_path: Path) -> None:
    ha_d, _ = write_ha_d("master", tmp_path, FAST)
    script = ha_d / "resource.d" / "nginx"
    out = subprocess.run([str(script), "status"], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "stopped"
    bad = subprocess.run([str(script), "reload"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2


def test_result_json_contract_and_judgement() -> None:
    sc = scenario("link-cut")
    ok = Result(sc.name, sc.title, "fast", None, outage_s=0.04, requests=100, answered=99)
    ok.steps = [StepResult("cut", True, 6.0)]
    assert judge(sc, FAST, ok) is True
    data = ok.as_json()
    assert set(data) >= JSON_KEYS
    assert data["status"] == "skipped"  # passed is set by the runner from judge()
    dual = Result(sc.name, sc.title, "fast", None, dual_holder_instants=2, requests=10)
    assert judge(sc, FAST, dual) is False and "two VIP holders" in (dual.error or "")
    slow = Result(sc.name, sc.title, "fast", None, outage_s=1.5, requests=10)
    assert judge(sc, FAST, slow) is False and "outage" in (slow.error or "")


def test_every_scenario_is_named_once_and_pending_ones_say_why() -> None:
    assert len(set(SCENARIO_NAMES)) == len(SCENARIOS)
    for sc in SCENARIOS:
        assert sc.pending is None or len(sc.pending) > 20


def test_demo_refuses_without_root_and_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["demo", "--fast", "--scenario", "startup"])
    assert result.exit_code == 2
    assert "needs root" in result.output and "sudo gossipha demo" in result.output


def test_demo_names_missing_tools_and_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda tool: None if tool == "nginx" else "/bin/" + tool)
    result = CliRunner().invoke(main, ["demo", "--fast"])
    assert result.exit_code == 2
    assert "missing nginx" in result.output and "apt-get install nginx" in result.output


def test_demo_rejects_unknown_scenario() -> None:
    result = CliRunner().invoke(main, ["demo", "--scenario", "nope"])
    assert result.exit_code == 2 and "startup" in result.output


def test_demo_rejects_a_loss_duration_out_of_range() -> None:
    result = CliRunner().invoke(main, ["demo", "--loss-seconds", "0.5"])
    assert result.exit_code == 2 and "--loss-seconds" in result.output


def test_loss_rules_per_interface_and_udp_port() -> None:
    script = _loss_script({("eth0", 694): 20, ("eth1", None): 100, ("eth1", 694): 5})
    assert 'iifname "eth0" udp dport 694 numgen random mod 100 < 20 drop' in script
    assert 'iifname "eth1" drop' in script
    assert 'iifname "eth1" udp dport 694 numgen random mod 100 < 5 drop' in script
    assert _loss_script({}).splitlines() == ["table inet gha_loss", "delete table inet gha_loss"]


def test_demo_lists_scenarios() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gossipha", "demo", "--list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(SCENARIO_NAMES)
