"""Phi-accrual detector and Heartbeat's timings: hand-computed phi, warn/dead/initdead rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipha.config.model import Timings
from gossipha.core.awareness import Awareness
from gossipha.core.detector import (
    CROSSING_MARGIN_S,
    Level,
    PhiAccrualDetector,
    Policy,
    phi,
    phi_crossing_s,
    silence_for_phi,
)

TUTORIAL = Timings(
    keepalive_s=2.0, deadtime_s=30.0, warntime_s=10.0, initdead_s=60.0,
    ping_interval_s=1.0, deadping_s=5.0,
)  # fmt: skip
NATIVE = Timings(
    keepalive_s=0.2, deadtime_s=1.0, warntime_s=0.5, initdead_s=5.0,
    ping_interval_s=0.2, deadping_s=1.0,
)  # fmt: skip


def detector(t: Timings) -> PhiAccrualDetector:
    return PhiAccrualDetector(
        t.keepalive_s, t.phi_window, t.phi_min_std_s, t.phi_acceptable_pause_s
    )


def regular(t: Timings, beats: int, start_s: float = 0.0) -> tuple[PhiAccrualDetector, float]:
    d = detector(t)
    now = start_s
    for i in range(beats):
        now = start_s + i * t.keepalive_s
        d.heartbeat(now)
    return d, now


def first_level_time(
    policy: Policy, d: PhiAccrualDetector, last_s: float, level: Level, mult: float = 1.0
) -> float:
    """Step through silence in 10 ms steps; return the first time `level` is reached."""
    for i in range(1, 10_000):
        now = last_s + i * 0.01
        got = policy.level(d, now, mult)
        if got is level or (level is Level.WARN and got is Level.DEAD):
            return round(now - last_s, 2)
    raise AssertionError("never reached")


def test_phi_by_hand() -> None:
    # phi = log10(1 + e^a), a = y*(1.5976 + 0.070566*y^2), y = (elapsed - mean)/std
    # y = 0: a = 0 -> log10(2) = 0.30103
    assert phi(2.0, 2.0, 0.5) == pytest.approx(0.30103, abs=1e-5)
    # y = 1: a = 1.668166; e^a = 5.30243; log10(6.30243) = 0.79951
    assert phi(2.5, 2.0, 0.5) == pytest.approx(0.79951, abs=1e-5)
    # y = 2: a = 2*(1.5976 + 0.282264) = 3.759728; e^a = 42.9367; log10(43.9367) = 1.64283
    assert phi(3.0, 2.0, 0.5) == pytest.approx(1.64283, abs=1e-5)
    # y = 5: a = 5*(1.5976 + 1.76415) = 16.80875; phi ~= a/ln10 = 7.29998
    assert phi(4.5, 2.0, 0.5) == pytest.approx(7.29998, abs=1e-4)


def test_phi_matches_akka_two_branch_formula() -> None:
    def akka(elapsed: float, mean: float, std: float) -> float:
        y = (elapsed - mean) / std
        e = math.exp(-y * (1.5976 + 0.070566 * y * y))
        if elapsed > mean:
            return -math.log10(e / (1.0 + e))
        return -math.log10(1.0 - 1.0 / (1.0 + e))

    for elapsed in (0.1, 1.0, 1.9, 2.0, 2.3, 3.1, 4.0):
        assert phi(elapsed, 2.0, 0.4) == pytest.approx(akka(elapsed, 2.0, 0.4), rel=1e-9)


def test_window_statistics_by_hand() -> None:
    # keepalive 1 s seeds the window with 0.75 and 1.25 (mean 1, std 1/4).
    d = PhiAccrualDetector(1.0, window=100, min_std_s=0.01)
    assert d.mean_s == pytest.approx(1.0) and d.std_s == pytest.approx(0.25)
    for now in (0.0, 1.0, 2.0, 3.0):
        d.heartbeat(now)
    # window [0.75, 1.25, 1, 1, 1]: mean 1.0, var (0.0625 + 0.0625)/5 = 0.025, std 0.158114
    assert d.mean_s == pytest.approx(1.0)
    assert d.std_s == pytest.approx(math.sqrt(0.025))
    # silence 1.158114 s is y = 1: phi 0.79951 as above
    assert d.phi(3.0 + 1.0 + math.sqrt(0.025)) == pytest.approx(0.79951, abs=1e-5)


def test_window_is_bounded_and_follows_the_new_rhythm() -> None:
    d = PhiAccrualDetector(1.0, window=10, min_std_s=0.01)
    now = 0.0
    for _ in range(50):
        d.heartbeat(now)
        now += 3.0
    assert d.mean_s == pytest.approx(3.0)
    assert d.std_s == pytest.approx(0.01)  # perfectly regular: the floor


def test_min_std_and_acceptable_pause_delay_phi() -> None:
    plain = PhiAccrualDetector(1.0, 100, min_std_s=0.05)
    paused = PhiAccrualDetector(1.0, 100, min_std_s=0.05, acceptable_pause_s=2.0)
    for i in range(100):
        plain.heartbeat(float(i))
        paused.heartbeat(float(i))
    # 1.5 s of silence is alarming for a 1 s rhythm, unremarkable with a 2 s acceptable pause
    assert plain.phi(99.0 + 1.5) > 8.0
    assert paused.phi(99.0 + 1.5) < 0.1


@given(
    intervals=st.lists(st.floats(0.01, 10.0), min_size=0, max_size=30),
    a=st.floats(0.0, 100.0),
    b=st.floats(0.0, 100.0),
)
def test_phi_is_monotone_in_silence(intervals: list[float], a: float, b: float) -> None:
    d = PhiAccrualDetector(1.0, 20, 0.05)
    now = 0.0
    d.heartbeat(now)
    for dt in intervals:
        now += dt
        d.heartbeat(now)
    lo, hi = sorted((a, b))
    assert 0.0 <= d.phi(now + lo) <= d.phi(now + hi)


def test_silence_for_phi_inverts_phi() -> None:
    t = silence_for_phi(8.0, 2.0, 0.05)
    assert phi(t, 2.0, 0.05) == pytest.approx(8.0, abs=1e-6)
    assert 2.25 < t < 2.27  # y ~= 5.2: a regular 2 s stream crosses phi 8 at ~2.26 s


def test_tutorial_regular_stream_warns_then_dies_early_on_phi() -> None:
    policy = Policy.from_timings(TUTORIAL, start_s=0.0)
    d, last = regular(TUTORIAL, 30)
    # phi crosses phi_warn/phi_dead within ~0.3 s of a missed beat, but the floors wait
    # for 2 and 3 keepalives: WARN at 4 s, DEAD at 6 s, far before deadtime 30 s.
    assert first_level_time(policy, d, last, Level.WARN) == pytest.approx(4.0, abs=0.011)
    assert first_level_time(policy, d, last, Level.DEAD) == pytest.approx(6.0, abs=0.011)


def test_native_regular_stream() -> None:
    policy = Policy.from_timings(NATIVE, start_s=0.0)
    d, last = regular(NATIVE, 100)
    # floors 0.4 s / 0.6 s; phi with std floor 50 ms crosses 3 at ~0.37 s and 8 at ~0.46 s
    assert first_level_time(policy, d, last, Level.WARN) == pytest.approx(0.4, abs=0.011)
    assert first_level_time(policy, d, last, Level.DEAD) == pytest.approx(0.6, abs=0.011)


def test_jittery_stream_warns_at_warntime_and_dies_at_deadtime_at_the_latest() -> None:
    policy = Policy.from_timings(TUTORIAL, start_s=0.0)
    d = detector(TUTORIAL)
    now = 0.0
    for i in range(60):  # intervals alternate 0.5 s and 7.5 s: mean 4, std 3.5
        d.heartbeat(now)
        now += 0.5 if i % 2 == 0 else 7.5
    last = d.last_s
    assert last is not None
    # phi_warn 3 needs y ~= 1.9 -> 4 + 1.9*3.5 = 10.7 s: warntime (10 s) fires first
    assert first_level_time(policy, d, last, Level.WARN) == pytest.approx(10.0, abs=0.011)
    # phi_dead 8 needs y ~= 5.2 -> ~22 s, so phi still decides before the cap here ...
    dead = first_level_time(policy, d, last, Level.DEAD)
    assert 20.0 < dead < 30.0
    # ... and with a larger acceptable pause phi would wait longer, but deadtime caps it
    patient = PhiAccrualDetector(2.0, 100, 0.05, acceptable_pause_s=60.0)
    patient.heartbeat(0.0)
    patient.heartbeat(2.0)
    assert policy.level(patient, 2.0 + 29.99) is Level.WARN
    assert policy.level(patient, 2.0 + 30.0) is Level.DEAD


def test_initdead_grace_before_first_contact() -> None:
    policy = Policy.from_timings(TUTORIAL, start_s=100.0)
    d = detector(TUTORIAL)
    assert policy.level(d, 100.0 + 59.9) is Level.UNKNOWN
    assert policy.level(d, 100.0 + 60.0) is Level.DEAD
    # once heard, the normal rules apply (not initdead)
    d.heartbeat(150.0)
    assert policy.level(d, 150.0 + 1.0) is Level.OK


def test_local_health_stretches_early_verdicts_but_not_deadtime() -> None:
    policy = Policy.from_timings(TUTORIAL, start_s=0.0)
    d, last = regular(TUTORIAL, 30)
    aw = Awareness()
    aw.apply_delta(2)  # multiplier 3
    assert aw.multiplier == 3
    assert first_level_time(policy, d, last, Level.DEAD, aw.multiplier) == pytest.approx(
        18.0, abs=0.011
    )
    aw.apply_delta(100)  # clamped at 7 -> multiplier 8: 48 s, but deadtime caps at 30 s
    assert aw.score == 7
    assert first_level_time(policy, d, last, Level.DEAD, aw.multiplier) == pytest.approx(
        30.0, abs=0.011
    )
    # warntime is a hard point too: an unhealthy node still warns at 10 s
    assert first_level_time(policy, d, last, Level.WARN, aw.multiplier) == pytest.approx(
        10.0, abs=0.011
    )


def test_awareness_is_clamped_and_recovers() -> None:
    aw = Awareness(max_score=4)
    assert aw.apply_delta(-1) is False and aw.score == 0
    assert aw.apply_delta(10) is True and aw.score == 3 and aw.multiplier == 4
    assert aw.scale(1.5) == pytest.approx(6.0)
    for _ in range(3):
        aw.apply_delta(-1)
    assert aw.multiplier == 1


@given(
    st.floats(0.01, 400.0),
    st.floats(-5.0, 1e5),
    st.floats(1e-4, 10.0),
)
def test_phi_crossing_is_where_phi_reaches_the_threshold(
    threshold: float, mean_s: float, std_s: float
) -> None:
    at = phi_crossing_s(threshold, mean_s, std_s)
    assert phi(at, mean_s, std_s) >= threshold
    before = at - max(abs(at), std_s) * 1e-9
    assert phi(before, mean_s, std_s) < threshold


def _level_changes(
    policy: Policy, d: PhiAccrualDetector, now_s: float, mult: float
) -> list[tuple[float, Level]]:
    """Brute force: every level change after now_s, on a 0.5 ms grid up to deadtime."""
    out, level = [], policy.level(d, now_s, mult)
    t = now_s
    while t < now_s + policy.deadtime_s + policy.initdead_s + 0.01:
        t += 0.0005
        new = policy.level(d, t, mult)
        if new is not level:
            out.append((t, new))
            level = new
    return out


@given(
    st.lists(st.floats(0.05, 0.6), min_size=1, max_size=30),
    st.floats(0.0, 1.2),
    st.sampled_from([1.0, 2.0, 3.5]),
)
def test_next_change_is_the_first_level_change(
    intervals: list[float], silence_s: float, mult: float
) -> None:
    policy = Policy.from_timings(NATIVE, 0.0)
    d = detector(NATIVE)
    t = 0.0
    d.heartbeat(t)
    for i in intervals:
        t += i
        d.heartbeat(t)
    now = t + silence_s
    due = policy.next_change_s(d, now, mult)
    changes = _level_changes(policy, d, now, mult)
    if not changes:
        assert due == math.inf
        return
    first_s = changes[0][0]
    # Late only by the rounding margin (a microsecond); early only by the grid's step.
    assert due <= first_s + CROSSING_MARGIN_S + 1e-9
    assert due > first_s - 0.0005 - 1e-9
    assert policy.level(d, due, mult) is not policy.level(d, now, mult) or due <= now
    before = due - 3 * CROSSING_MARGIN_S
    assert policy.level(d, before, mult) is policy.level(d, now, mult) or before <= now


def test_next_change_before_first_contact_is_initdead() -> None:
    policy = Policy.from_timings(NATIVE, 10.0)
    d = detector(NATIVE)
    assert policy.next_change_s(d, 11.0) == pytest.approx(15.0)
    assert policy.level(d, policy.next_change_s(d, 11.0)) is Level.DEAD
    assert policy.next_change_s(d, 15.5) == math.inf
