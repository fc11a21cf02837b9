"""What an installed gossipha reads besides its modules: the package's copy of the tutorial
stays equal to the docs', and the demo refuses in one line when that copy is missing."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner

from gossipha.cli import main
from gossipha.lab import scenarios
from gossipha.lab.scenarios import FAST, NODES, TUTORIAL_FILES, write_ha_d
from tests.conftest import TUTORIAL


def packaged_tutorial(node: str) -> Path:
    return Path(str(files("gossipha") / "examples" / "tutorial" / node))


@pytest.mark.parametrize("node", NODES)
def test_packaged_tutorial_is_the_docs_tutorial(node: str) -> None:
    # The demo reads the package's copy; readers and the other tests read docs/examples.
    packaged, documented = packaged_tutorial(node), TUTORIAL / node
    assert sorted(p.name for p in packaged.iterdir()) == sorted(TUTORIAL_FILES)
    assert sorted(p.name for p in documented.iterdir()) == sorted(TUTORIAL_FILES)
    for name in TUTORIAL_FILES:
        assert (packaged / name).read_bytes() == (documented / name).read_bytes(), name


def test_lab_ha_d_comes_from_the_package(tmp_path: Path) -> None:
    ha_d, _ = write_ha_d("master", tmp_path, FAST)
    for name in ("authkeys", "haresources"):
        assert (ha_d / name).read_bytes() == (packaged_tutorial("master") / name).read_bytes()
    assert (ha_d / "authkeys").stat().st_mode & 0o777 == 0o600


def test_demo_without_the_tutorial_files_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wheel built without its package data: one line naming the files, before any lab.
    monkeypatch.setattr(scenarios, "files", lambda _package: tmp_path)
    result = CliRunner().invoke(main, ["demo", "--fast", "--scenario", scenarios.SCENARIO_NAMES[0]])
    assert result.exit_code == 2, result.output
    assert "gossipha/examples/tutorial/master/ha.cf" in result.output
    assert "reinstall gossipha" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
