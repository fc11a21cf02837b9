"""tests/ci.py: a test that cannot run skips on a laptop and fails under CI=true."""

from __future__ import annotations

import pytest

from tests.ci import cannot_run


def test_cannot_run_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="tool missing"):
        cannot_run("tool missing")


def test_cannot_run_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI=true: tool missing"):
        cannot_run("tool missing")
