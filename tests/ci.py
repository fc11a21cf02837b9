"""The suite's one rule for a test that cannot run here: skipped on a developer's machine
(unprivileged, a tool not installed), failed under ``CI=true``, where a skip would be a check
nobody ran that still reads as green."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def cannot_run(reason: str) -> NoReturn:
    """Skip with `reason`, or fail with it under CI=true."""
    if under_ci():
        pytest.fail(f"cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)
