"""Shared fixtures: the tutorial's /etc/ha.d copied somewhere writable with authkeys at 600."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TUTORIAL = REPO / "docs" / "examples" / "tutorial"


def copy_ha_d(role: str, dest: Path) -> Path:
    """A copy of the tutorial's files for `role`, with a resource.d/nginx script so the
    service resolves the same way on any machine."""
    target = dest / role
    shutil.copytree(TUTORIAL / role, target)
    (target / "authkeys").chmod(0o600)
    script = target / "resource.d" / "nginx"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    return target


@pytest.fixture
def master_ha_d(tmp_path: Path) -> Path:
    return copy_ha_d("master", tmp_path)


@pytest.fixture
def slave_ha_d(tmp_path: Path) -> Path:
    return copy_ha_d("slave", tmp_path)
