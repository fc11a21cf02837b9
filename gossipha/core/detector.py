"""Phi-accrual failure detection for one arrival stream (a peer on a link, or a peer overall).

Hayashibara et al. 2004, with Akka's logistic approximation of the normal CDF. The detector
only measures suspicion (phi) from a bounded window of inter-arrival times; `Policy` turns
phi and silence into a `Level` using Heartbeat's timings (docs/failure-detection.md):

- WARN when stretched phi >= phi_warn (and at least `WARN_FLOOR_BEATS` keepalives of
  silence), or unconditionally once silence >= warntime.
- DEAD when stretched phi >= phi_dead (and at least `DEAD_FLOOR_BEATS` keepalives of
  silence), or unconditionally once silence >= deadtime: deadtime is a hard cap.
- Before the first arrival, nothing is judged until `initdead` after our start; then DEAD.

"Stretched" means phi is evaluated at silence / multiplier, the local-health multiplier of
`awareness.Awareness`: a starved node is slow to accuse, but never later than deadtime.

Public API::

    phi(elapsed_s, mean_s, std_s) -> float
    silence_for_phi(threshold, mean_s, std_s) -> float
    phi_crossing_s(threshold, mean_s, std_s) -> float       # closed form, phi(.) >= threshold
    phi_crossing_y(threshold) -> float                      # the same, standardized
    class Level(enum.Enum): OK, WARN, DEAD, UNKNOWN
    class PhiAccrualDetector:
        __init__(keepalive_s, window, min_std_s, acceptable_pause_s)
        heartbeat(now_s) -> None
        phi(now_s) -> float; silence_s(now_s) -> float | None
        crossing_s(threshold) -> float    # silence at which phi_at reaches it (cached)
        mean_s, std_s, samples, last_s (properties)
    class Policy:  (frozen) from_timings(timings, start_s)
        level(detector, now_s, multiplier=1.0) -> Level
        next_change_s(detector, now_s, multiplier=1.0) -> float  # when level() may change
"""

from __future__ import annotations

import enum
import functools
import math
from collections import deque
from dataclasses import dataclass

from gossipha.config.model import Timings

# Akka's logistic fit of the standard normal CDF: Phi(y) ~= 1 / (1 + exp(-y*(A + B*y^2))).
_A = 1.5976
_B = 0.070566
_LN10 = math.log(10.0)

# Phi-based (early) verdicts need this many keepalive intervals of silence, so one or two
# lost UDP packets never accuse a peer whose arrivals were very regular (tiny std).
WARN_FLOOR_BEATS = 2.0
DEAD_FLOOR_BEATS = 3.0
# `next_change_s` answers this much after the computed crossing: then `now_s - last_s` is
# past it whatever the rounding of the subtraction (a microsecond is no delay).
CROSSING_MARGIN_S = 1e-6


def phi(elapsed_s: float, mean_s: float, std_s: float) -> float:
    """-log10 P(next arrival later than elapsed), arrivals ~ Normal(mean, std).

    With a = y*(A + B*y^2), y = (elapsed - mean)/std, the tail is 1/(1 + e^a), so
    phi = log10(1 + e^a). Computed as a softplus so it never overflows; it is continuous
    and strictly increasing in elapsed (da/dy = A + 3*B*y^2 > 0).
    """
    assert std_s > 0.0, "std must be positive"
    y = (elapsed_s - mean_s) / std_s
    a = y * (_A + _B * y * y)
    softplus = a + math.log1p(math.exp(-a)) if a > 0.0 else math.log1p(math.exp(a))
    return softplus / _LN10


def silence_for_phi(threshold: float, mean_s: float, std_s: float) -> float:
    """The elapsed time at which phi reaches `threshold` (bisection; used for docs/deadlines)."""
    assert threshold > 0.0
    lo, hi = mean_s - 40.0 * std_s, mean_s + 40.0 * std_s
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if phi(mid, mean_s, std_s) < threshold:
            lo = mid
        else:
            hi = mid
    return hi


