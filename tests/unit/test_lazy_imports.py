"""What the agent's process imports: heavy libraries only where they are used.

Measured (bench/resources.py, native profile): pyroute2 alone was about 9 MB of an idle
agent's 57 MB resident; the agent now speaks rtnetlink itself (resources/rtnl.py), and
pyroute2 is imported only for a named network namespace (the lab and tests). Each check
runs in a fresh interpreter, so what earlier tests imported does not count.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

_AGENT_MODULES = (
    "gossipha.cli",
    "gossipha.runtime.agent",
    "gossipha.resources.vip",
    "gossipha.runtime.reload",
)


def _imported(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("module", _AGENT_MODULES)
def test_agent_modules_do_not_import_pyroute2(module: str) -> None:
    assert not {m for m in _imported(f"import {module}") if m.split(".")[0] == "pyroute2"}


def test_cli_loads_lab_and_simulator_only_for_their_commands() -> None:
    imported = _imported("import gossipha.cli")
    assert "gossipha.lab" not in imported and "gossipha.sim" not in imported
    listed = _imported(
        "from click.testing import CliRunner\n"
        "from gossipha.cli import main\n"
        "assert CliRunner().invoke(main, ['demo', '--help']).exit_code == 0"
    )
    assert "gossipha.lab.demo" in listed


def test_loading_a_configuration_reads_host_addresses_without_pyroute2() -> None:
    """check-config, the agent, the witness and a reload all load through config/load.py,
    whose self-ucast check reads this host's addresses: with rtnl, not pyroute2."""
    imported = _imported(
        "from gossipha.config.load import local_addresses\n"
        "assert any(a.is_loopback for a in local_addresses())"
    )
    assert "gossipha.resources.rtnl" in imported
    assert not {m for m in imported if m.split(".")[0] == "pyroute2"}
