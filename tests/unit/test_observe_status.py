"""The /status document: built from core snapshots, stable JSON schema, text rendering."""

from __future__ import annotations

import math
import random

import orjson

from gossipha.core.membership import (
    LinkSnapshot,
    LinkState,
    MembershipSnapshot,
    PeerSnapshot,
    PeerState,
    Status,
)
from gossipha.core.node import Node
from gossipha.core.types import Notice, NoticeKind, Tick
from gossipha.observe.status import (
    ClusterStatus,
    EventLog,
    GroupView,
    PingView,
    build_status,
    group_views,
    render_text,
    to_json,
)
from gossipha.sim.harness import make_config


def membership(phi: float = 0.4, state: PeerState = PeerState.ALIVE) -> MembershipSnapshot:
    links = (
        LinkSnapshot("eth1", LinkState.UP, phi, 0.5, 1.0, 0.02, 30),
        LinkSnapshot("eth2", LinkState.DOWN, math.inf, None, 0.0, 0.0, 0),
    )
    peer = PeerSnapshot(
        name="slave",
        state=state,
        status=Status.ALIVE,
        incarnation=7,
        counter=3,
        health=0,
        phi=phi,
        silence_s=0.5,
        mean_s=1.0,
        std_s=0.02,
        samples=30,
        suspicion_confirmations=None,
        suspicion_deadline_s=None,
        links=links,
    )
    return MembershipSnapshot("master", 5, 9, 0, 1, False, 0, (peer,))


def sample_status(phi: float = 0.4, state: PeerState = PeerState.ALIVE) -> ClusterStatus:
    log = EventLog(3)
    log.record(Notice(NoticeKind.PEER_WARN, peer="slave", detail="late"), 1_700_000_000.0)
    log.record(
        Notice(NoticeKind.FAILOVER_COMPLETED, group="web", detail="epoch 4"), 1_700_000_001.0
    )
    return build_status(
        cluster="tutorial",
        membership=membership(phi, state),
        groups=[GroupView("web", "master", 4, "running", 1.5, True)],
        wall_ts=1_700_000_010.0,
        ping=[PingView("gw", True, 0.0012)],
        events=log.items(),
    )


def test_json_schema_has_the_documented_fields() -> None:
    doc = orjson.loads(orjson.dumps(to_json(sample_status())))
    assert doc["schema"] == 1
    assert (doc["node"], doc["cluster"], doc["incarnation"]) == ("master", "tutorial", 5)
    me, slave = doc["nodes"]
    assert me == {
        "name": "master",
        "state": "self",
        "incarnation": 5,
        "phi": None,
        "silence_s": None,
        "links": [],
    }
    assert set(slave) == {"name", "state", "incarnation", "phi", "silence_s", "links"}
    assert slave["links"][0] == {
        "name": "eth1",
        "state": "up",
        "phi": 0.4,
        "silence_s": 0.5,
        "mean_s": 1.0,
        "std_s": 0.02,
    }
    # never heard and infinite phi are null, so the document is plain JSON
    assert slave["links"][1]["phi"] is None and slave["links"][1]["silence_s"] is None
    assert doc["groups"] == [
        {
            "name": "web",
            "holder": "master",
            "epoch": 4,
            "phase": "running",
            "lease_remaining_s": 1.5,
            "healthy": True,
        }
    ]
    assert doc["ping"] == [{"name": "gw", "reachable": True, "rtt_s": 0.0012}]
    ev = doc["events"][0]
    assert set(ev) == {"wall_ts", "time", "kind", "peer", "group", "link", "detail"}
    assert ev["kind"] == "peer_warn" and ev["time"].startswith("2023-11-14T22:13:20")


def test_event_log_is_bounded() -> None:
    log = EventLog(2)
    for i in range(5):
        log.record(Notice(NoticeKind.LINK_DOWN, peer="p", link=f"l{i}"), float(i))
    assert [e.link for e in log.items()] == ["l3", "l4"]


def test_render_text_shows_nodes_links_groups_events() -> None:
    text = render_text(to_json(sample_status(phi=math.inf, state=PeerState.DEAD)))
    assert "Cluster tutorial  node master" in text
    assert "slave" in text and "dead" in text and "phi inf" in text
    assert "link eth2" in text and "down" in text
    assert "web" in text and "holder master" in text and "epoch 4" in text
    assert "peer_warn" in text and "peer=slave" in text and "rtt 1.2ms" in text


def test_render_text_no_holder() -> None:
    doc = to_json(sample_status())
    doc["groups"][0]["holder"] = None
    assert "NO HOLDER" in render_text(doc)


def test_group_views_from_a_real_node() -> None:
    config = make_config(2)
    node = Node(config, 1, random.Random(1), 0.0)
    node.step(0.0, Tick())
    views = group_views(node, holders={"g0": ("n1", 3)})
    assert views == (GroupView("g0", "n1", 3, node.phase("g0").value),)
    views = group_views(node)
    assert views[0].holder is None and views[0].phase in {"idle", "acquiring", "probing"}
