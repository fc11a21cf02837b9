"""The agent's observability and health glue, without sockets: notices to the event log,
metrics, alert state and hook environment; the /status snapshot from a real core; health
decisions to restarts and HealthResults; admin commands to the core; --listen parsing."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import pytest
from prometheus_client import CollectorRegistry

from gossipha.cli import _parse_listen
from gossipha.config.load import Loaded
from gossipha.config.model import (
    Config,
    HealthCheck,
    HealthCheckKind,
    Hook,
    Observe,
    ResourceGroup,
    ServiceKind,
    ServiceResource,
)
from gossipha.core.node import Node
from gossipha.core.types import (
    AdminCommand,
    AdminKind,
    HealthResult,
    Input,
    Notice,
    NoticeKind,
    Output,
    StopGroup,
    StopReason,
)
from gossipha.observe.status import to_json
from gossipha.resources.health import CheckResult, GroupHealth
from gossipha.runtime.agent import Agent, AgentOptions
from gossipha.runtime.groups import GroupRunner
from gossipha.runtime.health_watch import (
    ServiceStatusMonitor,
    checks_for,
    make_monitor,
    status_checks,
)
from gossipha.runtime.observe_glue import ObserveGlue, metrics_for
from gossipha.sim.harness import make_config

WALL = 1_700_000_000.0


def _config(**observe: Any) -> Config:
    cfg = make_config(2)
    return replace(cfg, observe=Observe(**observe)) if observe else cfg


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _glue(cfg: Config) -> tuple[ObserveGlue, CollectorRegistry]:
    registry = CollectorRegistry()
    return ObserveGlue(cfg, metrics_for(cfg, registry, process_collector=False)), registry


# ---------------------------------------------------------------------------- notices


def test_a_notice_reaches_event_log_metrics_alerts_and_hooks() -> None:
    cfg = _config(hooks=(Hook(Path("/bin/true")),), alertmanager_url="http://127.0.0.1:1")
    glue, registry = _glue(cfg)
    assert glue.hook_runner is not None and glue.am_client is not None
    n = Notice(NoticeKind.PEER_DEAD, peer="n1", detail="phi 9.1")
    glue.on_output(Output((), (), (n,), 0.0), lambda g: 7, WALL)

    (event,) = glue.event_log.items()
    assert (event.kind, event.peer, event.wall_ts) == ("peer_dead", "n1", WALL)
    assert _value(registry, "gossipha_notices_total", kind="peer_dead") == 1.0
    assert _value(registry, "gossipha_peer_transitions_total", peer="n1", state="dead") == 1.0
    assert [a.name for a in glue.alert_state.firing()] == ["GossiphaPeerDead"]
    assert glue.am_client.pending == 1
    assert glue.hook_runner.queued == 1
    job = glue.hook_runner._queue[0]
    assert job.env["GOSSIPHA_EVENT"] == "peer_dead"
    assert job.env["GOSSIPHA_PEER"] == "n1"
    assert job.env["GOSSIPHA_NODE"] == "n0"
    assert job.env["GOSSIPHA_CLUSTER"] == "sim"
    assert job.env["GOSSIPHA_EPOCH"] == "0"  # no group: no epoch
    assert job.env["GOSSIPHA_REANNOUNCE"] == "0"


def test_group_notices_carry_the_epoch_and_actions_are_counted() -> None:
    cfg = _config(hooks=(Hook(Path("/bin/true"), events=("failover_completed",)),))
    glue, registry = _glue(cfg)
    out = Output(
        (),
        (StopGroup("g0", 3, StopReason.HANDOVER),),
        (
            Notice(NoticeKind.PEER_WARN, peer="n1"),  # not subscribed: no hook
            Notice(NoticeKind.FAILOVER_COMPLETED, group="g0", detail="epoch 4"),
        ),
        0.0,
    )
    glue.on_output(out, lambda g: {"g0": 4}[g], WALL)
    assert glue.hook_runner is not None and glue.hook_runner.queued == 1
    assert glue.hook_runner._queue[0].env["GOSSIPHA_EPOCH"] == "4"
    assert _value(registry, "gossipha_group_stops_total", group="g0", reason="handover") == 1.0
    assert _value(registry, "gossipha_failovers_total", group="g0", reason="startup") == 1.0
    assert _value(registry, "gossipha_last_failover_timestamp_seconds", group="g0") == WALL


def test_a_healed_partition_reannounces_what_still_fires() -> None:
    cfg = _config(hooks=(Hook(Path("/bin/true")),))
    glue, _ = _glue(cfg)
    assert glue.hook_runner is not None
    glue.on_notice(Notice(NoticeKind.PING_LOST, detail="pg"), lambda g: 0, WALL)
    glue.on_notice(Notice(NoticeKind.PEER_DEAD, peer="n1"), lambda g: 0, WALL)
    assert glue.hook_runner.queued == 2
    # A recovery of a peer never declared dead is no heal.
    glue.on_notice(Notice(NoticeKind.PEER_RECOVERED, peer="n9"), lambda g: 0, WALL)
    assert glue.reannounced == 0
    glue.on_notice(Notice(NoticeKind.PEER_RECOVERED, peer="n1"), lambda g: 0, WALL + 1)
    # Peer dead resolved by the recovery; ping lost still fires and is re-run.
    assert glue.reannounced == 1
    last = glue.hook_runner._queue[-1].env
    assert last["GOSSIPHA_EVENT"] == "ping_lost" and last["GOSSIPHA_REANNOUNCE"] == "1"


def test_without_hooks_or_alertmanager_nothing_is_queued() -> None:
    glue = ObserveGlue(_config())
    assert glue.hook_runner is None and glue.am_client is None and glue.metrics is None
    glue.on_notice(Notice(NoticeKind.PEER_DEAD, peer="n1"), lambda g: 0, WALL)
    glue.on_packet("hb", "received", 100)
    glue.on_heartbeat("n1", "hb", 1.0)
    assert len(glue.event_log.items()) == 1


# ---------------------------------------------------------------------------- status


def _node(cfg: Config, now_s: float = 0.0) -> Node:
    return Node(cfg, 5, random.Random(1), now_s)


def test_status_provider_is_none_until_the_first_refresh() -> None:
    glue, _ = _glue(_config())
    assert glue.status() is None


def test_status_snapshot_shape_and_gauges() -> None:
    cfg = _config()
    glue, registry = _glue(cfg)
    node = _node(cfg)
    node.step(0.1, AdminCommand(AdminKind.STANDBY))
    glue.on_ping("ping", True, 0.002)
    glue.on_lag(0.03)
    glue.on_health("g0", True)
    status = glue.refresh(node, 0.2, WALL)
    assert glue.status() is status
    assert status.node == "n0" and status.cluster == "sim" and status.incarnation == 5
    assert status.standby and not status.maintenance
    assert [n.name for n in status.nodes] == ["n0", "n1"]
    assert status.nodes[0].state == "self"
    (g,) = status.groups
    assert (g.name, g.holder, g.phase, g.healthy) == ("g0", None, "idle", True)
    doc = to_json(status)
    assert doc["schema"] == 1 and doc["groups"][0]["holder"] is None
    assert doc["ping"] == [{"name": "ping", "reachable": True, "rtt_s": 0.002}]
    assert _value(registry, "gossipha_incarnation") == 5.0
    assert _value(registry, "gossipha_group_has_holder", group="g0") == 0.0
    assert _value(registry, "gossipha_event_loop_lag_seconds") == 0.03
    assert _value(registry, "gossipha_phi_threshold", level="dead") == cfg.timings.phi_dead


def test_heartbeat_and_packet_metrics_only_for_configured_names() -> None:
    glue, registry = _glue(_config())
    glue.on_heartbeat("n1", "hb", 1.0)
    glue.on_heartbeat("n1", "hb", 1.25)
    glue.on_heartbeat("stranger", "hb", 1.3)
    glue.on_packet("hb", "received", 120)
    assert _value(registry, "gossipha_heartbeats_received_total", peer="n1", link="hb") == 2.0
    assert (
        _value(registry, "gossipha_heartbeat_interarrival_seconds_count", peer="n1", link="hb")
        == 1.0
    )
    assert _value(registry, "gossipha_packet_bytes_total", link="hb", direction="received") == 120
    assert _value(registry, "gossipha_metrics_label_dropped_total") == 1.0


# ---------------------------------------------------------------------------- health


def _svc(name: str, **kw: Any) -> ServiceResource:
    return ServiceResource(name, ServiceKind.COMMAND, start=("true",), stop=("true",), **kw)


def test_services_with_a_status_get_implicit_checks() -> None:
    group = ResourceGroup("g", (_svc("a", status=("true",)), _svc("b")))
    ((res, check),) = status_checks(group)
    assert res.name == "a" and check.name == "status:a"
    assert check.failures == 3 and check.max_restarts == 2 and check.interval_s == 1.0
    assert [c.name for c in checks_for(group)] == ["status:a"]
    explicit = HealthCheck("web", HealthCheckKind.HTTP, url="http://127.0.0.1/")
    with_checks = replace(group, health_checks=(explicit,))
    assert checks_for(with_checks) == (explicit,)
    assert make_monitor(ResourceGroup("v", ()), lambda r: None, epoch=1) is None


@pytest.mark.parametrize(("command", "healthy"), [("true", True), ("false", False)])
def test_service_status_monitor_reports_the_services_own_status(
    command: str, healthy: bool
) -> None:
    group = ResourceGroup("g", (_svc("a", status=(command,)),))
    results: list[CheckResult] = []

    async def main() -> None:
        mon = ServiceStatusMonitor("g", status_checks(group), results.append, epoch=3)
        task = asyncio.create_task(mon.run())
        for _ in range(200):
            if results:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert results and results[0].healthy is healthy and results[0].check == "status:a"


class _Fed:
    def __init__(self) -> None:
        self.inputs: list[Input] = []
        self.restarts = 0
        self.tg: asyncio.TaskGroup | None = None

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        if self.tg is None:
            coro.close()
            return None
        return self.tg.create_task(coro, name=name)


def _health_config() -> Config:
    cfg = _config()
    g0 = replace(cfg.groups[0], resources=(*cfg.groups[0].resources, _svc("web", status=("true",))))
    return replace(cfg, groups=(g0,))


def _runner_for_health() -> tuple[GroupRunner, _Fed, ObserveGlue]:
    """A held g0 whose restarts are counted and whose inputs for the core are recorded."""
    cfg = _health_config()
    glue = ObserveGlue(cfg)
    fed = _Fed()
    runner = GroupRunner(
        cfg.groups,
        node_name=cfg.node_name,
        timings=cfg.timings,
        feed=fed.inputs.append,
        spawn=fed.spawn,
        closing=lambda: False,
        clock_s=lambda: 0.0,
        on_health=glue.on_health,
        reannounce_s=10.0,
        unhealthy_hold_s=0.01,
    )

    def restart(run: Any) -> None:
        fed.restarts += 1

    runner._restart_group = restart  # type: ignore[method-assign]
    run = runner.runs["g0"]
    run.held = True
    run.health = GroupHealth("g0", checks_for(cfg.groups[0]))
    return runner, fed, glue


def _agent_fed(tmp_path: Path) -> tuple[Agent, _Fed]:
    """An agent whose inputs for the core are recorded instead of stepped."""
    agent = Agent(
        Loaded(_health_config(), ()),
        AgentOptions(tmp_path / "unused"),
        registry=CollectorRegistry(),
    )
    fed = _Fed()
    agent._feed = fed.inputs.append  # type: ignore[method-assign,assignment]
    return agent, fed


def _result(ok: bool) -> CheckResult:
    return CheckResult("g0", "status:web", ok, "" if ok else "stopped (exit 0)", 0.01)


def test_failures_restart_then_give_up_then_recover() -> None:
    runner, fed, glue = _runner_for_health()
    run = runner.runs["g0"]
    for _ in range(3):
        runner.on_check(run, _result(False))
    assert fed.restarts == 1 and not fed.inputs
    for _ in range(6):
        runner.on_check(run, _result(False))
    assert fed.restarts == 2
    assert fed.inputs == [HealthResult("g0", healthy=False)]
    assert run.given_up and glue.healthy["g0"] is False
    for _ in range(5):  # given up: no more restarts, nothing new for the core
        runner.on_check(run, _result(False))
    assert fed.restarts == 2 and len(fed.inputs) == 1
    runner.on_check(run, _result(True))
    assert fed.inputs[-1] == HealthResult("g0", healthy=True) and not run.given_up


def test_a_passing_check_resets_the_restart_count() -> None:
    runner, fed, _glue = _runner_for_health()
    run = runner.runs["g0"]
    for _ in range(5):
        for _ in range(3):
            runner.on_check(run, _result(False))
        runner.on_check(run, _result(True))
    assert fed.restarts == 5 and not fed.inputs


def test_results_for_a_group_not_held_are_ignored() -> None:
    runner, fed, _glue = _runner_for_health()
    run = runner.runs["g0"]
    run.held = False
    for _ in range(20):
        runner.on_check(run, _result(False))
    assert fed.restarts == 0 and not fed.inputs


def test_a_given_up_group_stopped_here_becomes_eligible_after_the_hold() -> None:
    runner, fed, _glue = _runner_for_health()
    run = runner.runs["g0"]

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            fed.tg = tg
            run.given_up = True
            run.held = False
            runner._hold_after_give_up(run)
            await asyncio.sleep(0.1)

    asyncio.run(main())
    assert fed.inputs == [HealthResult("g0", healthy=True)] and not run.given_up


# ---------------------------------------------------------------------------- admin, cli


def test_admin_commands_feed_the_core(tmp_path: Path) -> None:
    agent, fed = _agent_fed(tmp_path)
    agent._node = _node(agent.config)
    detail = asyncio.run(agent._admin(AdminKind.STANDBY))
    assert "standby" in detail
    assert fed.inputs == [AdminCommand(AdminKind.STANDBY)]


def test_admin_commands_refused_while_closing(tmp_path: Path) -> None:
    agent, _fed = _agent_fed(tmp_path)
    with pytest.raises(RuntimeError):
        asyncio.run(agent._admin(AdminKind.TAKEOVER))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1:9700", ("10.0.0.1", 9700)),
        ("[::1]:9694", ("::1", 9694)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_listen_option(text: str, expected: tuple[str, int]) -> None:
    assert _parse_listen(None, None, text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["10.0.0.1", ":80", "host:x", "host:70000"])
def test_listen_option_rejects(text: str) -> None:
    with pytest.raises(click.BadParameter):
        _parse_listen(None, None, text)  # type: ignore[arg-type]


def test_nan_free_status_json_for_a_fresh_peer() -> None:
    cfg = _config()
    glue, _ = _glue(cfg)
    doc = to_json(glue.refresh(_node(cfg), 0.5, WALL))
    peer = doc["nodes"][1]
    assert peer["silence_s"] is None or math.isfinite(peer["silence_s"])


@pytest.mark.parametrize("raised", ["plain", "group"])
def test_a_broken_pinger_marks_ping_nodes_unreachable_instead_of_ending_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: str
) -> None:
    from gossipha.core.types import PingResult
    from gossipha.runtime.icmp import Pinger

    async def broken_run(self: Any) -> None:
        error = OSError(19, "No such device")
        # A receiver inside the pinger's TaskGroup fails as an ExceptionGroup.
        raise error if raised == "plain" else ExceptionGroup("pinger", [error])

    monkeypatch.setattr(Pinger, "run", broken_run)
    agent, fed = _agent_fed(tmp_path)
    assert agent.config.ping_groups
    asyncio.run(agent._ping())
    assert [i for i in fed.inputs if isinstance(i, PingResult)] == [
        PingResult(pg.name, False) for pg in agent.config.ping_groups
    ]
