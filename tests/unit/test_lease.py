"""The lease rules (gossipha/core/lease.py, docs/design.md "The lease"), one by one."""

from __future__ import annotations

import itertools

import pytest

from gossipha.core.lease import (
    STOP_GUARD_FRACTION,
    Claim,
    Voter,
    holder_span_s,
    majority,
    voter_span_s,
)
from gossipha.core.types import GroupName, LeaseReply, LeaseRequest, NodeId

G = GroupName("g0")
A, B, C = NodeId("a"), NodeId("b"), NodeId("c")
LEASE, RHO = 1.0, 0.01


def _voter() -> Voter:
    return Voter(LEASE, RHO, start_s=-10.0)  # long past its start-up quiet period


def test_voter_refuses_a_second_holder_while_a_promise_runs() -> None:
    v = _voter()
    assert v.on_request(0.0, A, LeaseRequest(G, 1, 1)).granted
    r = v.on_request(0.5, B, LeaseRequest(G, 2, 1))
    assert not r.granted and r.holder == A
    assert r.busy_s == pytest.approx(voter_span_s(LEASE, RHO) - 0.5)
    # Just before the promise ends on the voter's clock: still refused; then free.
    assert not v.on_request(voter_span_s(LEASE, RHO) - 1e-9, B, LeaseRequest(G, 2, 2)).granted
    assert v.on_request(voter_span_s(LEASE, RHO), B, LeaseRequest(G, 2, 3)).granted
    assert v.promised(voter_span_s(LEASE, RHO), G) == B


def test_voter_promise_is_at_least_a_lease_of_real_time() -> None:
    assert voter_span_s(LEASE, RHO) == pytest.approx(LEASE * (1 + RHO))
    # A voter clock running fast by the full bound still promises >= lease_s real seconds.
    assert voter_span_s(LEASE, RHO) / (1 + RHO) >= LEASE - 1e-12


def test_holder_stops_before_its_lease_can_lapse_at_any_voter_with_drift() -> None:
    """For every clock rate pair within the bound and any delay, the holder's last instant
    (send + holder span, on its clock, minus nothing) is earlier in real time than the
    voter's promise end (receipt + voter span, on its clock), by at least the stop guard."""
    span_h, span_v = holder_span_s(LEASE, RHO), voter_span_s(LEASE, RHO)
    assert span_h == pytest.approx(LEASE * (1 - RHO) - LEASE * STOP_GUARD_FRACTION)
    for rate_h, rate_v in itertools.product((1 - RHO, 1.0, 1 + RHO), repeat=2):
        for delay in (0.0, 0.001, 0.3):
            sent_real = 5.0
            holder_end_real = sent_real + span_h / rate_h  # its clock counts span_h
            voter_end_real = sent_real + delay + span_v / rate_v
            assert voter_end_real - holder_end_real >= LEASE * STOP_GUARD_FRACTION - 1e-9


def test_claim_times_promises_from_send_not_reply() -> None:
    c = Claim(G, 3, (A, B, C), LEASE, RHO, started_s=0.0)
    req = c.request(10.0, B, seq=1)
    c.request(10.0, C, seq=2)
    assert c.on_reply(10.4, B, LeaseReply(G, 3, req.seq, True, A, 3)).value == "none"
    assert c.valid_until_s() == float("-inf"), "one promise of three is no majority"
    c.on_reply(10.5, C, LeaseReply(G, 3, 2, True, A, 3))
    assert c.valid_until_s() == pytest.approx(10.0 + holder_span_s(LEASE, RHO))
    assert majority(3) == 2 and majority(2) == 2 and majority(5) == 3


def test_claim_ignores_replies_for_other_epochs_and_unknown_requests() -> None:
    c = Claim(G, 3, (A, B), LEASE, RHO, started_s=0.0)
    c.request(0.0, B, seq=7)
    c.on_reply(0.1, B, LeaseReply(G, 2, 7, True, A, 3))  # an older claim's answer
    c.on_reply(0.1, B, LeaseReply(G, 3, 99, True, A, 3))  # a request we never sent
    assert c.granting(0.2) == ()


def test_epochs_increase_and_only_the_owner_reuses_one() -> None:
    v = _voter()
    assert v.on_request(0.0, A, LeaseRequest(G, 5, 1)).granted
    v.on_release(0.1, A, G, 5)
    assert v.max_epoch(G) == 5
    # Released: nobody gets epoch 5 again, not even a late duplicate from A.
    assert not v.on_request(0.2, A, LeaseRequest(G, 5, 1)).granted
    assert not v.on_request(0.2, B, LeaseRequest(G, 5, 2)).granted
    assert v.on_request(0.3, B, LeaseRequest(G, 6, 3)).granted
    # Gossip says C runs at 9 (a restarted voter learns it): only C may be promised 9.
    v2 = _voter()
    v2.learn_epoch(G, 9, C)
    assert not v2.on_request(0.0, B, LeaseRequest(G, 9, 1)).granted
    assert v2.on_request(0.0, C, LeaseRequest(G, 9, 2)).granted
    # Two claimants of one epoch: neither gets it again.
    v3 = _voter()
    v3.learn_epoch(G, 4, A)
    v3.learn_epoch(G, 4, B)
    assert not v3.on_request(0.0, A, LeaseRequest(G, 4, 1)).granted


