"""The test run's own settings: a run starts without pytest-asyncio's deprecation warning."""

from __future__ import annotations

import pytest


def test_async_fixture_loop_scope_is_set(pytestconfig: pytest.Config) -> None:
    # Unset, pytest-asyncio warns at start-up (PytestDeprecationWarning) on every run.
    assert pytestconfig.getini("asyncio_default_fixture_loop_scope") == "function"
