"""deploy/systemd: the properties of the unit and its storage drop-in that matter, so a change
to them is deliberate.

The files are read as systemd reads them (sections, `Key=value`, a key may repeat, a
drop-in adds to or resets the unit); what is checked is what the agent and the services it
starts rely on. systemd-analyze verifies both and scores their exposure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gossipha.config.load import load
from gossipha.config.model import Config
from gossipha.config.services import ServiceResolver
from gossipha.runtime.agent import SHUTDOWN_TIMEOUT_S
from gossipha.runtime.stop_bound import stop_bound_s
from tests.ci import cannot_run

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = SYSTEMD / "gossipha.service"
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

DROP_IN = SYSTEMD / "gossipha.service.d" / "storage.conf"
# Where the score was measured: systemd-analyze security --offline=yes, by systemd version.
# A newer systemd weighs more settings; record its numbers when CI moves to it.
SCORES = {252: {"unit": 3.2, "with storage.conf": 5.9}}
SCORE_BEFORE_HARDENING = 5.3  # systemd 252, the unit as it was before issue #20

Unit = dict[str, dict[str, list[str]]]


def parse_unit(*texts: str) -> Unit:
    """Sections -> key -> every value in effect, the unit then its drop-ins in order, as
    systemd merges them: each assignment adds a value, an empty one clears the list (for a
    setting that takes one value, the last counts). No line continuations: the shipped
    files have none."""
    unit: Unit = {}
    for text in texts:
        section: dict[str, list[str]] | None = None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            assert not line.endswith("\\"), f"line {number}: continuation lines are not read"
            if line.startswith("[") and line.endswith("]"):
                section = unit.setdefault(line[1:-1], {})
                continue
            assert section is not None, f"line {number}: setting before any section"
            key, sep, value = line.partition("=")
            assert sep, f"line {number}: expected Key=value: {line!r}"
            values = section.setdefault(key.strip(), [])
            if value.strip():
                values.append(value.strip())
            else:
                values.clear()
    return unit


def one(unit: Unit, key: str, section: str = "Service") -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def last(unit: Unit, key: str, default: str = "") -> str:
    values = unit["Service"].get(key, [])
    return values[-1] if values else default


def words(unit: Unit, key: str) -> set[str]:
    return {w for value in unit["Service"].get(key, []) for w in value.split()}


_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_UNITS_S = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "ms": 0.001}


def seconds(span: str) -> float:
    """A systemd time span ("45s", "30min", "1h 30min") in seconds; infinity as such."""
    if span == "infinity":
        return float("inf")
    parts = _SPAN.findall(span)
    assert parts and "".join(f"{n}{u}" for n, u in parts) == span.replace(" ", ""), span
    return sum(float(n) * _UNITS_S[u] for n, u in parts)


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def with_storage() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"), DROP_IN.read_text(encoding="utf-8"))


def test_time_spans() -> None:
    assert seconds("45s") == 45 and seconds("30min") == 1800 and seconds("1h 30min") == 5400
    assert seconds("10") == 10 and seconds("infinity") == float("inf")


def native_example(directory: Path) -> Config:
    """docs/examples/native/gossipha.toml, beside an authkeys file and its nginx script."""
    shutil.copy(EXAMPLES / "native" / "gossipha.toml", directory)
    keys = directory / "authkeys"
    keys.write_text("auth 1\n1 sha256 s3cret\n")
    keys.chmod(0o600)
    (directory / "resource.d").mkdir()
    (directory / "resource.d" / "nginx").write_text("#!/bin/sh\n")
    resolver = ServiceResolver(
        resource_d=directory / "resource.d",
        init_d=directory / "init.d",
        systemd_dirs=(directory / "systemd",),
        ocf_root=directory / "ocf",
    )
    path = directory / "gossipha.toml"
    return load(path, "masternginx", resolver=resolver, host_addresses=frozenset()).config


def test_a_stop_lets_the_services_finish(unit: Unit, master_ha_d: Path, tmp_path: Path) -> None:
    # systemd signals the agent only (not SIGKILL to the services it is stopping) ...
    assert one(unit, "KillMode") == "process"
    assert "--shutdown-timeout" not in one(unit, "ExecStart")  # the agent's default, then
    # ... and waits longer than the agent's own stop of the tutorial and native examples.
    timeout_s = seconds(one(unit, "TimeoutStopSec"))
    for config in (
        load(master_ha_d, "masternginx", host_addresses=frozenset()).config,
        native_example(tmp_path),
    ):
        bound_s = stop_bound_s(config.groups, config.respawns, SHUTDOWN_TIMEOUT_S)
        assert SHUTDOWN_TIMEOUT_S < bound_s < timeout_s, config.cluster_name


def test_the_agent_runs_realtime_and_oom_protected(unit: Unit) -> None:
    """What gossipha/child.py undoes for every child it starts (test_child_priority.py)."""
    assert one(unit, "CPUSchedulingPolicy") == "rr"
    assert one(unit, "CPUSchedulingPriority") == "10"
    assert one(unit, "Nice") == "-10"
    assert one(unit, "IOSchedulingClass") == "realtime"
    assert one(unit, "OOMScoreAdjust") == "-900"
    assert one(unit, "LimitMEMLOCK") == "infinity"
    # systemd's own reset would also take the agent's threads off realtime: not used
    assert "CPUSchedulingResetOnFork" not in unit["Service"]


def test_the_stop_bound_adds_up(master_ha_d: Path) -> None:
    """The tutorial: handover 30 s; nginx's stop and status (30 s each, plus 10.2 s to
    start, kill and reap each) and the VIP's removal (5 s), twice; closing 10 s."""
    config = load(master_ha_d, "masternginx", host_addresses=frozenset()).config
    bound_s = stop_bound_s(config.groups, config.respawns, SHUTDOWN_TIMEOUT_S)
    assert bound_s == pytest.approx(30 + 2 * (2 * (30 + 10.2) + 5) + 10)
    assert f"{bound_s:.0f} s for the" in UNIT.read_text()  # the number the unit quotes


