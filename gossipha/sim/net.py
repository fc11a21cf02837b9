"""The fake network: per-path loss, delay, jitter, duplication and cuts, from one seeded rng.

Two networks are modelled: the heartbeat network (messages between agents) and the service
network (where the VIP lives, so where a duplicate-address probe is heard). Cuts are per
directed pair, so asymmetric partitions are one call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class PathOptions:
    loss: float = 0.0
    delay_s: float = 0.0005
    jitter_s: float = 0.0
    duplicate: float = 0.0


@dataclass(slots=True)
class FakeNet:
    rng: random.Random
    default: PathOptions = field(default_factory=PathOptions)
    paths: dict[tuple[str, str], PathOptions] = field(default_factory=dict)
    cut: set[tuple[str, str]] = field(default_factory=set)  # heartbeat network
    service_cut: set[tuple[str, str]] = field(default_factory=set)

    def options(self, src: str, dst: str) -> PathOptions:
        return self.paths.get((src, dst), self.default)

    def deliveries(self, src: str, dst: str) -> list[float]:
        """Delays (seconds) of the copies of one message that arrive; [] when dropped."""
        if (src, dst) in self.cut:
            return []
        opt = self.options(src, dst)
        out = []
        copies = 2 if opt.duplicate and self.rng.random() < opt.duplicate else 1
        for _ in range(copies):
            if opt.loss and self.rng.random() < opt.loss:
                continue
            out.append(opt.delay_s + (self.rng.uniform(0.0, opt.jitter_s) if opt.jitter_s else 0.0))
        return out

    def partition(
        self, side_a: list[str], side_b: list[str], *, symmetric: bool = True, service: bool = False
    ) -> None:
        for a in side_a:
            for b in side_b:
                self.cut.add((a, b))
                if symmetric:
                    self.cut.add((b, a))
                if service:
                    self.service_cut.add((a, b))
                    self.service_cut.add((b, a))

    def heal(self) -> None:
        self.cut.clear()
        self.service_cut.clear()
        self.paths.clear()

    def service_connected(self, a: str, b: str) -> bool:
        return (a, b) not in self.service_cut and (b, a) not in self.service_cut
