"""`Output.next_wakeup_s` is exact: a Tick before it changes nothing a peer or operator sees.

The core is only stepped when an input arrives or its wakeup comes (docs/design.md,
"Wake-ups"), so a deadline it forgot to name would be acted on late. Here every step of
seeded random fault schedules is shadowed: a copy of the node is stepped with a Tick at a
random time between the step and its wakeup, and must emit no send, action or notice.
(Before the exact wakeups, the core polled every keepalive/4: a crossing between two polls
was acted on up to 50 ms late, and this test fails on that code.)
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gossipha.core.node import Node
from gossipha.core.types import Input, Output, Tick
from gossipha.sim.harness import make_config, native_timings
from gossipha.sim.scenarios import random_schedule

TIMINGS = replace(native_timings(), initdead_s=1.5, failback_delay_s=2.0)
# (members, witnesses, seeds): two nodes (all-peers mode), a witness and three nodes
# (gossip mode, suspicion).
KINDS = [(2, 0, range(0, 24)), (2, 1, range(100, 110)), (3, 0, range(200, 210))]
PROBE_SHARE = 0.3
# Node._next_wakeup never asks for less than this ahead (no busy loop): a deadline inside
# it is acted on up to this late, by design, so a wakeup at the floor is not probed.
FLOOR_S = 1e-3


class EarlyOutput(AssertionError):
    pass


@pytest.fixture
def shadowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Node.step, shadowed by a probe Tick before each wakeup; yields [steps, probes]."""
    real_step = Node.step
    rng = random.Random(7)
    counts = [0, 0]

    def step(self: Node, now_s: float, event: Input) -> Output:
        out = real_step(self, now_s, event)
        counts[0] += 1
        wake_s = out.next_wakeup_s
        if wake_s > now_s + FLOOR_S * 1.000001 and rng.random() < PROBE_SHARE:
            counts[1] += 1
            probe_s = rng.uniform(now_s, wake_s)
            if probe_s >= wake_s:
                return out
            twin = copy.deepcopy(self, {id(self.config): self.config})
            early = real_step(twin, probe_s, Tick())
            if early.sends or early.actions or early.notices:
                raise EarlyOutput(
                    f"{self.name}: stepped at {now_s:.6f} ({type(event).__name__}) asked to "
                    f"wake at {wake_s:.6f}, but a Tick at {probe_s:.6f} gives "
                    f"{early.notices} {early.actions} "
                    f"{[type(s.message).__name__ for s in early.sends]}"
                )
        return out

    monkeypatch.setattr(Node, "step", step)
    yield counts


@pytest.mark.parametrize(("members", "witnesses", "seeds"), KINDS)
def test_nothing_happens_before_the_wakeup(
    shadowed: list[int], members: int, witnesses: int, seeds: range
) -> None:
    config = make_config(members, witnesses=witnesses, timings=TIMINGS)
    for seed in seeds:
        try:
            r = random_schedule(config, seed, loss=0.05, jitter_s=0.02)
        except EarlyOutput as exc:
            raise AssertionError(
                f"members={members} witnesses={witnesses} seed={seed}: {exc}"
            ) from None
        assert not r.safety, r.safety
    steps, probes = shadowed
    assert probes > 0.2 * steps  # the shadow really ran
