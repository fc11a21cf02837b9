"""Pure timing rules of the runtime: when to wake the core, and when a gap means a stall.

The runtime reads `loop.time()` and asks these functions; nothing here reads a clock, so
the rules are unit-tested with hand-set times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A wakeup that ran this late is reported to the core as LoopLag (smaller lag is noise).
LAG_REPORT_S = 0.01
MIN_STALL_S = 0.1


def max_tick_interval_s(keepalive_s: float) -> float:
    """The core is stepped at least this often, whatever its next_wakeup_s says.

    The core's wakeup is exact (it names every deadline it has, the next heartbeat among
    them, so it never asks for more than a keepalive ahead); this cap is only a backstop.
    """
    return max(keepalive_s, 1e-3)


def stall_threshold_s(keepalive_s: float, lease_s: float) -> float:
    """Lateness past a scheduled wakeup that counts as a stall (SIGSTOP, VM pause, swap).

    A wakeup late by a whole keepalive (or a quarter of a lease, whichever is shorter) is
    no scheduling jitter: the process did not run. Wakeups come at the core's deadlines
    (at least one heartbeat per keepalive), so a stall that delays none of them by this
    much goes unreported, and costs nothing: nothing was due meanwhile.
    """
    return max(min(keepalive_s, lease_s / 4.0), MIN_STALL_S)


def next_wakeup_s(now_s: float, core_wakeup_s: float, keepalive_s: float) -> float:
    """When to step the core with Tick next: its own wish, but never later than the cap."""
    cap_s = now_s + max_tick_interval_s(keepalive_s)
    if math.isnan(core_wakeup_s):
        return cap_s
    return max(now_s, min(core_wakeup_s, cap_s))


@dataclass(slots=True)
class StallDetector:
    """Notices that the loop did not run for much longer than the wakeup schedule allows.

    `armed(now_s, wakeup_s)` after each step records when the loop must run again at the
    latest; `check(now_s)` before the next step returns the stalled duration (since the
    last step) when `now_s` is past that wakeup by more than `threshold_s`, else None.
    """

    threshold_s: float
    last_step_s: float = -math.inf
    wakeup_s: float = math.inf

    def armed(self, now_s: float, wakeup_s: float) -> None:
        self.last_step_s = now_s
        self.wakeup_s = wakeup_s

    def check(self, now_s: float) -> float | None:
        if now_s - self.wakeup_s > self.threshold_s:
            stalled_s = now_s - self.last_step_s
            self.wakeup_s = math.inf  # reported once; the next `armed` re-arms
            return stalled_s
        return None


def lag_s(now_s: float, scheduled_s: float) -> float:
    """How late a wakeup ran (0 when on time or early)."""
    return max(0.0, now_s - scheduled_s)
