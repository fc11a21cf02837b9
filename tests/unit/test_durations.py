"""Heartbeat's time syntax, and the writer that migrate relies on to round-trip exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipha.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2", 2.0), ("2s", 2.0), ("500ms", 0.5), ("0.2", 0.2), ("1500us", 0.0015), (" 30 ", 30.0)],
)
def test_heartbeat_time_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    # Full-width, Arabic-Indic and superscript digits: float() would read the first two.
    ["", "two", "2m", "-1", "1e3", "2 s s", "nan", "２", "２s", "0.٥", "²", "1\u00a0s"],
)
def test_rejects_with_what_was_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected seconds"):
        parse_duration(text)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_format_reads_back_exactly(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_is_readable() -> None:
    assert format_duration(0.2) == "200ms"
    assert format_duration(2.0) == "2s"
