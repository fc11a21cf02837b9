"""check-config's host checks, against this host as it is: `lo` exists, `eth9x` does not,
ports are really bound (and closed; nothing is sent), scripts are real files in tmp_path."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from gossipha.cli import main
from gossipha.config.errors import EXIT_CONFIG
from gossipha.config.load import load
from gossipha.config.model import Link, LinkKind
from gossipha.runtime.host_checks import Finding, Severity, check_host
from gossipha.runtime.links import bind_socket
from tests.ci import cannot_run

HERE = os.uname().nodename.lower()  # ha.cf node names are lower-cased, as in Heartbeat
MISSING = "eth9x"


def free_port() -> int:
    """A UDP port nothing holds right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        port: int = sock.getsockname()[1]
        return port


def write_ha_d(tmp_path: Path, links: str, resources: str, *, port: int, extra: str = "") -> Path:
    """An /etc/ha.d for this host and one peer; `links` and `extra` go into ha.cf."""
    directory = tmp_path / "ha.d"
    (directory / "resource.d").mkdir(parents=True)
    (directory / "ha.cf").write_text(
        f"keepalive 1\ndeadtime 10\nudpport {port}\n{links}"
        f"node {HERE}\nnode peer\nauto_failback on\n{extra}"
    )
    (directory / "haresources").write_text(resources)
    keys = directory / "authkeys"
    keys.write_text("auth 1\n1 sha256 0123456789abcdef\n")
    keys.chmod(0o600)
    script = directory / "resource.d" / "svc"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    return directory


def findings(path: Path) -> list[Finding]:
    loaded = load(path, HERE)
    return check_host(loaded.config, loaded.locations)


def codes(found: list[Finding]) -> list[tuple[str, Severity, str, int | None]]:
    return [(f.code, f.severity, f.path.name, f.line) for f in found]


def check_config(*args: str) -> Result:
    return CliRunner().invoke(main, ["check-config", *args])


def no_port_trouble(found: list[Finding]) -> list[Finding]:
    """The findings, once sure the port check itself could run here."""
    if any(f.code == "port-not-checked" for f in found):
        cannot_run("binding to an interface as the agent does needs CAP_NET_RAW")
    return found


# --------------------------------------------------------------- interfaces and VIPs


def test_a_good_host_config_has_no_findings(tmp_path: Path) -> None:
    ha_d = write_ha_d(
        tmp_path, "ucast lo 198.51.100.7\n", f"{HERE} 127.0.0.77/8/lo svc\n", port=free_port()
    )
    assert no_port_trouble(findings(ha_d)) == []


def test_interfaces_that_do_not_exist_are_errors_at_their_lines(tmp_path: Path) -> None:
    ha_d = write_ha_d(
        tmp_path,
        f"ucast lo 198.51.100.7\nbcast {MISSING}\n",
        f"{HERE} 127.0.0.77/8/lo svc\n{HERE} 10.99.0.1/24/{MISSING}\n",
        port=free_port(),
    )
    found = no_port_trouble(findings(ha_d))
    assert codes(found) == [
        ("interface-missing", Severity.ERROR, "ha.cf", 5),
        ("interface-missing", Severity.ERROR, "haresources", 2),
    ]
    assert f"interface '{MISSING}' does not exist on this host" in found[0].message
    assert "expected one of: " in found[0].message and "lo" in found[0].message


def test_a_vip_no_subnet_of_this_host_holds_is_an_error(tmp_path: Path) -> None:
    """Heartbeat's findif, as the agent runs it: no interface, no prefix, no subnet."""
    ha_d = write_ha_d(
        tmp_path, "ucast lo 198.51.100.7\n", f"{HERE} svc 203.0.113.9\n", port=free_port()
    )
    [finding] = no_port_trouble(findings(ha_d))
    assert codes([finding]) == [("vip-unplaceable", Severity.ERROR, "haresources", 1)]
    assert "203.0.113.9: no interface has a subnet holding it (findif)" in finding.message


