"""The lab's native profile: one gossipha.toml for both nodes at the native default timings
(keepalive 200 ms, deadtime 1 s, lease 600 ms), authkeys from `gossipha keygen`, and the
tutorial's start-up, graceful stop, crash and ping-node loss against real agents: who serves
at each step, never two VIP holders, each step's outage within its claim
(gossipha/lab/claims.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipha.config.native import NATIVE_DEFAULTS
from gossipha.lab import Lab, sweep_stale
from gossipha.lab.claims import outage_claim_failures
from gossipha.lab.scenarios import (
    HOSTNAMES,
    NATIVE,
    NODES,
    Cluster,
    NativeCluster,
    make_cluster,
    run_scenario,
    scenario,
    write_native,
)
from tests.lab.conftest import require_netns

# The nodes are network namespaces checked from the root namespace: the files only.
CHECK_CONFIG = (sys.executable, "-m", "gossipha", "check-config", "--json", "--no-host-checks")


def _check_config(config: Path, node: str) -> dict[str, object]:
    proc = subprocess.run(
        [*CHECK_CONFIG, str(config), "--node-name", node],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_native_files_read_back_with_native_defaults(tmp_path: Path) -> None:
    config, roots = write_native(tmp_path)
    assert (tmp_path / "authkeys").stat().st_mode & 0o777 == 0o600
    assert "sha256" in (tmp_path / "authkeys").read_text()
    assert "[timings]" not in config.read_text()  # nothing overridden
    for node in NODES:
        data = _check_config(config, HOSTNAMES[node])
        timings = data["timings"]
        assert isinstance(timings, dict)
        for key in ("keepalive", "deadtime", "warntime", "initdead", "lease", "deadping"):
            assert timings[key] == getattr(NATIVE_DEFAULTS, f"{key}_s"), key
        assert roots[node].is_dir()
    # Keys are made once per cluster: a second write keeps them.
    keys = (tmp_path / "authkeys").read_text()
    write_native(tmp_path)
    assert (tmp_path / "authkeys").read_text() == keys


@pytest.fixture(scope="module")
def native_cluster() -> Iterator[Cluster]:
    require_netns()
    sweep_stale()
    with Lab() as lab:
        cluster = make_cluster(lab, NATIVE, say=print)
        assert isinstance(cluster, NativeCluster)
        try:
            yield cluster
        finally:
            cluster.close()


@pytest.mark.netns
@pytest.mark.parametrize("name", ["startup", "graceful-stop", "crash", "ping-lost"])
def test_native_profile(native_cluster: Cluster, name: str) -> None:
    result = run_scenario(native_cluster, scenario(name), say=print)
    report = json.dumps(result.as_json(), indent=1)
    logs = "\n".join(f"--- {n} agent log\n{native_cluster.log_tail(n, 40)}" for n in NODES)
    assert result.dual_holder_instants == 0, report + "\n" + logs
    assert result.passed, report + "\n" + logs
    print(f"{name}: outages by step {result.step_outages_s()}")
    broken = outage_claim_failures(result)
    assert not broken, "\n".join(broken) + "\n" + report + "\n" + logs
