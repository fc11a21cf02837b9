"""Whole numbers as configuration files write them: ASCII digits only.

`str.isdigit()` and `int()` take any Unicode digit: `int("２")` is 2 (a full-width digit
from an IME), and `"²".isdigit()` is true while `int("²")` raises. Heartbeat's C parser
reads neither, so neither do we: such a value is refused with the line it is on.
"""

from __future__ import annotations


def is_digits(text: str) -> bool:
    """True when `text` is one or more ASCII digits (0-9) and nothing else."""
    return text.isascii() and text.isdigit()
