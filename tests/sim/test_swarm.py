"""Swarm schedules (gossipha/sim/swarm.py): 2,000 in CI, each with its own cluster, timings
and faults; the fault script format and its replay; the L1 orphan rule that cannot hide a
violation; safety checked after every step."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from gossipha.core import lease
from gossipha.core.types import LeaseReply, LeaseRequest, NodeId
from gossipha.sim import swarm
from gossipha.sim.command import sim as sim_command
from gossipha.sim.command import swarm_report, swarm_results
from gossipha.sim.harness import Sim, make_config
from gossipha.sim.swarm import FAULT_KINDS, LATER_KINDS, Schedule, draw, orphan_bound_s, run
from tests.sim.test_random import CI_TIMINGS

# GOSSIPHA_SWARM_SCHEDULES=100000 (and GOSSIPHA_SWARM_SEED) for a soak.
SCHEDULES = int(os.environ.get("GOSSIPHA_SWARM_SCHEDULES", "2000"))
FIRST_SEED = int(os.environ.get("GOSSIPHA_SWARM_SEED", "0"))
WORKERS = int(os.environ.get("GOSSIPHA_SIM_WORKERS", "2"))


def test_swarm_schedules_are_safe_and_live() -> None:
    """2,000 swarm schedules (a few minutes on two cores): no two holders at once outside
    L1, every L1 overlap within its bound, one holder within the liveness bound."""
    runs = swarm_results(FIRST_SEED, SCHEDULES, None, WORKERS)
    report, bad = swarm_report(runs, FIRST_SEED, None, 1.0)
    assert bad is None, (
        json.dumps(report["first_violation"], indent=1) + "\n" + "\n".join(bad[2].trace)
    )
    swarm = report["swarm"]
    assert isinstance(swarm, dict)
    # The draw reaches what it claims to: every cluster size, witnesses, every fault kind,
    # leases from shorter than detection to many times longer.
    assert set(swarm["nodes"]) == {"2", "3", "4", "5", "6", "7"}
    assert swarm["with_witness"] > SCHEDULES // 5
    assert set(swarm["faults"]) == set(FAULT_KINDS)
    assert swarm["lease_over_deadtime"]["min"] < 0.5 < 4 < swarm["lease_over_deadtime"]["max"]


def test_fault_script_round_trips_and_replays_the_same_run(tmp_path: Path) -> None:
    schedule = draw(7)
    again = Schedule.from_json(json.loads(schedule.dumps()))
    assert again == schedule
    a, b = run(schedule), run(again)
    assert (a.steps, a.messages, a.sim_s) == (b.steps, b.messages, b.sim_s)
    path = tmp_path / "script.json"
    path.write_text(schedule.dumps())
    res = CliRunner().invoke(sim_command, ["--replay", str(path), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["schedules"] == 1 and report["safety_violations"] == 0


def test_swarm_json_keeps_the_sim_keys_and_adds_its_own() -> None:
    res = CliRunner().invoke(sim_command, ["--swarm", "--schedules", "3", "--seed", "4", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    for key in ("nodes", "schedules", "seed", "safety_violations", "liveness_violations"):
        assert key in report
    for key in ("detect_s", "failover_s", "msgs_per_node_s", "steps_per_s", "wall_s"):
        assert key in report
    assert report["schedules"] == 3 and report["first_violation"] is None
    assert set(report["orphan_overlap_s"]) == {"total", "max", "max_outlived"}
    assert set(report["swarm"]) >= {"nodes", "with_witness", "faults", "lease_over_deadtime"}
    res = CliRunner().invoke(sim_command, ["--swarm", "--nodes", "3", "--schedules", "2", "--json"])
    assert json.loads(res.stdout)["swarm"]["nodes"] == {"3": 2}


def test_swarm_violation_exits_1_with_a_script_that_replays_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A voter that grants over a running promise: the first violating schedule is in the
    JSON and on disk, and replaying that file finds the violation again."""
    monkeypatch.setattr(lease.Voter, "on_request", _greedy_on_request)
    saved = tmp_path / "bad.json"
    args = ["--swarm", "--schedules", "200", "--json", "--save-violation", str(saved)]
    res = CliRunner().invoke(sim_command, args)
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout.splitlines()[0])
    first = report["first_violation"]
    assert first["replay"] == f"gossipha sim --swarm --seed {first['seed']} --schedules 1"
    assert Schedule.from_json(first["schedule"]) == Schedule.from_json(
        json.loads(saved.read_text())
    )
    assert "replay: gossipha sim --swarm" in res.stderr
    res = CliRunner().invoke(sim_command, ["--replay", str(saved), "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout.splitlines()[0])["safety_violations"]


def test_replay_of_a_bad_file_exits_78_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"seed": 1}')
    res = CliRunner().invoke(sim_command, ["--replay", str(bad)])
    assert res.exit_code == 78 and f"{bad}: not a fault script" in res.stderr
    res = CliRunner().invoke(sim_command, ["--swarm", "--loss", "0.1"])
    assert res.exit_code == 2 and "no --loss" in res.output


# ---------------------------------------------------------------- the L1 orphan rule


def _greedy_on_request(
    self: lease.Voter, now_s: float, sender: NodeId, req: LeaseRequest
) -> LeaseReply:
    """Voter.on_request with one bug: it grants while another node's promise runs."""
    p = self._get(req.group)
    if now_s < self._quiet_until_s:
        return LeaseReply(req.group, req.epoch, req.seq, False, "", p.max_epoch, 1.0)
    p.holder, p.epoch = sender, req.epoch
    p.expires_s = now_s + self._span_s
    p.max_epoch, p.max_owner = max(p.max_epoch, req.epoch), sender
    return LeaseReply(req.group, req.epoch, req.seq, True, sender, p.max_epoch, 0.0)


def _killed_holder_cut_off(lease_s: float) -> Sim:
    """Two nodes and a witness; n0 holds; its agent is killed (VIP stays up) and its host
    cut off on both networks. n1 takes over once n0 is judged dead."""
    timings = replace(CI_TIMINGS, lease_s=lease_s)
    sim = Sim(make_config(2, witnesses=1, timings=timings), 3)
    sim.run_until(2 * lease_s + 4.0)
    assert sim.holders("g0") == ["n0"], sim.trace[-20:]
    sim.kill_agent("n0")
    sim.net.partition(["n0"], ["n1", "w0"], service=True)
    sim.run_until(sim.now_s + 3 * lease_s + 3.0)
    return sim


def test_orphan_whose_lease_ran_out_is_l1() -> None:
    """A 3 s lease, detection in about a second: n1 waits for the promises to n0 to run out,
    then starts. The overlap with n0's orphan VIP is L1, not a violation."""
    sim = _killed_holder_cut_off(3.0)
    assert sorted(sim.holders("g0")) == ["n0", "n1"]
    assert sim.stats.orphan_overlaps == 1 and not sim.violations
    start = next(t for t, h, _, _ in sim.stats.starts if h == "n1")
    assert sim.lease_ran_out("g0", "n0", start)


def test_orphan_inside_its_lease_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same story with a voter that grants over a running promise: n1 starts while
    n0's lease still runs. The old check counted that as L1; it is a violation."""
    monkeypatch.setattr(lease.Voter, "on_request", _greedy_on_request)
    sim = _killed_holder_cut_off(3.0)
    assert sim.violations and sim.violations[0].kind == "safety", sim.trace[-20:]
    assert sim.stats.orphan_overlaps == 0


def test_orphan_overlap_length_and_its_end_after_restart() -> None:
    sim = _killed_holder_cut_off(3.0)
    sim.heal()
    sim.restart("n0")  # finds its VIP, hears n1 run the group, lets go
    sim.run_until(sim.now_s + 0.5)  # (a failback to n0 follows later)
    assert sim.holders("g0") == ["n1"] and not sim.violations
    sim.close_overlaps()
    [(span_s, outlived_s)] = sim.stats.orphan_spans
    assert span_s > 0 and 0 <= outlived_s < 1.0


def test_safety_is_checked_after_every_step_not_only_at_starts() -> None:
    """A second holder that appears without a StartGroup (here: planted by hand) is found at
    the next step of any node."""
    sim = Sim(make_config(3, timings=CI_TIMINGS), 1)
    sim.run_until(4.0)
    assert sim.holders("g0") == ["n0"]
    sim.hosts["n2"].up.add("g0")
    sim.run_until(sim.now_s + 0.5)
    assert [v.kind for v in sim.violations] == ["safety"]


def test_a_pause_reaches_the_core_as_a_stall_only_past_the_runtime_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in the runtime (runtime/clock.py): a pause shorter than the stall threshold goes
    unreported, so the core must be safe without knowing of it; a longer one is Stalled."""
    from gossipha.core.node import Node
    from gossipha.core.types import Stalled
    from gossipha.runtime.clock import stall_threshold_s

    stalls: list[float] = []
    step = Node.step

    def spy(self: Node, now_s: float, event: object) -> object:
        if isinstance(event, Stalled):
            stalls.append(event.duration_s)
        return step(self, now_s, event)  # type: ignore[arg-type]

    monkeypatch.setattr(Node, "step", spy)
    sim = Sim(make_config(3, timings=CI_TIMINGS), 1, drift=False)
    sim.run_until(4.0)
    threshold_s = stall_threshold_s(CI_TIMINGS.keepalive_s, CI_TIMINGS.lease_s)
    sim.pause("n1", 0.5 * threshold_s)
    sim.run_until(sim.now_s + 1.0)
    assert stalls == []
    sim.pause("n1", 3 * threshold_s)
    sim.run_until(sim.now_s + 1.0)
    # Counted from the last step before the pause, as the runtime counts it.
    assert len(stalls) == 1
    assert 3 * threshold_s <= stalls[0] <= 3 * threshold_s + CI_TIMINGS.keepalive_s


def test_pause_at_probe_holds_the_probe_answer_back() -> None:
    """The fault kind pause_at_probe pauses a node as it sends its next VIP probe."""
    sim = Sim(make_config(2, timings=CI_TIMINGS), 1)
    sim.run_until(4.0)
    sim.on_probe("n1", lambda: sim.pause("n1", 0.05))
    sim.crash_host("n0")
    sim.run_until(sim.now_s + 5 * CI_TIMINGS.lease_s + 3.0)
    assert any("n1 PAUSE" in line for line in sim.trace)
    assert sim.holders("g0") == ["n1"] and not sim.violations
    assert "pause_at_probe" in FAULT_KINDS


def _logged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every line the Sims of this test log (the player's FAULT lines included)."""
    lines: list[str] = []
    log = Sim.log

    def keep(self: Sim, text: str) -> None:
        lines.append(text)
        log(self, text)

    monkeypatch.setattr(Sim, "log", keep)
    return lines


def test_isolate_ping_never_cuts_off_a_follower_mid_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    """Soak seed 3104: a follower that had lost its ping node claimed on a majority (its
    peer just back) as isolate_ping cut it off; the grant came in after the cut and it
    started the group cut off on the service network, which is limit L2, read as two
    holders. The fault skips a claiming follower now, as ping_mid_claim does."""
    lines = _logged(monkeypatch)
    script = Path(__file__).parent / "scripts" / "isolate_ping_mid_claim.json"
    r = run(Schedule.from_json(json.loads(script.read_text())))
    assert "FAULT isolate_ping: n0 holds or claims a group now, skipped" in lines
    assert not r.safety and not r.liveness, "\n".join(r.safety + r.liveness + r.trace)


def test_a_later_fault_kind_leaves_every_other_schedule_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LATER_KINDS draw from their own streams: a schedule that does not draw one is the
    one drawn before the kind existed (so a soak of those schedules still stands), and
    one that does keeps every other fault."""
    with_later = {s: draw(s) for s in range(400)}
    monkeypatch.setattr(swarm, "LATER_KINDS", {})
    drew: dict[str, int] = {kind: 0 for kind in LATER_KINDS}
    for s, schedule in with_later.items():
        before = draw(s)
        later = [f for f in schedule.faults if f.kind in LATER_KINDS]
        if not later:
            assert schedule == before
            continue
        for f in later:
            drew[f.kind] += 1
        assert tuple(f for f in schedule.faults if f.kind not in LATER_KINDS) == before.faults
        if any(f.kind == "probe_race" for f in later):
            assert len(schedule.config().voters) == 2
        if any(f.kind == "orphan_return" for f in later):
            assert schedule.members >= 3
    assert 0.5 * 0.2 * 400 < drew["stale_run"] < 1.5 * 0.2 * 400
    assert drew["probe_race"] > 20
    assert drew["orphan_return"] > 40


def test_with_fault_runs_only_the_schedules_that_draw_it() -> None:
    seeds = range(20, 50)
    expected = [s for s in seeds if any(f.kind == "stale_run" for f in draw(s).faults)]
    args = ["--swarm", "--seed", "20", "--schedules", "30", "--with-fault", "stale_run"]
    res = CliRunner().invoke(sim_command, [*args, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["schedules"] == len(expected) > 0
    assert report["swarm"]["drawn"] == 30 and report["swarm"]["with_fault"] == ["stale_run"]
    assert report["swarm"]["faults"]["stale_run"] >= len(expected)
    res = CliRunner().invoke(sim_command, ["--with-fault", "stale_run"])
    assert res.exit_code == 2 and "--with-fault needs --swarm" in res.output
    res = CliRunner().invoke(sim_command, ["--swarm", "--with-fault", "nosuch"])
    assert res.exit_code == 2


def test_stale_run_lands_an_earlier_runs_grants_on_its_new_run() -> None:
    """The fault kind stale_run: the holder's agent is killed young and starts again cut
    off; its voters' grants to the earlier run arrive as the new run sends requests of the
    same seq. The landed claimant counts none of them, so its VIP goes when its lease runs
    out (a claimant that counted them kept running inside n1's lease: mutant
    reply_of_other_run_counted)."""
    sim = Sim(make_config(3, timings=CI_TIMINGS), 2)
    sim.run_until(1.0)
    assert sim.holders("g0") == ["n0"]
    sim.hold_stale_copies("n0")
    sim.kill_agent("n0")
    sim.run_until(sim.now_s + 0.1)
    sim.net.partition(["n0"], ["n1", "n2"], service=True)
    sim.restart("n0")
    sim.run_until(sim.now_s + 10 * CI_TIMINGS.lease_s)
    assert any("a grant to its earlier run" in line for line in sim.trace), sim.trace[-30:]
    assert sim.holders("g0") == ["n1"] and not sim.violations, sim.trace[-30:]


def test_probe_race_pauses_the_second_claimant_as_it_probes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fault kind probe_race: with the heartbeat link cut, the holder goes to standby,
    the other node is paused as it probes, and the first takes over just after that probe
    ends: its start makes the paused node's silent answer wrong, which must not be trusted
    (mutant stale_probe_trusted, tests/sim/regressions/stale_probe_trusted.json)."""
    lines = _logged(monkeypatch)
    raced = 0
    for seed in range(200):
        schedule = draw(seed)
        if not any(f.kind == "probe_race" for f in schedule.faults):
            continue
        lines.clear()
        r = run(schedule)
        assert not r.safety and not r.liveness, "\n".join(r.safety + r.liveness + r.trace)
        assert len(schedule.config().voters) == 2
        raced += any("paused as it probes" in line for line in lines)
    assert raced >= 5


def test_orphan_return_hands_over_beside_a_returned_orphan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fault kind orphan_return: the group moves off a holder put in standby, its new
    holder is cut off and paused with its VIP up, a third node takes over (limit L1), and
    as the orphan runs again, slow to stop, the first holder takes the group back on the
    third one's release. The orphan never released its epoch, so the first holder probes
    and waits instead of starting beside it (mutant handover_ignores_unreleased,
    tests/sim/regressions/handover_ignores_unreleased.json)."""
    lines = _logged(monkeypatch)
    orphaned = 0
    for seed in range(120):
        schedule = draw(seed)
        if not any(f.kind == "orphan_return" for f in schedule.faults):
            continue
        lines.clear()
        r = run(schedule)
        assert not r.safety and not r.liveness, "\n".join(r.safety + r.liveness + r.trace)
        assert schedule.members >= 3
        orphaned += any("cut off and paused" in line for line in lines)
    assert orphaned >= 5


def test_a_holder_that_claims_again_while_its_stop_runs_is_no_orphan() -> None:
    """Seed 9255 of the soak at f72ab5d: n0 started beside n1's paused orphan (L1), lost
    its own lease while it ran (cut off by voter_restart) and claimed again while its VIP
    was still going down. The checker took the claimant for an orphan (its phase was
    acquiring, and its lease "ran out" at its agent's start, before it had any) and
    counted 1.66 s past a return it never had. A holder that lost its lease while running
    is a live holder until its VIP is down."""
    script = Path(__file__).parent / "scripts" / "stopping_holder_claims_again.json"
    r = run(Schedule.from_json(json.loads(script.read_text())))
    assert not r.safety and not r.liveness, "\n".join(r.safety + r.liveness + r.trace)
    assert r.orphans >= 1 and all(outlived == 0.0 for _, outlived in r.orphan_spans)


def test_an_orphan_cut_off_from_its_successor_stays_l1_as_another_vip_goes_down() -> None:
    """Seed 19,767 of the soak at e0ab168: n3 started at 19.13 beside two paused orphans,
    n1 and n2, both cut off and their leases over (L1). The cut around n1 healed at 19.42;
    at 19.49 n2's VIP went down, and the checker judged the remaining pair {n1, n3} anew,
    found them connected and called it a violation. A pair judged apart when it began to
    overlap stays so while both run the group (Overlap.apart)."""
    script = Path(__file__).parent / "scripts" / "orphan_cut_heals_as_a_third_vip_goes_down.json"
    r = run(Schedule.from_json(json.loads(script.read_text())))
    assert not r.safety and not r.liveness, "\n".join(r.safety + r.liveness + r.trace)
    assert r.orphans == 3


def test_an_orphans_bound_counts_its_stop() -> None:
    """Seed 28,942 of the soak at 01da147: n1, paused and cut off, was killed; its agent came
    back still cut off, adopted its VIP and stopped after 2L without a lease, as it should,
    but orphan_return had made that stop slow (0.59 s). The overlap outlived the return by
    1.36 s against an agent-only bound of 1.19 s. The VIP is gone when the stop ends: the
    bound adds the longest stop the schedule draws."""
    script = Path(__file__).parent / "scripts" / "restarted_orphan_stops_slowly.json"
    schedule = Schedule.from_json(json.loads(script.read_text()))
    r = run(schedule)
    assert not r.safety and not r.liveness, "\n".join(r.safety + r.liveness + r.trace)
    ((_, outlived_s),) = r.orphan_spans
    agent_only = orphan_bound_s(schedule.config(), 0.0)
    assert agent_only < outlived_s <= r.orphan_bound_s
