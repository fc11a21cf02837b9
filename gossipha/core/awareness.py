"""Local health (Lifeguard's "awareness", memberlist awareness.go) as a pure value holder.

A node whose own event loop lags or misses sends is the likeliest to misjudge others: its
heartbeats go out late and its view of arrivals is delayed. The score counts such signs,
clamped to [0, max_score - 1]; healthy intervals lower it. `multiplier = score + 1`
stretches this node's phi-based early accusations and suspicion timeouts, never the
deadtime hard cap (docs/failure-detection.md).

Public API::

    class Awareness:
        __init__(max_score: int = DEFAULT_MAX_SCORE)
        apply_delta(delta: int) -> bool      # True when the score changed
        score: int; multiplier: int          # properties
        scale(timeout_s: float) -> float     # timeout_s * multiplier
"""

from __future__ import annotations

DEFAULT_MAX_SCORE = 8


class Awareness:
    """Clamped integer health score; 0 is healthy."""

    __slots__ = ("_max_score", "_score")

    def __init__(self, max_score: int = DEFAULT_MAX_SCORE) -> None:
        assert max_score >= 1
        self._max_score = max_score
        self._score = 0

    def apply_delta(self, delta: int) -> bool:
        """Raise (positive) or lower the score, clamped; report whether it moved."""
        before = self._score
        self._score = min(self._max_score - 1, max(0, self._score + delta))
        return self._score != before

    @property
    def score(self) -> int:
        return self._score

    @property
    def multiplier(self) -> int:
        return self._score + 1

    def scale(self, timeout_s: float) -> float:
        return timeout_s * self.multiplier
