"""The handover fast path (docs/design.md, "Handover"): act on a release, skip the probe
only on a majority lease plus a fresh release of the latest epoch.

Claim/Voter pieces are pure; the node rules run two or three agents on the simulator
without drift or loss (tests/sim/test_handover.py has the seeds with faults).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from gossipha.core.lease import Claim, Voter
from gossipha.core.types import LeaseRelease, LeaseReply, LeaseRequest, ProbeVip
from gossipha.sim.harness import Sim, make_config, native_timings

TIMINGS = replace(native_timings(), initdead_s=1.5, failback_delay_s=2.0)
STOP_S = 0.3  # how long the runtime takes to stop nginx and remove the VIP


# ------------------------------------------------------------------ pure pieces


def test_holder_released_re_asks_at_once_but_counts_nothing() -> None:
    claim = Claim("g0", 3, ("n0", "n1"), 1.0, 0.01, 0.0)
    claim.request(0.0, "n0", 1)
    claim.request(0.0, "n1", 2)
    claim.on_reply(0.0, "n0", LeaseReply("g0", 3, 1, False, "n0", 2, 0.8))
    claim.on_reply(0.0, "n1", LeaseReply("g0", 3, 2, False, "n0", 2, 0.8))
    assert claim.due(0.01) == []  # retry time not reached
    assert claim.refused_for_other(0.01) == ("n0", "n1")
    claim.holder_released(0.01, "n0")
    assert claim.due(0.01) == ["n0", "n1"]
    assert claim.refused_for_other(0.01) == ()
    assert claim.busy_until_s() == float("-inf")
    assert claim.valid_until_s() == float("-inf"), "a release is not a grant"


def test_holder_released_keeps_refusals_naming_someone_else() -> None:
    claim = Claim("g0", 3, ("n0", "n1", "n2"), 1.0, 0.01, 0.0)
    claim.request(0.0, "n2", 1)
    claim.on_reply(0.0, "n2", LeaseReply("g0", 3, 1, False, "n1", 2, 0.8))
    claim.holder_released(0.01, "n0")
    assert claim.refused_for_other(0.01) == ("n2",)


def test_voter_max_owner_follows_grants_and_releases() -> None:
    v = Voter(1.0, 0.01, -10.0)
    v.on_request(0.0, "n0", LeaseRequest("g0", 2, 1))
    assert (v.max_epoch("g0"), v.max_owner("g0")) == (2, "n0")
    v.on_release(0.1, "n0", "g0", 2)
    assert (v.max_epoch("g0"), v.max_owner("g0")) == (2, None)
    assert v.max_owner("other") is None


# ------------------------------------------------------------------ two or three agents


def _sim(seed: int, *, witnesses: int = 0, members: int = 2) -> Sim:
    sim = Sim(
        make_config(members, witnesses=witnesses, timings=TIMINGS),
        seed,
        drift=False,
        action_delay_s=STOP_S,
        roundtrip=True,
    )
    sim.run_until(6.0)
    assert sim.holders("g0") == ["n0"], sim.trace
    return sim


def _watch(sim: Sim, keep: Callable[[str, str, Any], bool] | None = None) -> dict[str, Any]:
    """Record releases and probes (real times); drop messages `keep` rejects."""
    seen: dict[str, Any] = {"release_s": [], "probes": []}
    send, perform = sim._send, sim._perform

    def _send(src: str, dst: str, message: Any) -> None:
        if isinstance(message, LeaseRelease) and not message.unused:
            seen["release_s"].append(sim.now_s)
        if keep is None or keep(src, dst, message):
            send(src, dst, message)

    def _perform(h: Any, out: Any) -> None:
        seen["probes"] += [(sim.now_s, h.name) for a in out.actions if isinstance(a, ProbeVip)]
        perform(h, out)

    sim._send = _send  # type: ignore[method-assign]
    sim._perform = _perform  # type: ignore[method-assign]
    return seen


def _first_start(sim: Sim, host: str, after_s: float) -> float:
    starts = [t for t, h, _, _ in sim.stats.starts if h == host and t >= after_s]
    assert starts, sim.trace
    return starts[0]


def test_graceful_stop_successor_starts_on_the_release_without_probe() -> None:
    for witnesses in (0, 1):
        sim = _sim(11, witnesses=witnesses)
        seen = _watch(sim)
        t0 = sim.now_s
        sim.graceful_stop("n0")
        sim.run_until(t0 + 2.0)
        assert sim.holders("g0") == ["n1"]
        release_s = seen["release_s"][0]
        start_s = _first_start(sim, "n1", t0)
        assert start_s >= release_s, "never before the old holder's stop succeeded"
        assert start_s - release_s < 0.01, "one round trip after the release, no lease wait"
        assert not [p for p in seen["probes"] if p[1] == "n1" and p[0] >= t0]
        assert not sim.violations


def test_slow_stop_longer_than_a_lease_still_hands_over_on_the_release() -> None:
    sim = _sim(12)
    sim.action_delay_s = 1.6  # the attempt times out and backs off while n0 stops
    seen = _watch(sim)
    t0 = sim.now_s
    sim.graceful_stop("n0")
    sim.run_until(t0 + 3.0)
    assert sim.holders("g0") == ["n1"]
    assert _first_start(sim, "n1", t0) - seen["release_s"][0] < 0.01
    assert not sim.violations


def test_failback_hands_back_on_the_release_without_probe() -> None:
    sim = _sim(13)
    sim.set_ping("n0", False)
    sim.run_until(sim.now_s + 3.0)
    assert sim.holders("g0") == ["n1"]
    seen = _watch(sim)
    t0 = sim.now_s
    sim.set_ping("n0", True)
    sim.run_until(t0 + 8.0)
    assert sim.holders("g0") == ["n0"]
    start_s = _first_start(sim, "n0", t0)
    release_s = next(t for t in seen["release_s"] if t >= t0)
    assert 0 <= start_s - release_s < 0.01
    assert not [p for p in seen["probes"] if p[1] == "n0" and p[0] >= t0]
    assert not sim.violations


def test_lost_release_falls_back_to_waiting_out_the_lease_and_probing() -> None:
    sim = _sim(14)
    seen = _watch(sim, keep=lambda s, d, m: not isinstance(m, LeaseRelease))
    t0 = sim.now_s
    sim.graceful_stop("n0")
    sim.run_until(t0 + 4.0)
    assert sim.holders("g0") == ["n1"]
    start_s = _first_start(sim, "n1", t0)
    assert [p for p in seen["probes"] if p[1] == "n1" and t0 <= p[0] < start_s]
    assert start_s - t0 > TIMINGS.lease_s * 0.5, "waited for the promises to run out"
    assert not sim.violations


def test_stale_or_unused_release_never_skips_the_probe() -> None:
    """n0's host crashes (no release); a delayed release of an earlier epoch, and an unused
    one, arrive at n1: it takes over the old way, with a probe (with a witness, so n1 gets
    a majority lease and the probe is the fast path's choice, not the two-node rule's)."""
    for epoch_back, unused in ((1, False), (0, True)):
        sim = _sim(15, witnesses=1)
        seen = _watch(sim)
        h = sim.hosts["n0"].node
        assert h is not None
        epoch = h.epoch("g0")
        t0 = sim.now_s
        sim.crash_host("n0")
        msg = LeaseRelease("g0", epoch - epoch_back, unused) if epoch > epoch_back else None
        if msg is not None:
            for dt in (0.01, 0.5, 1.0):
                sim.at(t0 + dt, partial(sim._arrive, "n0", "n1", msg))
        sim.run_until(t0 + 5.0)
        assert sim.holders("g0") == ["n1"]
        start_s = _first_start(sim, "n1", t0)
        assert [p for p in seen["probes"] if p[1] == "n1" and t0 <= p[0] < start_s]
        assert not sim.violations


def test_three_members_release_with_duplicates_one_holder() -> None:
    sim = _sim(16, members=3)
    seen = _watch(sim)
    t0 = sim.now_s
    sim.graceful_stop("n0")
    sim.run_until(t0 + 2.0)
    assert sim.holders("g0") == ["n1"]
    assert _first_start(sim, "n1", t0) - seen["release_s"][0] < 0.01
    assert not sim.violations


def test_only_a_used_release_of_the_latest_epoch_is_kept() -> None:
    """The record `_released_to_us` relies on (private state: the rule, not a behaviour that
    the alive and age guards would mask)."""
    sim = _sim(17, witnesses=1)
    n0, n1 = sim.hosts["n0"].node, sim.hosts["n1"].node
    assert n0 is not None and n1 is not None
    epoch = n0.epoch("g0")
    assert epoch >= 1  # a release of an older epoch (even 0, none) is not kept
    for msg in (LeaseRelease("g0", epoch - 1), LeaseRelease("g0", epoch, unused=True)):
        sim._arrive("n0", "n1", msg)
        assert n1._groups["g0"].release is None, msg
    sim._arrive("w0", "n1", LeaseRelease("g0", epoch))  # not the node that held it
    assert n1._groups["g0"].release is None
    sim._arrive("n0", "n1", LeaseRelease("g0", epoch))
    kept = n1._groups["g0"].release
    assert kept is not None and kept[:2] == ("n0", epoch)


def test_a_holder_stays_unreleased_until_its_own_release_of_that_epoch() -> None:
    """The record behind the fast path's last clause: a node whose status showed it
    holding may have its VIP up until it releases that epoch (a status drops the group
    when the stop begins, not when the VIP is down)."""
    sim = _sim(18, witnesses=1)
    n0, n1 = sim.hosts["n0"].node, sim.hosts["n1"].node
    assert n0 is not None and n1 is not None
    epoch = n0.epoch("g0")
    assert n1._groups["g0"].unreleased == {"n0": epoch}
    for src, msg in (
        ("n0", LeaseRelease("g0", epoch - 1)),  # an older epoch
        ("n0", LeaseRelease("g0", epoch, unused=True)),  # never started: proves nothing
        ("w0", LeaseRelease("g0", epoch)),  # not the node that held it
    ):
        sim._arrive(src, "n1", msg)
        assert n1._groups["g0"].unreleased == {"n0": epoch}, (src, msg)
    sim._arrive("n0", "n1", LeaseRelease("g0", epoch))
    assert n1._groups["g0"].unreleased == {}


def test_a_node_that_never_released_makes_the_successor_probe() -> None:
    """Swarm seed 18,283: n1 saw n2 hold the group at an earlier epoch and never release
    it (n2 paused with its VIP up, then resumed into a slow stop while n1 still judged it
    alive). On n0's release n1 must probe, not trust the release alone; with n2's VIP
    down the probe is silent and n1 takes over."""
    sim = _sim(19, members=3)
    n1 = sim.hosts["n1"].node
    assert n1 is not None
    n1._groups["g0"].unreleased["n2"] = 1
    seen = _watch(sim)
    t0 = sim.now_s
    sim.graceful_stop("n0")
    sim.run_until(t0 + 3.0)
    assert sim.holders("g0") == ["n1"]
    start_s = _first_start(sim, "n1", t0)
    release_s = next(t for t in seen["release_s"] if t >= t0)
    assert [p for p in seen["probes"] if p[1] == "n1" and release_s <= p[0] < start_s]
    assert not sim.violations
