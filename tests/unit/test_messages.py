"""Message bodies (gossipha/core/types.py): a heartbeat's carried lease requests ("lq")."""

from __future__ import annotations

import pytest

from gossipha.core.types import (
    MAX_CARRIED,
    GroupName,
    Heartbeat,
    LeaseRequest,
    NodeId,
    NodeStatus,
    message_from_wire,
)

STATUS = NodeStatus(NodeId("n0"), 1, 3)
REQ = LeaseRequest(GroupName("g0"), 4, 17)


def test_carried_requests_go_through_the_wire() -> None:
    hb = Heartbeat(STATUS, (), None, (REQ, LeaseRequest(GroupName("g1"), 2, 18)))
    assert message_from_wire(hb.to_wire()) == hb
    empty = Heartbeat(STATUS)
    assert empty.to_wire()["lq"] == [], "a new node says it can carry, even with none"
    assert message_from_wire(empty.to_wire()) == empty


def test_a_heartbeat_without_lq_is_from_a_node_that_cannot_carry() -> None:
    old = Heartbeat(STATUS, requests=None)
    wire = old.to_wire()
    assert "lq" not in wire
    back = message_from_wire(wire)
    assert isinstance(back, Heartbeat) and back.requests is None


@pytest.mark.parametrize(
    "lq",
    [
        {"g": "g0"},
        [REQ.to_wire()] * (MAX_CARRIED + 1),
        ["g0"],
        [{"g": "g0", "e": 1}],
    ],
)
def test_a_bad_lq_rejects_the_message(lq: object) -> None:
    wire = Heartbeat(STATUS).to_wire()
    wire["lq"] = lq
    with pytest.raises(ValueError):
        message_from_wire(wire)