def test_a_vip_found_by_its_subnet_is_placed(tmp_path: Path) -> None:
    ha_d = write_ha_d(tmp_path, "ucast lo 198.51.100.7\n", f"{HERE} 127.0.0.77\n", port=free_port())
    assert no_port_trouble(findings(ha_d)) == []


def test_a_vip_outside_its_named_interfaces_subnets_is_a_warning(tmp_path: Path) -> None:
    """The agent adds it (prefix and interface are written out), but no host on that
    network reaches it without a route: likely a typo, not certainly one."""
    ha_d = write_ha_d(
        tmp_path, "ucast lo 198.51.100.7\n", f"{HERE} 203.0.113.9/24/lo\n", port=free_port()
    )
    [finding] = no_port_trouble(findings(ha_d))
    assert codes([finding]) == [("vip-subnet-not-on-interface", Severity.WARNING, "haresources", 1)]
    assert "no address of lo is in its subnet" in finding.message


# --------------------------------------------------------------- the UDP port


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port held by a plain socket without SO_REUSEADDR, as another daemon holds 694."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        yield sock.getsockname()[1]


def test_a_port_another_program_holds_is_a_warning(tmp_path: Path, held_port: int) -> None:
    ha_d = write_ha_d(tmp_path, "ucast lo 198.51.100.7\n", f"{HERE} svc\n", port=held_port)
    found = no_port_trouble(findings(ha_d))
    assert codes(found) == [("port-in-use", Severity.WARNING, "ha.cf", 3)]  # the udpport line
    assert f"UDP port {held_port} on lo (link lo) is held by another program" in found[0].message


def test_a_port_the_agent_holds_is_no_finding(tmp_path: Path) -> None:
    """The agent binds with SO_REUSEADDR, so check-config beside a running agent binds too."""
    port = free_port()
    agent = bind_socket(Link("lo", LinkKind.UCAST, "lo", port))
    try:
        ha_d = write_ha_d(tmp_path, "ucast lo 198.51.100.7\n", f"{HERE} svc\n", port=port)
        assert no_port_trouble(findings(ha_d)) == []
    finally:
        agent.close()


# --------------------------------------------------------------- what the agent runs


def _toml(tmp_path: Path, body: str) -> Path:
    keys = tmp_path / "authkeys"
    keys.write_text("auth 1\n1 sha256 0123456789abcdef\n")
    keys.chmod(0o600)
    path = tmp_path / "gossipha.toml"
    path.write_text(
        f'[cluster]\nname = "c"\n\n[nodes."{HERE}"]\n\n[nodes.peer]\n'
        f'[[link]]\nname = "hb"\ninterface = "lo"\npeers = ["198.51.100.7"]\nport = {free_port()}\n'
        f"{body}"
    )
    return path


def _script(path: Path, mode: int) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def test_scripts_and_hooks_must_exist_and_be_executable(tmp_path: Path) -> None:
    plain = _script(tmp_path / "plain", 0o644)
    ok = _script(tmp_path / "ok", 0o755)
    path = _toml(
        tmp_path,
        '[[group]]\nname = "g"\nresources = [\n'
        f'  {{ service = "a", kind = "lsb", path = "{plain}" }},\n'
        f'  {{ service = "b", kind = "lsb", path = "{tmp_path / "gone"}" }},\n'
        f'  {{ service = "c", kind = "command", start = ["{ok}"], stop = ["{plain}"] }},\n'
        f'  {{ service = "d", kind = "lsb", path = "{ok}" }},\n'
        "]\n"
        f'[[observe.hook]]\npath = "{tmp_path / "nohook"}"\n'
        f'[[observe.hook]]\npath = "{ok}"\nevents = ["peer_dead"]\n'
        '[[respawn]]\nuser = "no-such-user-gossipha"\ncommand = ["/bin/true"]\n',
    )
    lines = path.read_text().splitlines()

    def line_of(fragment: str) -> int:
        return next(i for i, line in enumerate(lines, start=1) if fragment in line)

    found = no_port_trouble(findings(path))
    assert codes(found) == [
        ("script-not-executable", Severity.ERROR, "gossipha.toml", line_of('service = "a"')),
        ("script-missing", Severity.ERROR, "gossipha.toml", line_of('service = "b"')),
        ("command-not-executable", Severity.ERROR, "gossipha.toml", line_of('service = "c"')),
        ("user-missing", Severity.ERROR, "gossipha.toml", line_of("no-such-user")),
        ("hook-missing", Severity.ERROR, "gossipha.toml", line_of("nohook")),
    ]
    assert f"{plain} is not executable (mode 0644)" in found[0].message
    assert "service c stop" in found[2].message


