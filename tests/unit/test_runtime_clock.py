"""Wakeup scheduling and stall detection of the runtime, with hand-set times."""

from __future__ import annotations

import math

from gossipha.runtime import clock


def test_wakeup_follows_the_core_but_never_later_than_a_keepalive() -> None:
    assert clock.next_wakeup_s(10.0, 10.02, keepalive_s=0.2) == 10.02
    assert clock.next_wakeup_s(10.0, 10.15, keepalive_s=0.2) == 10.15
    assert clock.next_wakeup_s(10.0, 99.0, keepalive_s=0.2) == 10.2
    assert clock.next_wakeup_s(10.0, math.inf, keepalive_s=2.0) == 12.0
    assert clock.next_wakeup_s(10.0, math.nan, keepalive_s=2.0) == 12.0


def test_wakeup_in_the_past_means_now() -> None:
    assert clock.next_wakeup_s(10.0, 9.0, keepalive_s=2.0) == 10.0


def test_stall_threshold_is_a_keepalive_or_a_quarter_lease() -> None:
    assert clock.stall_threshold_s(0.2, 2.0) == 0.2
    assert clock.stall_threshold_s(2.0, 2.0) == 0.5
    assert clock.stall_threshold_s(0.01, 2.0) == clock.MIN_STALL_S


def test_on_time_and_slightly_late_steps_are_no_stall() -> None:
    d = clock.StallDetector(threshold_s=0.2)
    assert d.check(0.0) is None  # never armed
    d.armed(1.0, 1.05)
    assert d.check(1.05) is None
    assert d.check(1.2) is None  # 0.15 s late: lag, not a stall


def test_a_paused_process_is_reported_once_with_the_whole_gap() -> None:
    d = clock.StallDetector(threshold_s=0.2)
    d.armed(1.0, 1.05)
    assert d.check(6.0) == 5.0  # SIGSTOP for ~5 s: duration since the last step
    assert d.check(6.01) is None  # reported once
    d.armed(6.01, 6.06)
    assert d.check(6.07) is None


def test_lag() -> None:
    assert clock.lag_s(1.0, 1.2) == 0.0
    assert math.isclose(clock.lag_s(1.3, 1.2), 0.1)
