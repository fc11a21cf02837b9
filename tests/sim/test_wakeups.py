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

from gossipha.core.node import WAKEUP_FLOOR_S, Node
from gossipha.core.types import Input, LeaseReply, LeaseRequest, MessageReceived, Output, Tick
from gossipha.sim.harness import make_config, native_timings
from gossipha.sim.scenarios import random_schedule

TIMINGS = replace(native_timings(), initdead_s=1.5, failback_delay_s=2.0)
# (members, witnesses, seeds): two nodes (all-peers mode), a witness and three nodes
# (gossip mode, suspicion).
KINDS = [(2, 0, range(0, 24)), (2, 1, range(100, 110)), (3, 0, range(200, 210))]
PROBE_SHARE = 0.3
# Node.step never asks for less than this ahead (no busy loop): a deadline inside
# it is acted on up to this late, by design, so a wakeup at the floor is not probed.
FLOOR_S = WAKEUP_FLOOR_S


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


def _run_schedules(
    members: int, witnesses: int, seeds: range, caught: type[AssertionError]
) -> None:
    """Random fault schedules with the patched step; its complaint names the schedule."""
    config = make_config(members, witnesses=witnesses, timings=TIMINGS)
    for seed in seeds:
        try:
            r = random_schedule(config, seed, loss=0.05, jitter_s=0.02)
        except caught as exc:
            raise AssertionError(
                f"members={members} witnesses={witnesses} seed={seed}: {exc}"
            ) from None
        assert not r.safety, r.safety


@pytest.mark.parametrize(("members", "witnesses", "seeds"), KINDS)
def test_nothing_happens_before_the_wakeup(
    shadowed: list[int], members: int, witnesses: int, seeds: range
) -> None:
    _run_schedules(members, witnesses, seeds, EarlyOutput)
    steps, probes = shadowed
    assert probes > 0.2 * steps  # the shadow really ran


class ShortcutDiffers(AssertionError):
    pass


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Node.step, each lease message also stepped on a copy without the quiet shortcut;
    yields [compared steps, of which the shortcut was taken]."""
    real_step = Node.step
    counts = [0, 0]

    def step(self: Node, now_s: float, event: Input) -> Output:
        if not (
            isinstance(event, MessageReceived)
            and isinstance(event.message, LeaseRequest | LeaseReply)
        ):
            return real_step(self, now_s, event)
        twin = copy.deepcopy(self, {id(self.config): self.config})
        twin.quiet_shortcut = False
        wake_before_s = self._wakeup_s
        out = real_step(self, now_s, event)
        full = real_step(twin, now_s, event)
        counts[0] += 1
        counts[1] += out.next_wakeup_s == wake_before_s
        if (out.sends, out.actions, out.notices) != (full.sends, full.actions, full.notices):
            raise ShortcutDiffers(f"{self.name} at {now_s:.6f} {event}: {out} != {full}")
        # The shortcut keeps the earlier wakeup: never later than the full step's.
        if out.next_wakeup_s > full.next_wakeup_s + 1e-9:
            raise ShortcutDiffers(f"{self.name} at {now_s:.6f} {event}: wakes later: {out} {full}")
        return out

    monkeypatch.setattr(Node, "step", step)
    yield counts


@pytest.mark.parametrize(("members", "witnesses", "seeds"), KINDS)
def test_the_quiet_shortcut_changes_no_output(
    compared: list[int], members: int, witnesses: int, seeds: range
) -> None:
    """A duplicate lease reply, or a request while idle, skips the rest of the step: the
    sends, actions and notices are those of the full step."""
    _run_schedules(members, witnesses, seeds[:6], ShortcutDiffers)
    steps, shortcuts = compared
    assert shortcuts > 0.2 * steps  # the shortcut was really taken
