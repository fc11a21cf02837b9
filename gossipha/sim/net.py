"""The fake network: per-path loss, delay, jitter, duplication, late copies and cuts, from
one seeded rng.

Two networks are modelled: the heartbeat network (messages between agents) and the service
network (where the VIP lives, so where a duplicate-address probe is heard). Cuts are per
directed pair, so asymmetric partitions are one call. `cut` and `service_cut` are the cuts a
test sets by hand; `hold` adds counted cuts that a fault script takes back with `release`,
so overlapping faults that cut the same pair do not heal each other.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

Pair = tuple[str, str]


@dataclass(slots=True)
class PathOptions:
    loss: float = 0.0
    delay_s: float = 0.0005
    jitter_s: float = 0.0
    duplicate: float = 0.0
    # A copy is held back by up to `late_s` more with this probability: reordered past
    # renewals, retries and whole leases (a congested switch, a paused hypervisor).
    late: float = 0.0
    late_s: float = 0.0


@dataclass(slots=True)
class FakeNet:
    rng: random.Random
    default: PathOptions = field(default_factory=PathOptions)
    paths: dict[Pair, PathOptions] = field(default_factory=dict)
    cut: set[Pair] = field(default_factory=set)  # heartbeat network
    service_cut: set[Pair] = field(default_factory=set)
    _held: Counter[Pair] = field(default_factory=Counter)
    _held_service: Counter[Pair] = field(default_factory=Counter)

    def options(self, src: str, dst: str) -> PathOptions:
        return self.paths.get((src, dst), self.default)

    def deliveries(self, src: str, dst: str) -> list[float]:
        """Delays (seconds) of the copies of one message that arrive; [] when dropped."""
        if (src, dst) in self.cut or self._held[(src, dst)] > 0:
            return []
        opt = self.options(src, dst)
        out = []
        copies = 2 if opt.duplicate and self.rng.random() < opt.duplicate else 1
        for _ in range(copies):
            if opt.loss and self.rng.random() < opt.loss:
                continue
            delay = opt.delay_s + (self.rng.uniform(0.0, opt.jitter_s) if opt.jitter_s else 0.0)
            if opt.late and self.rng.random() < opt.late:
                delay += self.rng.uniform(0.0, opt.late_s)
            out.append(delay)
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

    def hold(self, pairs: list[Pair], service: list[Pair]) -> None:
        """Cut `pairs` (heartbeat network, directed) and `service` pairs until `release`."""
        self._held.update(pairs)
        self._held_service.update(service)

    def release(self, pairs: list[Pair], service: list[Pair]) -> None:
        """Take back one `hold` of the same pairs; a pair another hold cut stays cut."""
        self._held.subtract(pairs)
        self._held_service.subtract(service)

    def heal(self) -> None:
        self.cut.clear()
        self.service_cut.clear()
        self.paths.clear()
        self._held.clear()
        self._held_service.clear()

    def service_connected(self, a: str, b: str) -> bool:
        return (
            (a, b) not in self.service_cut
            and (b, a) not in self.service_cut
            and self._held_service[(a, b)] <= 0
            and self._held_service[(b, a)] <= 0
        )
