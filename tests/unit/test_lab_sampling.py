"""The lab's VIP-holder sample: "two holders at once" only when the reads prove it."""

from __future__ import annotations

from gossipha.lab.observe import ClientSample, sandwich, summarize

NODES = ("master", "slave")


def test_clean_handover_between_reads_is_not_two_holders() -> None:
    # master read holding, then slave read holding, then master gone, slave still there:
    # the master may have let go before the slave took it (a graceful handover).
    s = sandwich(NODES, 1.0, [True, True], [False, True])
    assert not s.dual
    assert s.holders == ("slave",)


def test_first_node_held_around_the_others_read_is_two_holders() -> None:
    s = sandwich(NODES, 1.0, [True, True], [True, False])
    assert s.dual


def test_second_node_held_around_the_firsts_second_read_is_two_holders() -> None:
    # failback overlap: master takes it before the slave lets go.
    s = sandwich(NODES, 1.0, [False, True], [True, True])
    assert s.dual and s.holders == ("slave",)


def test_one_holder_and_none() -> None:
    assert sandwich(NODES, 1.0, [True, False], [True, False]).holders == ("master",)
    nobody = sandwich(NODES, 1.0, [False, False], [False, False])
    assert not nobody.dual and nobody.holders == ()


def test_three_nodes_any_pair_counts() -> None:
    nodes = ("a", "b", "w")
    assert sandwich(nodes, 0.0, [False, True, True], [False, True, True]).dual
    assert not sandwich(nodes, 0.0, [False, True, False], [False, False, True]).dual


def test_summary_counts_only_proven_dual_samples() -> None:
    holders = [
        sandwich(NODES, 0.00, [True, False], [True, False]),
        sandwich(NODES, 0.02, [True, True], [False, True]),  # handover between reads
        sandwich(NODES, 0.04, [True, True], [True, True]),  # both, for certain
    ]
    clients = [ClientSample(0.0, "master", 0.001), ClientSample(0.02, "slave", 0.001)]
    summary = summarize(clients, holders)
    assert summary.dual_holder_samples == 1 and summary.dual_holder_first_s == 0.04