def test_holder_moves_its_own_promise_to_a_higher_epoch() -> None:
    v = _voter()
    assert v.on_request(0.0, A, LeaseRequest(G, 3, 1)).granted
    assert v.on_request(0.1, A, LeaseRequest(G, 4, 2)).granted, "same holder, higher epoch"
    assert not v.on_request(0.2, B, LeaseRequest(G, 5, 3)).granted, "still promised to A"


def test_unused_release_restores_the_lapsed_promise() -> None:
    v = _voter()
    assert v.on_request(0.0, A, LeaseRequest(G, 3, 1)).granted
    later = voter_span_s(LEASE, RHO) + 0.1
    assert v.on_request(later, B, LeaseRequest(G, 4, 1)).granted  # A's promise had lapsed
    v.on_release(later + 0.1, B, G, 4, unused=True)
    assert v.on_request(later + 0.2, A, LeaseRequest(G, 3, 2)).granted, "A renews at 3"


def test_restarted_voter_is_quiet_for_one_voter_span() -> None:
    v = Voter(LEASE, RHO, start_s=100.0)
    r = v.on_request(100.5, A, LeaseRequest(G, 1, 1))
    assert not r.granted and r.busy_s == pytest.approx(voter_span_s(LEASE, RHO) - 0.5)
    assert v.on_request(100.0 + voter_span_s(LEASE, RHO), A, LeaseRequest(G, 1, 2)).granted


def test_graceful_release_frees_the_voter_at_once() -> None:
    v = _voter()
    v.on_request(0.0, A, LeaseRequest(G, 3, 1))
    v.on_release(0.2, A, G, 3)
    assert v.promised(0.2, G) is None
    assert v.on_request(0.2, B, LeaseRequest(G, 4, 1)).granted


def test_unreleased_names_the_holder_until_a_release_even_after_the_lapse() -> None:
    """What Node._lapses reads: a promise that ran out unrenewed still names its holder."""
    v = _voter()
    span = voter_span_s(LEASE, RHO)
    assert v.unreleased(G) is None
    v.on_request(0.0, A, LeaseRequest(G, 3, 1))
    v.on_request(0.3, A, LeaseRequest(G, 3, 2))  # renewed: the end moves
    assert v.unreleased(G) == (A, pytest.approx(0.3 + span))
    assert v.promised(0.3 + span, G) is None  # lapsed ...
    assert v.unreleased(G) == (A, pytest.approx(0.3 + span))  # ... but not released
    v.on_release(5.0, A, G, 3)
    assert v.unreleased(G) is None


# ------------------------------------------------------------------ renewal rounds

D, E = NodeId("d"), NodeId("e")
FIVE = (A, B, C, D, E)
RENEW_S = LEASE * 0.25  # lease.RENEW_AGE_FRACTION
RETRY_S = LEASE * 0.0625  # lease.RETRY_FRACTION


def _ask(c: Claim, now_s: float, answer: tuple[NodeId, ...], seq: list[int]) -> list[NodeId]:
    """One `due` round at `now_s`: the voters in `answer` grant at once, the rest are lost."""
    asked = c.due(now_s)
    for v in asked:
        seq[0] += 1
        req = c.request(now_s, v, seq[0])
        if v in answer:
            c.on_reply(now_s, v, LeaseReply(G, c.epoch, req.seq, True, A, c.epoch))
    return asked


def test_acquiring_asks_every_voter() -> None:
    c = Claim(G, 1, FIVE, LEASE, RHO, started_s=0.0, local=A)
    assert sorted(_ask(c, 0.0, FIVE, [0])) == sorted(FIVE)
    assert c.valid_until_s() == pytest.approx(holder_span_s(LEASE, RHO))


def test_holder_renews_a_majority_ourselves_first_then_the_latest_answers() -> None:
    seq = [0]
    c = Claim(G, 1, FIVE, LEASE, RHO, started_s=0.0, local=C)
    _ask(c, 0.0, (A, B, C, D), seq)  # E never answers
    assert c.due(RENEW_S - 1e-6) == []
    assert c.next_due_s() == pytest.approx(RENEW_S)
    # Majority of 5 is 3: ourselves (C) first, then the voters whose promises run longest
    # (A, B, D tie at 0.0: by name), not E.
    assert _ask(c, RENEW_S, FIVE, seq) == [C, A, B]
    # A majority is fresh again: D and E are stale but not asked, and no busy wake-up.
    for t in (RENEW_S + 0.01, RENEW_S + 2 * RETRY_S, 2 * RENEW_S - 1e-6):
        assert c.due(t) == []
        assert c.next_due_s() > t
    assert c.valid_until_s() == pytest.approx(RENEW_S + holder_span_s(LEASE, RHO))
    # The next round, when those three are stale again, asks the same three.
    assert c.next_due_s() == pytest.approx(2 * RENEW_S)
    assert _ask(c, c.next_due_s(), FIVE, seq) == [C, A, B]


