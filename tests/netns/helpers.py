"""Small helpers the real-network tests share: bounded waits and who holds the VIP."""

from __future__ import annotations

import time
from collections.abc import Callable

from gossipha.lab import Lab
from gossipha.lab.topology import TUTORIAL_VIP


def wait_until(what: str, check: Callable[[], bool], bound_s: float, step_s: float = 0.02) -> float:
    """Poll `check` until true; the seconds it took, or AssertionError naming `what`."""
    start = time.monotonic()
    while time.monotonic() - start < bound_s:
        if check():
            return time.monotonic() - start
        time.sleep(step_s)
    raise AssertionError(f"not within {bound_s}s: {what}")


def holds_vip(lab: Lab, node: str, vip: str = str(TUTORIAL_VIP.ip)) -> bool:
    """Whether `node` has the VIP configured on an interface that is up."""
    out = lab.run(
        node, ["ip", "-o", "-4", "addr", "show", "up", "to", f"{vip}/32"], uts=False, check=False
    )
    return bool(out.stdout.strip())
