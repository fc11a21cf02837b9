"""The tutorial's three failure tests, plus kill -9 and host crash, on the simulator."""

from __future__ import annotations

from gossipha.sim.harness import Sim, make_config


def _sim(seed: int) -> Sim:
    sim = Sim(make_config(2), seed, roundtrip=True)
    sim.run_until(5.0)
    assert sim.holders("g0") == ["n0"], sim.trace
    return sim


def test_1_master_loses_ping_node_slave_serves_then_failback() -> None:
    sim = _sim(1)
    sim.set_ping("n0", False)
    sim.run_until(8.0)
    assert sim.holders("g0") == ["n1"]
    sim.set_ping("n0", True)
    sim.run_until(9.0)
    assert sim.holders("g0") == ["n1"], "auto_failback waits failback_delay_s"
    sim.run_until(16.0)
    assert sim.holders("g0") == ["n0"]
    assert not sim.violations


def test_2_graceful_stop_hands_over_at_once_and_back() -> None:
    sim = _sim(2)
    sim.graceful_stop("n0")
    t0 = sim.now_s
    sim.run_until(t0 + 1.0)
    assert sim.holders("g0") == ["n1"]
    takeover = [t - t0 for t, host, _, _ in sim.stats.starts if host == "n1"]
    assert takeover and takeover[0] < 0.5, "no deadtime wait after an explicit release"
    assert sim.hosts["n0"].node is None, "the agent exits once its successor holds"
    sim.restart("n0")
    sim.run_until(t0 + 12.0)
    assert sim.holders("g0") == ["n0"]
    assert not sim.violations


def test_3_heartbeat_link_and_ping_node_cut_on_both_master_keeps() -> None:
    sim = _sim(3)
    sim.net.partition(["n0"], ["n1"])  # ifdown eth1 on both: heartbeats and ping node
    sim.set_ping("n0", False)
    sim.set_ping("n1", False)
    sim.run_until(20.0)
    assert sim.holders("g0") == ["n0"]
    assert not [s for s in sim.stats.starts if s[1] == "n1"], "the slave never claims"
    sim.heal()
    sim.run_until(30.0)
    assert sim.holders("g0") == ["n0"]
    assert not sim.violations


def test_heartbeat_cut_service_up_holder_keeps_and_probe_warns() -> None:
    sim = _sim(4)
    sim.net.partition(["n0"], ["n1"])  # ping node still reachable by both
    sim.run_until(15.0)
    assert sim.holders("g0") == ["n0"]
    assert sim.stats.split_brain_notices >= 1
    assert not sim.violations


def test_agent_killed_leaves_vip_up_and_restart_adopts() -> None:
    sim = _sim(5)
    sim.kill_agent("n0")
    sim.run_until(10.0)
    assert sim.holders("g0") == ["n0"], "the VIP answered the slave's probe"
    sim.restart("n0")
    sim.run_until(15.0)
    assert sim.holders("g0") == ["n0"]
    node = sim.hosts["n0"].node
    assert node is not None and node.running() == ("g0",)
    assert not sim.stats.stops, "no outage: nothing was stopped"
    assert not sim.violations


def test_host_crash_fails_over_in_about_a_second() -> None:
    sim = _sim(6)
    sim.crash_host("n0")
    t0 = sim.now_s
    sim.run_until(t0 + 3.0)
    assert sim.holders("g0") == ["n1"]
    start = next(t for t, host, _, _ in sim.stats.starts if host == "n1")
    assert start - t0 < 1.6
    assert not sim.violations


def test_witness_gives_real_majority_to_a_pair() -> None:
    sim = Sim(make_config(2, witnesses=1), 7)
    sim.run_until(5.0)
    assert sim.holders("g0") == ["n0"]
    # Isolate the holder on every network: the pair plus witness keeps a majority.
    sim.net.partition(["n0"], ["n1", "w0"], service=True)
    sim.run_until(10.0)
    assert sim.holders("g0") == ["n1"]
    assert not sim.violations


def test_maintenance_moves_nothing() -> None:
    from gossipha.core.types import AdminCommand, AdminKind

    sim = _sim(8)
    sim.deliver("n1", AdminCommand(AdminKind.MAINTENANCE_ON))
    sim.run_until(6.0)
    sim.set_ping("n0", False)
    sim.run_until(10.0)
    assert sim.holders("g0") == ["n0"]


def test_auto_failback_off_leaves_group() -> None:
    sim = Sim(make_config(2, auto_failback=False), 9)
    sim.run_until(5.0)
    sim.crash_host("n0")
    sim.run_until(8.0)
    sim.restart("n0")
    sim.run_until(20.0)
    assert sim.holders("g0") == ["n1"]
    assert not sim.violations