def test_an_unanswered_round_asks_every_stale_voter_after_the_retry_time() -> None:
    seq = [0]
    c = Claim(G, 1, FIVE, LEASE, RHO, started_s=0.0, local=A)
    _ask(c, 0.0, FIVE, seq)
    assert _ask(c, RENEW_S, (A, B), seq) == [A, B, C]  # C's answer is lost
    assert c.due(RENEW_S + RETRY_S - 1e-6) == []
    assert c.next_due_s() == pytest.approx(RENEW_S + RETRY_S)
    assert sorted(_ask(c, RENEW_S + RETRY_S, (), seq)) == [C, D, E]


def test_without_a_majority_every_stale_voter_is_asked_each_retry() -> None:
    seq = [0]
    c = Claim(G, 1, FIVE, LEASE, RHO, started_s=0.0, local=A)
    _ask(c, 0.0, (A, B), seq)  # two of five: no majority
    assert c.valid_until_s() == float("-inf")
    assert sorted(c.due(RETRY_S)) == [C, D, E]


def test_an_answered_round_ends_at_the_reply_not_at_the_next_due() -> None:
    """The wakeup named after the last answer is the next renewal, never a retry: with 3
    voters a round may ask ourselves only (answered inline) while another voter falls
    stale a little later (found by tests/sim/test_wakeups.py once renewals rode beats)."""
    seq = [0]
    c = Claim(G, 1, (A, B, C), LEASE, RHO, started_s=0.0, local=A)
    _ask(c, 0.0, (A, B), seq)  # C never answers
    req = c.request(0.01, B, 9)  # B again 10 ms later (as a lost round's retry would)
    c.on_reply(0.01, B, LeaseReply(G, c.epoch, req.seq, True, A, c.epoch))
    assert c.renewal_due_s(0.02) == pytest.approx(RENEW_S)  # ours first
    assert _ask(c, RENEW_S, (A,), seq) == [A]  # only ourselves, answered at once
    # Over already: the next renewal is B's (10 ms on), not the round's retry (RETRY_S on).
    assert c.renewal_due_s(RENEW_S) == pytest.approx(RENEW_S + 0.01)
    assert c.next_due_s() == pytest.approx(RENEW_S + 0.01)
    assert _ask(c, RENEW_S + 0.01, (), seq) == [B]  # B's answer is lost: a round in flight
    assert c.renewal_due_s(RENEW_S + 0.02) is None, "a round waiting for answers is never put off"


def test_two_voters_renew_both() -> None:
    seq = [0]
    c = Claim(G, 1, (A, B), LEASE, RHO, started_s=0.0, local=A)
    _ask(c, 0.0, (A, B), seq)
    assert _ask(c, RENEW_S, (A, B), seq) == [A, B]


def test_due_and_next_due_agree_under_random_loss() -> None:
    """Whenever `due` has nobody to ask, `next_due_s` lies in the future (the node sleeps
    until then); and a holder answered by at least a majority never loses its lease."""
    import random

    for seed in range(200):
        rng = random.Random(seed)
        voters = FIVE[: rng.choice((2, 3, 4, 5))]
        c = Claim(G, 1, voters, LEASE, RHO, started_s=0.0, local=rng.choice((A, None)))
        seq = [0]
        now = 0.0
        for _ in range(300):
            answering = tuple(v for v in voters if rng.random() > 0.3)
            if not _ask(c, now, answering, seq):
                assert c.next_due_s() > now, (seed, now)
            now = max(now + 1e-3, min(c.next_due_s(), now + RETRY_S))


def test_a_claim_is_outbid_by_a_stale_refusal_or_a_higher_epoch() -> None:
    c = Claim(G, 3, (A, B), LEASE, RHO, started_s=0.0)
    assert not c.outbid()
    c.request(0.0, B, seq=1)
    c.on_reply(0.0, B, LeaseReply(G, 3, 1, True, A, 3))
    assert not c.outbid(), "a grant at our epoch"
    c.on_reply(0.1, B, LeaseReply(G, 2, 9, False, "", 5, 0.0))  # an older claim's answer
    assert c.outbid(), "a voter has seen epoch 5"
    d = Claim(G, 3, (A, B), LEASE, RHO, started_s=0.0)
    d.request(0.0, B, seq=1)
    d.on_reply(0.0, B, LeaseReply(G, 3, 1, False, "", 3, 0.0))
    assert d.outbid(), "refused as not new, nobody promised"
