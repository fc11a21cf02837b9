"""Durations as Heartbeat writes them (`2`, `500ms`, `2s`, `1500us`), read to float seconds."""

from __future__ import annotations

import math
import re
from decimal import Decimal

# re.ASCII: `\d` alone also matches "２" (full-width), which float() then reads as 2.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s)?\s*$", re.IGNORECASE | re.ASCII)
_SCALE = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


def parse_duration(text: str) -> float:
    """Seconds for `text`; ValueError with what was expected on anything else.

    A bare number is seconds, as in Heartbeat's ha.cf.
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; expected seconds like 2, 2s, 500ms")
    value = float(match.group(1)) * _SCALE[match.group(2).lower() if match.group(2) else None]
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite duration")
    return value


def format_duration(seconds: float) -> str:
    """The shortest exact spelling that parse_duration reads back to the same float."""
    ms = seconds * 1000
    if ms == int(ms) and int(ms) % 1000 != 0 and parse_duration(f"{int(ms)}ms") == seconds:
        return f"{int(ms)}ms"
    fixed = format(Decimal(repr(float(seconds))), "f")  # shortest digits, never 1e-05
    return fixed.removesuffix(".0") + "s"
