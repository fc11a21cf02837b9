"""Replay window and incarnations: each packet at most once, nothing from an earlier start."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipha.config.model import AuthKey, AuthMethod
from gossipha.wire.codec import Decoder, Encoder, Packet, cluster_id
from gossipha.wire.keyring import Keyring
from gossipha.wire.reject import Reject, RejectReason
from gossipha.wire.replay import (
    DEFAULT_WINDOW,
    MAX_WINDOW,
    ReplayGuard,
    next_incarnation,
    window_for,
)

R = RejectReason
RING = Keyring((AuthKey(1, AuthMethod.SHA256, b"k"),), active=1)
CLUSTER = cluster_id("c")


def feed(guard: ReplayGuard, inc: int, seq: int) -> RejectReason | None:
    """check then accept, as the decoder does for a packet that is otherwise valid."""
    why = guard.check("a", inc, seq)
    if why is None:
        guard.accept("a", inc, seq)
    return why


def test_in_order_packets_pass_and_duplicates_do_not() -> None:
    g = ReplayGuard(["a"])
    assert [feed(g, 1, s) for s in (1, 2, 3)] == [None, None, None]
    assert [feed(g, 1, s) for s in (1, 2, 3)] == [R.REPLAY] * 3


def test_reordering_within_the_window_is_accepted_once() -> None:
    g = ReplayGuard(["a"], window=64)
    assert feed(g, 1, 1) is None
    assert feed(g, 1, 100) is None
    assert feed(g, 1, 37) is None  # 63 behind: the oldest slot in the window
    assert feed(g, 1, 36) is R.REPLAY  # 64 behind: too old to tell, so refused
    assert feed(g, 1, 99) is None
    assert feed(g, 1, 99) is R.REPLAY
    assert feed(g, 1, 37) is R.REPLAY


def test_nothing_below_the_first_packet_of_an_incarnation_is_accepted() -> None:
    """After our own restart the window is empty: captured packets just below the first one
    we see must not each get in once."""
    g = ReplayGuard(["a"], window=64)
    assert feed(g, 1, 500) is None
    assert [feed(g, 1, s) for s in (499, 480, 437)] == [R.REPLAY] * 3
    assert feed(g, 1, 501) is None


def test_jump_far_ahead_is_accepted_and_bounded() -> None:
    """A gap of 2**63 must not shift a bitmap by 2**63 bits (memory per packet is bounded)."""
    g = ReplayGuard(["a"])
    assert feed(g, 1, 1) is None
    assert feed(g, 1, 2**63) is None
    assert feed(g, 1, 1) is R.REPLAY
    assert feed(g, 1, 2**63 - 1) is None


def test_restart_moves_on_and_the_old_incarnation_is_stale() -> None:
    g = ReplayGuard(["a"])
    assert feed(g, 5, 900) is None
    assert feed(g, 6, 1) is None  # restarted: seq starts over under a higher incarnation
    assert feed(g, 5, 901) is R.STALE_INCARNATION
    assert g.incarnation("a") == 6


def test_guard_refuses_oversized_tables_and_windows() -> None:
    with pytest.raises(ValueError):
        ReplayGuard([f"n{i}" for i in range(2000)])
    with pytest.raises(ValueError):
        ReplayGuard(["a"], window=0)


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 200)), max_size=300))
def test_guard_matches_a_reference_model(events: list[tuple[int, int]]) -> None:
    """Against the obvious definition: accept iff never accepted before, not from an older
    incarnation, above the first accepted of its incarnation, and fewer than `window` behind
    the newest accepted of its incarnation."""
    window = 16
    g = ReplayGuard(["a"], window=window)
    seen: set[tuple[int, int]] = set()
    newest_inc, floor, top = 0, -1, -1
    for inc, seq in events:
        if inc < newest_inc:
            expected: RejectReason | None = R.STALE_INCARNATION
        elif inc > newest_inc:
            expected = None
        elif (inc, seq) in seen or seq <= floor or top - seq >= window:
            expected = R.REPLAY
        else:
            expected = None
        assert feed(g, inc, seq) is expected, (inc, seq)
        if expected is None:
            seen.add((inc, seq))
            if inc > newest_inc:
                newest_inc, floor, top = inc, seq, seq
            else:
                top = max(top, seq)


def test_next_incarnation_rises_even_when_the_clock_goes_back() -> None:
    assert next_incarnation(1_700_000_000_000_000, None) == 1_700_000_000_000_000
    assert next_incarnation(1_700_000_000_000_000, 1_800_000_000_000_000) == 1_800_000_000_000_001
    assert next_incarnation(0, None) == 1


def test_captured_packet_is_refused_now_and_after_the_sender_restarts() -> None:
    dec = Decoder(cluster=CLUSTER, node="b", incarnation=1, senders=("a", "b"), keyring=RING)
    first_run = Encoder(cluster=CLUSTER, node="a", incarnation=1000, keyring=RING)
    captured = first_run.encode({"state": "alive"})
    later = first_run.encode({"state": "alive"})
    assert isinstance(dec.decode(captured, 0.0), Packet)
    assert dec.decode(captured, 1.0) == Reject(R.REPLAY, "a", 1)
    second_run = Encoder(
        cluster=CLUSTER, node="a", incarnation=next_incarnation(900, 1000), keyring=RING
    )
    assert isinstance(dec.decode(second_run.encode({"state": "alive"}), 2.0), Packet)
    assert dec.decode(captured, 3.0) == Reject(R.STALE_INCARNATION, "a", 1)
    # Never received before the restart, but still from the earlier start: refused too.
    assert dec.decode(later, 3.0) == Reject(R.STALE_INCARNATION, "a", 1)


def _rounds_to_b(window: int, peers: int, rounds: int) -> list[Packet | Reject]:
    """A sends every peer one message per round on two links (one counter, as the agent's
    Encoder numbers them); b's copies on `hb` arrive at once, those on `svc` two rounds late.
    Returns what b's decoder made of each of its packets."""
    names = ["a", "b"] + [f"p{i}" for i in range(peers - 1)]
    dec = Decoder(
        cluster=CLUSTER, node="b", incarnation=1, senders=names, keyring=RING, window=window
    )
    enc = Encoder(cluster=CLUSTER, node="a", incarnation=7, keyring=RING)
    results: list[Packet | Reject] = []
    late: list[bytes] = []
    for r in range(rounds):
        for_b: dict[str, bytes] = {}
        for to in names[1:]:
            for link in ("hb", "svc"):
                data = enc.encode({"t": "hb", "to": to, "round": r})
                if to == "b":
                    for_b[link] = data
        results.append(dec.decode(for_b["hb"], float(r)))
        if len(late) == 2:
            results.append(dec.decode(late.pop(0), float(r)))
        late.append(for_b["svc"])
    return results