def phi_crossing_s(threshold: float, mean_s: float, std_s: float) -> float:
    """The smallest elapsed time found at which `phi` is at least `threshold`, in closed form.

    phi = log10(1 + e^a) inverts to a = ln(10^threshold - 1), and a = y*(A + B*y^2) is a
    cubic with one real root y (A, B > 0; `phi_crossing_y`), so the answer is
    mean + y*std, nudged up until `phi` agrees: a wakeup at this silence never finds phi a
    rounding error short.
    """
    assert std_s > 0.0
    elapsed = mean_s + phi_crossing_y(threshold) * std_s
    step = max(abs(elapsed), std_s) * 1e-12
    for _ in range(64):
        if phi(elapsed, mean_s, std_s) >= threshold:
            break
        elapsed += step
        step *= 2.0
    return elapsed


@functools.cache
def phi_crossing_y(threshold: float) -> float:
    """The standardized silence y = (elapsed - mean)/std at which phi reaches `threshold`
    (cached: a cluster has two thresholds, and every detector asks)."""
    assert threshold > 0.0
    x = threshold * _LN10
    a = x + math.log(-math.expm1(-x))  # ln(e^x - 1), without overflow for large x
    # y^3 + p*y + q = 0 with p = A/B > 0, q = -a/B (Cardano, one real root).
    p, q = _A / _B, -a / _B
    root = math.sqrt(q * q / 4.0 + p * p * p / 27.0)
    return math.cbrt(-q / 2.0 + root) + math.cbrt(-q / 2.0 - root)


class Level(enum.Enum):
    """What one detector says about its stream right now."""

    UNKNOWN = "unknown"  # never heard, still within initdead
    OK = "ok"
    WARN = "warn"
    DEAD = "dead"


class PhiAccrualDetector:
    """Bounded window of inter-arrival times for one stream; phi from their mean and std.

    The window starts seeded with two intervals, keepalive -/+ keepalive/4 (Akka's
    first-heartbeat-estimate), so the first verdicts assume the configured rhythm.
    """

    __slots__ = (
        "_acceptable_pause_s",
        "_crossings",
        "_intervals",
        "_last_s",
        "_min_std_s",
        "_sum",
        "_sum_sq",
        "_window",
        "samples",
    )

    def __init__(
        self,
        keepalive_s: float,
        window: int,
        min_std_s: float,
        acceptable_pause_s: float = 0.0,
    ) -> None:
        assert keepalive_s > 0.0 and window >= 2 and min_std_s > 0.0
        assert acceptable_pause_s >= 0.0
        self._window = window
        self._min_std_s = min_std_s
        self._acceptable_pause_s = acceptable_pause_s
        self._intervals: deque[float] = deque()
        self._sum = 0.0
        self._sum_sq = 0.0
        self._last_s: float | None = None
        # phi threshold -> silence at which phi_at reaches it; valid until the window moves.
        self._crossings: dict[float, float] = {}
        # Real arrivals seen (the two seed intervals are not counted).
        self.samples = 0
        std = keepalive_s / 4.0
        self._push(keepalive_s - std)
        self._push(keepalive_s + std)

    def _push(self, interval_s: float) -> None:
        if len(self._intervals) >= self._window:
            old = self._intervals.popleft()
            self._sum -= old
            self._sum_sq -= old * old
        self._intervals.append(interval_s)
        self._sum += interval_s
        self._sum_sq += interval_s * interval_s
        self._crossings.clear()

    def heartbeat(self, now_s: float, learn: bool = True) -> None:
        """Record an arrival; a non-increasing timestamp is a caller bug.

        `learn=False` restarts the rhythm without sampling the gap: an arrival that ends an
        outage must not teach the window that outages are normal (it would make phi lax
        for the next `window` arrivals).
        """
        if self._last_s is not None:
            assert now_s >= self._last_s, "time went backwards"
            interval = now_s - self._last_s
            if interval > 0.0 and learn:
                self._push(interval)
        self._last_s = now_s
        self.samples += 1

    @property
    def last_s(self) -> float | None:
        return self._last_s

    @property
    def mean_s(self) -> float:
        """Mean inter-arrival time of the window (without the acceptable pause)."""
        return self._sum / len(self._intervals)

    @property
    def std_s(self) -> float:
        """Population std of the window, floored at min_std (regular streams get min_std)."""
        n = len(self._intervals)
        mean = self._sum / n
        var = max(0.0, self._sum_sq / n - mean * mean)
        return max(math.sqrt(var), self._min_std_s)

    def silence_s(self, now_s: float) -> float | None:
        return None if self._last_s is None else max(0.0, now_s - self._last_s)

    def phi_at(self, silence_s: float) -> float:
        return phi(silence_s, self.mean_s + self._acceptable_pause_s, self.std_s)

    def phi(self, now_s: float) -> float:
        """Current suspicion; 0.0 before the first arrival."""
        silence = self.silence_s(now_s)
        return 0.0 if silence is None else self.phi_at(silence)

    def crossing_s(self, threshold: float) -> float:
        """The silence at which `phi_at` reaches `threshold` (phi_at(it) >= threshold)."""
        known = self._crossings.get(threshold)
        if known is None:
            mean_s = self.mean_s + self._acceptable_pause_s
            known = self._crossings[threshold] = phi_crossing_s(threshold, mean_s, self.std_s)
        return known


