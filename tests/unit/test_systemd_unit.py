"""deploy/systemd: the properties of the unit that matter, so a change to them is deliberate.

The unit is read as systemd reads it (sections, `Key=value`, a key may repeat); what is
checked is what the agent and the services it starts rely on.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gossipha.config.load import load
from gossipha.config.model import Config
from gossipha.config.services import ServiceResolver
from gossipha.runtime.agent import SHUTDOWN_TIMEOUT_S
from gossipha.runtime.stop_bound import stop_bound_s

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = SYSTEMD / "gossipha.service"
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> key -> every value given, in order (systemd's syntax, no line
    continuations: the shipped files have none; an empty value resets the list)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: continuation lines are not read here"
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
