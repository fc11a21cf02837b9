"""Per-node clocks: local = offset + rate * real, rate within the drift bound."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Clock:
    """A monotonic local clock that runs at `rate` (1 +- max_drift) of real time."""

    rate: float = 1.0
    offset_s: float = 0.0

    def local(self, real_s: float) -> float:
        return self.offset_s + self.rate * real_s

    def real(self, local_s: float) -> float:
        return (local_s - self.offset_s) / self.rate

    def set_rate(self, real_s: float, rate: float) -> None:
        """Change speed at `real_s` without a jump: local time stays continuous."""
        here = self.local(real_s)
        self.rate = rate
        self.offset_s = here - rate * real_s