def test_a_copy_two_rounds_late_on_the_other_link_is_refused_by_a_64_packet_window() -> None:
    """The N = 32 lab's `replay` rejects: one counter over 31 peers and 2 links puts 62
    numbers between b's packets on one link, so a copy two rounds late on the other link
    (a few hundred ms behind on a loaded receiver) is 123 numbers behind: refused."""
    results = _rounds_to_b(DEFAULT_WINDOW, peers=31, rounds=6)
    assert len(results) == 6 + 4
    assert [r.reason for r in results if isinstance(r, Reject)] == [R.REPLAY] * 4


def test_the_window_for_the_cluster_takes_that_copy() -> None:
    window = window_for(links=2, peers=31)
    assert window == 4096
    results = _rounds_to_b(window, peers=31, rounds=6)
    assert len(results) == 6 + 4
    assert all(isinstance(r, Packet) for r in results)


def test_window_for_is_bounded_and_never_below_the_default() -> None:
    assert window_for(1, 1) == DEFAULT_WINDOW
    assert window_for(2, 1) == 128
    assert window_for(4, 1023) == MAX_WINDOW
    assert window_for(0, 0) == DEFAULT_WINDOW


def test_a_wide_window_still_takes_each_packet_once() -> None:
    """Wider is only older: every number is still accepted at most once."""
    g = ReplayGuard(["a"], window=MAX_WINDOW)
    assert feed(g, 1, 10) is None
    assert feed(g, 1, 10 + MAX_WINDOW + 5) is None
    assert feed(g, 1, 10 + 6) is None  # MAX_WINDOW - 1 behind
    assert feed(g, 1, 10 + 6) is R.REPLAY
    assert feed(g, 1, 10 + 5) is R.REPLAY  # MAX_WINDOW behind: too old
    assert feed(g, 1, 10) is R.REPLAY
