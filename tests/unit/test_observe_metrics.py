"""Metrics: names, bounded labels, set-on-change, feeding from status and notices."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gossipha.core.membership import PeerState
from gossipha.core.types import Notice, NoticeKind, ProbeVip, StopGroup, StopReason
from gossipha.observe.metrics import Metrics
from gossipha.wire.reject import Reject, RejectCounter, RejectReason
from tests.unit.test_observe_status import sample_status


def make() -> tuple[CollectorRegistry, Metrics]:
    reg = CollectorRegistry()
    m = Metrics(
        reg,
        "tutorial",
        "master",
        keepalive_s=2.0,
        peers=["slave"],
        links=["eth1", "eth2"],
        groups=["web"],
        ping_groups=["gw"],
    )
    return reg, m


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    v = reg.get_sample_value(name, labels)
    return v


def test_names_are_prefixed_and_carry_units() -> None:
    reg, _ = make()
    text = generate_latest(reg).decode()
    families = list(text_string_to_metric_families(text))
    ours = [f for f in families if not f.name.startswith("process_")]
    assert ours and all(f.name.startswith("gossipha_") for f in ours)
    assert any(f.name.startswith("process_") for f in families), "process collector missing"
    # a second registry gets its own collectors: no global state
    make()


def test_interarrival_histogram_buckets_scale_with_keepalive() -> None:
    reg, m = make()
    m.heartbeat_received("slave", "eth1", 10.0)
    m.heartbeat_received("slave", "eth1", 12.1)
    m.heartbeat_received("slave", "eth1", 14.0)
    assert value(reg, "gossipha_heartbeats_received_total", peer="slave", link="eth1") == 3
    count = value(reg, "gossipha_heartbeat_interarrival_seconds_count", peer="slave", link="eth1")
    assert count == 2
    # keepalive 2 s: the 1.0x bucket is le=2.0, the 1.1x is le=2.2
    assert (
        value(
            reg,
            "gossipha_heartbeat_interarrival_seconds_bucket",
            peer="slave",
            link="eth1",
            le="2.0",
        )
        == 1
    )
    assert (
        value(
            reg,
            "gossipha_heartbeat_interarrival_seconds_bucket",
            peer="slave",
            link="eth1",
            le="2.2",
        )
        == 2
    )
    assert (
        value(
            reg,
            "gossipha_heartbeat_interarrival_seconds_bucket",
            peer="slave",
            link="eth1",
            le="32.0",
        )
        == 2
    )


def test_unknown_label_values_are_dropped_and_counted() -> None:
    reg, m = make()
    m.observe_heartbeat("mallory", "eth1", 1.0)
    m.observe_heartbeat("slave", "bogus", 1.0)
    m.count_packet("bogus", "received", 100)
    assert value(reg, "gossipha_metrics_label_dropped_total") == 3
    assert value(reg, "gossipha_heartbeats_received_total", peer="mallory", link="eth1") is None


def test_update_from_status() -> None:
    reg, m = make()
    m.update_from(sample_status(phi=0.4), 100.0)
    assert value(reg, "gossipha_peer_phi", peer="slave") == 0.4
    assert value(reg, "gossipha_peer_state", peer="slave", state="alive") == 1
    assert value(reg, "gossipha_peer_state", peer="slave", state="dead") == 0
    assert value(reg, "gossipha_peer_incarnation", peer="slave") == 7
    assert value(reg, "gossipha_link_phi", peer="slave", link="eth1") == 0.4
    assert value(reg, "gossipha_link_jitter_seconds", peer="slave", link="eth1") == 0.02
    assert value(reg, "gossipha_link_state", peer="slave", link="eth2", state="down") == 1
    assert value(reg, "gossipha_link_phi", peer="slave", link="eth2") == math.inf
    silence = value(reg, "gossipha_link_silence_seconds", peer="slave", link="eth2")
    assert silence is not None and math.isnan(silence)
    assert value(reg, "gossipha_peer_jitter_seconds", peer="slave") == 0.02
    assert value(reg, "gossipha_group_held", group="web") == 1
    assert value(reg, "gossipha_group_holder", group="web", holder="master") == 1
    assert value(reg, "gossipha_lease_epoch", group="web") == 4
    assert value(reg, "gossipha_lease_remaining_seconds", group="web") == 1.5
    assert value(reg, "gossipha_group_phase", group="web", phase="running") == 1
    assert value(reg, "gossipha_group_healthy", group="web") == 1
    assert value(reg, "gossipha_ping_reachable", ping_group="gw") == 1
    assert value(reg, "gossipha_ping_rtt_seconds", ping_group="gw") == 0.0012

    dead = sample_status(phi=math.inf, state=PeerState.DEAD)
    groups = (dead.groups[0].__class__("web", None, 4, "idle"),)
    from dataclasses import replace

    m.update_from(replace(dead, groups=groups), 101.0)
    assert value(reg, "gossipha_peer_state", peer="slave", state="dead") == 1
    assert value(reg, "gossipha_peer_state", peer="slave", state="alive") == 0
    assert value(reg, "gossipha_peer_phi", peer="slave") == math.inf
    assert value(reg, "gossipha_group_holder", group="web", holder="master") is None
    assert value(reg, "gossipha_group_has_holder", group="web") == 0
    assert value(reg, "gossipha_group_held", group="web") == 0


def test_gauges_are_written_only_on_change() -> None:
    _reg, m = make()
    writes = 0
    real = m.peer_phi.labels("slave").set

    def counting(v: float) -> None:
        nonlocal writes
        writes += 1
        real(v)

    m.peer_phi.labels("slave").set = counting  # type: ignore[method-assign]
    for _ in range(5):
        m.update_from(sample_status(phi=0.4))
    assert writes == 1
    m.update_from(sample_status(phi=0.5))
    assert writes == 2


def test_notices_failovers_and_transitions() -> None:
    reg, m = make()
    m.count_notice(Notice(NoticeKind.PEER_WARN, peer="slave"))
    m.count_notice(Notice(NoticeKind.PEER_DEAD, peer="slave"))
    m.count_notice(Notice(NoticeKind.FAILOVER_STARTED, group="web"))
    m.count_notice(Notice(NoticeKind.FAILOVER_COMPLETED, group="web"), wall_ts=1234.0)
    m.count_notice(Notice(NoticeKind.RESOURCE_FAILED, group="web", detail="start: x"))
    m.count_action(StopGroup("web", 4, StopReason.HANDOVER))
    m.count_action(ProbeVip("web"))
    assert value(reg, "gossipha_notices_total", kind="peer_dead") == 1
    assert value(reg, "gossipha_peer_transitions_total", peer="slave", state="warn") == 1
    assert value(reg, "gossipha_failovers_total", group="web", reason="peer_dead") == 1
    assert value(reg, "gossipha_last_failover_timestamp_seconds", group="web") == 1234.0
    assert value(reg, "gossipha_resource_failures_total", group="web") == 1
    assert value(reg, "gossipha_group_stops_total", group="web", reason="handover") == 1
    assert value(reg, "gossipha_vip_probes_total", group="web") == 1


def test_packets_rejects_loop_lag_ping() -> None:
    reg, m = make()
    m.count_packet("eth1", "sent", 200)
    m.count_packet("eth1", "received", 300)
    m.count_reject(RejectReason.BAD_MAC)
    counter = RejectCounter()
    counter.add(Reject(RejectReason.REPLAY))
    counter.add(Reject(RejectReason.REPLAY))
    m.sync_rejects(counter)
    m.sync_rejects(counter)  # idempotent: deltas only
    m.set_loop_lag(0.2)
    m.set_loop_lag(0.01)
    m.set_ping("gw", False)
    m.set_thresholds(3.0, 8.0)
    assert value(reg, "gossipha_packets_total", link="eth1", direction="sent") == 1
    assert value(reg, "gossipha_packet_bytes_total", link="eth1", direction="received") == 300
    assert value(reg, "gossipha_packets_rejected_total", reason="bad_mac") == 1
    assert value(reg, "gossipha_packets_rejected_total", reason="replay") == 2
    assert value(reg, "gossipha_packets_rejected_total", reason="too_large") == 0
    assert value(reg, "gossipha_event_loop_lag_seconds") == 0.01
    assert value(reg, "gossipha_event_loop_lag_max_seconds") == 0.2
    assert value(reg, "gossipha_ping_reachable", ping_group="gw") == 0
    assert value(reg, "gossipha_phi_threshold", level="dead") == 8.0