# Every setting that gives the unit a mount namespace of its own (systemd.exec(5)): a mount
# made in it is seen by nothing outside the unit.
MOUNT_NAMESPACE_BOOLEANS = (
    "PrivateTmp",
    "PrivateMounts",
    "PrivateDevices",
    "ProtectHome",
    "ProtectSystem",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
)
MOUNT_NAMESPACE_LISTS = (
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "ExecPaths",
    "NoExecPaths",
    "BindPaths",
    "BindReadOnlyPaths",
    "TemporaryFileSystem",
    "RootDirectory",
    "RootImage",
    "MountImages",
    "ExtensionImages",
    "ExtensionDirectories",
    "ProtectProc",
    "ProcSubset",
    "MountAPIVFS",
)
_OFF = frozenset({"", "no", "false", "0", "off"})


def test_the_sandbox_the_agent_and_its_services_share(unit: Unit) -> None:
    """What systemd-analyze's score was lowered with; each is safe for the agent and for an
    init-script service (the unit's comments say why, and why others are not set)."""
    for key in ("PrivateMounts", "PrivateDevices", "ProtectKernelTunables", "RestrictRealtime"):
        assert last(unit, key) == "yes", key
    assert words(unit, "SystemCallFilter") == {"@system-service"}
    assert last(unit, "SystemCallErrorNumber") == "EPERM"  # refused, not killed
    # the agent's own needs: netlink (VIPs), packet sockets (ARP), ICMP, UDP; no more
    assert words(unit, "RestrictAddressFamilies") == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
        "AF_PACKET",
    }
    caps = words(unit, "CapabilityBoundingSet")
    assert {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"} <= caps
    assert not caps & {"CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_IPC_LOCK", "CAP_SYS_NICE"}
    # would break init scripts' status checks, nginx's PCRE JIT, the agent's whole job
    for key in ("ProtectProc", "ProcSubset", "MemoryDenyWriteExecute", "PrivateNetwork", "User"):
        assert key not in unit["Service"], key


def test_storage_drop_in_gives_mounts_the_hosts_namespace(unit: Unit, with_storage: Unit) -> None:
    """docs/migrating-from-heartbeat.md: Filesystem and drbddisk keep working with it."""
    assert any(last(unit, key) not in _OFF for key in MOUNT_NAMESPACE_BOOLEANS)
    for key in MOUNT_NAMESPACE_BOOLEANS:
        assert last(with_storage, key, "no") in _OFF, key
    for key in MOUNT_NAMESPACE_LISTS:
        assert not with_storage["Service"].get(key), key
    assert {"CAP_SYS_ADMIN", "CAP_SYS_MODULE"} <= words(with_storage, "CapabilityBoundingSet")
    assert {"@mount", "@module"} <= words(with_storage, "SystemCallFilter")
    assert {"block-*", "char-misc"} <= words(with_storage, "DeviceAllow")
    # everything else of the unit stays as it is
    assert words(with_storage, "RestrictAddressFamilies") == words(unit, "RestrictAddressFamilies")
    assert last(with_storage, "KillMode") == "process"
    assert last(with_storage, "NoNewPrivileges") == "yes"


def _installed(tmp_path: Path, *, drop_in: bool) -> Path:
    """The unit (and the drop-in beside it, where systemd-analyze looks for it), with
    ExecStart at this interpreter: /usr/bin/gossipha exists only once installed."""
    unit = tmp_path / "gossipha.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/gossipha", f"{sys.executable} -m gossipha"))
    if drop_in:
        (tmp_path / "gossipha.service.d").mkdir()
        shutil.copy(DROP_IN, tmp_path / "gossipha.service.d")
    return unit


def _systemd_analyze() -> tuple[str, int]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        cannot_run("systemd-analyze not installed (install systemd)")
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
    return tool, int(out.stdout.split()[1])


@pytest.mark.parametrize("drop_in", [False, True], ids=["unit", "with storage.conf"])
def test_systemd_verifies_it(tmp_path: Path, drop_in: bool) -> None:
    tool, _ = _systemd_analyze()
    unit = _installed(tmp_path, drop_in=drop_in)
    # --man=no: Documentation= names gossipha(8), which the Debian package installs; the
    # installed unit is verified with its page in tests/unit/test_deb.py.
    result = subprocess.run(
        [tool, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "gossipha.service" not in result.stderr, result.stderr  # no warning about ours


_OVERALL = re.compile(r"Overall exposure level for gossipha\.service: (\d+(?:\.\d+)?) ")


@pytest.mark.parametrize("drop_in", [False, True], ids=["unit", "with storage.conf"])
def test_exposure_score_stays_where_it_was_measured(tmp_path: Path, drop_in: bool) -> None:
    tool, version = _systemd_analyze()
    unit = _installed(tmp_path, drop_in=drop_in)
    result = subprocess.run(
        [tool, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = _OVERALL.search(result.stdout)
    assert found, result.stdout + result.stderr
    score = float(found.group(1))
    if version not in SCORES:
        cannot_run(f"systemd {version} scores gossipha.service {score}: add it to SCORES")
    recorded = SCORES[version]["with storage.conf" if drop_in else "unit"]
    assert score <= recorded, result.stdout
    if not drop_in:
        assert score < SCORE_BEFORE_HARDENING