@dataclass(frozen=True, slots=True)
class Policy:
    """Heartbeat's timings applied to a detector: phi decides early, silence caps."""

    keepalive_s: float
    warntime_s: float
    deadtime_s: float
    initdead_s: float
    phi_warn: float
    phi_dead: float
    start_s: float

    @classmethod
    def from_timings(cls, timings: Timings, start_s: float) -> Policy:
        return cls(
            keepalive_s=timings.keepalive_s,
            warntime_s=timings.warntime_s,
            deadtime_s=timings.deadtime_s,
            initdead_s=timings.initdead_s,
            phi_warn=timings.phi_warn,
            phi_dead=timings.phi_dead,
            start_s=start_s,
        )

    def level(self, detector: PhiAccrualDetector, now_s: float, multiplier: float = 1.0) -> Level:
        """The verdict now; `multiplier` >= 1 stretches only the phi-based early verdicts."""
        assert multiplier >= 1.0
        silence = detector.silence_s(now_s)
        if silence is None:
            if now_s - self.start_s >= self.initdead_s:
                return Level.DEAD
            return Level.UNKNOWN
        if silence >= self.deadtime_s:
            return Level.DEAD
        stretched = silence / multiplier
        if (
            stretched >= DEAD_FLOOR_BEATS * self.keepalive_s
            and detector.phi_at(stretched) >= self.phi_dead
        ):
            return Level.DEAD
        if silence >= self.warntime_s:
            return Level.WARN
        if (
            stretched >= WARN_FLOOR_BEATS * self.keepalive_s
            and detector.phi_at(stretched) >= self.phi_warn
        ):
            return Level.WARN
        return Level.OK

    def next_change_s(
        self, detector: PhiAccrualDetector, now_s: float, multiplier: float = 1.0
    ) -> float:
        """When `level(detector, t, multiplier)` may next differ from its value at `now_s`,
        with no arrival meanwhile (inf: never). Silence only grows, so the level only rises:
        DEAD from silence `min(deadtime, multiplier * max(floor, phi_dead crossing))`, WARN
        likewise. A time already past means "now": the caller wakes at once (rounding)."""
        assert multiplier >= 1.0
        last_s = detector.last_s
        if last_s is None:
            end_s = self.start_s + self.initdead_s + CROSSING_MARGIN_S
            return end_s if now_s < end_s else math.inf
        dead = max(DEAD_FLOOR_BEATS * self.keepalive_s, detector.crossing_s(self.phi_dead))
        warn = max(WARN_FLOOR_BEATS * self.keepalive_s, detector.crossing_s(self.phi_warn))
        warn_s = min(self.warntime_s, multiplier * warn)
        dead_s = min(self.deadtime_s, multiplier * dead)
        silence = now_s - last_s
        if silence >= dead_s:
            return math.inf
        if silence >= warn_s or warn_s >= dead_s:
            return last_s + dead_s + CROSSING_MARGIN_S
        return last_s + warn_s + CROSSING_MARGIN_S