# --------------------------------------------------------------- the command


def test_check_config_exits_78_for_a_missing_interface(tmp_path: Path) -> None:
    """keepalived -t refuses `interface eth9` too; before, this passed with 0."""
    ha_d = write_ha_d(tmp_path, f"ucast {MISSING} 198.51.100.7\n", f"{HERE} svc\n", port=694)
    result = check_config(str(ha_d))
    assert result.exit_code == EXIT_CONFIG, result.output
    assert (
        f"gossipha: error: {ha_d / 'ha.cf'}:4: link {MISSING}: interface '{MISSING}' "
        "does not exist on this host" in result.stderr
    )


def test_no_host_checks_checks_the_files_only(tmp_path: Path) -> None:
    ha_d = write_ha_d(tmp_path, f"ucast {MISSING} 198.51.100.7\n", f"{HERE} svc\n", port=694)
    result = check_config(str(ha_d), "--no-host-checks")
    assert result.exit_code == 0, result.output
    assert "does not exist" not in result.stderr


def test_host_checks_run_only_for_this_host_unless_asked(tmp_path: Path) -> None:
    """Checking the peer's view from here says nothing about the peer's interfaces."""
    ha_d = write_ha_d(tmp_path, f"ucast {MISSING} 198.51.100.7\n", f"{HERE} svc\n", port=694)
    result = check_config(str(ha_d), "--node-name", "peer")
    assert result.exit_code == 0, result.output
    assert "host checks skipped: node 'peer' is not this host" in result.stderr
    assert check_config(str(ha_d), "--node-name", "peer", "--host-checks").exit_code == 78
    assert check_config(str(ha_d), "--node-name", HERE.upper()).exit_code == 78


def test_json_keeps_its_fields_and_adds_the_host_checks(tmp_path: Path) -> None:
    ha_d = write_ha_d(
        tmp_path,
        "ucast lo 198.51.100.7\n",
        f"{HERE} 127.0.0.77/8/lo\n{HERE} 10.99.0.1/24/{MISSING}\n",
        port=free_port(),
    )
    result = check_config(str(ha_d), "--json")
    assert result.exit_code == EXIT_CONFIG  # the files are fine: the document is still printed
    doc = orjson.loads(result.stdout)
    assert {
        "source",
        "cluster_name",
        "node_name",
        "nodes",
        "voters",
        "voter_rule",
        "links",
        "ping_nodes",
        "timings",
        "auto_failback",
        "ping_failover",
        "auth",
        "groups",
        "respawns",
        "logging",
        "observe",
    } <= set(doc)
    assert doc["host_checks_ran"] is True
    found = [f for f in doc["host_checks"] if f["code"] != "port-not-checked"]
    assert found == [
        {
            "code": "interface-missing",
            "file": str(ha_d / "haresources"),
            "line": 2,
            "message": f"VIP 10.99.0.1: interface '{MISSING}' does not exist on this host; "
            f"expected one of: {', '.join(sorted(n for _i, n in socket.if_nameindex()))}",
            "severity": "error",
        }
    ]
    skipped = orjson.loads(check_config(str(ha_d), "--json", "--no-host-checks").stdout)
    assert (skipped["host_checks_ran"], skipped["host_checks"]) == (False, [])
