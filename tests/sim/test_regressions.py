"""Regressions: fault scripts that stay regressions, and scripted stories.

Each tests/sim/regressions/NAME.json is the explicit fault script (gossipha/sim/swarm.py)
that the swarm found against mutant NAME of bench/mutants.py: a planted bug, or a fixed
one put back (seed 1037's stale probe answer, seed 640's voter that refused the holder's
own epoch, soak seed 43004's holder that never asked again). The landed code plays each
cleanly; with its mutant applied to a copy of the package, the same script fails. A
script that stops failing under its mutant has drifted: find a new one with
`python bench/mutants.py --only NAME --save-scripts tests/sim/regressions`.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gossipha.sim.harness import Sim, make_config
from gossipha.sim.swarm import Schedule, run
from tests.sim.test_random import CI_TIMINGS

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "tests" / "sim" / "regressions").glob("*.json"))
_spec = importlib.util.spec_from_file_location("bench_mutants", REPO / "bench" / "mutants.py")
assert _spec is not None and _spec.loader is not None
mutants = importlib.util.module_from_spec(_spec)
sys.modules["bench_mutants"] = mutants
_spec.loader.exec_module(mutants)


def test_every_safety_mutant_has_a_script() -> None:
    """Each safety mutant the swarm kills has its killing schedule here; a masked one, its
    pair's (bench/mutants.py `pair`). A `gap` names what the swarm lacks to kill it."""
    have = {p.stem for p in SCRIPTS}
    safety = [m for m in mutants.MUTANTS if m.kind == "safety" and not m.gap]
    expected = [mutants.paired(m).name if m.masked_by else m.name for m in safety]
    missing = [name for name in expected if name not in have]
    assert not missing, f"no fault script for {missing}: bench/mutants.py --save-scripts"
    unknown = [name for name in have if not _known(name)]
    assert not unknown, f"scripts without a mutant: {unknown}"


def test_every_masked_mutant_names_a_pair_that_plants(tmp_path: Path) -> None:
    """A masked mutant is covered only through its pair: the pair must exist and apply."""
    shutil.copytree(REPO / "gossipha", tmp_path / "gossipha")
    for m in mutants.MUTANTS:
        assert bool(m.masked_by) == bool(m.pair), f"{m.name}: masked_by and pair go together"
        if m.pair:
            root = tmp_path / m.name
            shutil.copytree(tmp_path / "gossipha", root / "gossipha")
            mutants.apply(mutants.paired(m), root)


def _known(name: str) -> bool:
    try:
        mutants.by_name(name)
    except KeyError:
        return False
    return True


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_is_clean_on_the_landed_code(script: Path) -> None:
    r = run(Schedule.from_json(json.loads(script.read_text())))
    assert not r.safety and not r.liveness, "\n".join(r.safety + r.liveness + r.trace)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_still_fails_with_its_mutant(script: Path, tmp_path: Path) -> None:
    root = mutants.mutated_copy(mutants.by_name(script.stem), tmp_path / "copy")
    cmd = [sys.executable, "-m", "gossipha", "sim", "--replay", str(script), "--json"]
    proc = subprocess.run(
        cmd, cwd=root, env=mutants.env(root), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, f"{script.stem} no longer caught:\n{proc.stdout}{proc.stderr}"


def _isolated_holder(members: int, witnesses: int, seed: int) -> Sim:
    sim = Sim(make_config(members, witnesses=witnesses, timings=CI_TIMINGS), seed)
    sim.run_until(4.0)
    assert sim.holders("g0") == ["n0"], sim.trace
    return sim


@pytest.mark.parametrize("seed", range(3))
def test_l1_stalled_holder_isolated_is_counted_apart_and_drops_on_resume(seed: int) -> None:
    """Limit L1 scripted (random seeds 1982 and 1636 first found it): a stalled agent
    cannot take its VIP down and a probe cannot see it across a cut service network, so a
    successor's start overlaps it once its lease ran out: counted as an orphan, not a
    violation, and over once the agent runs again."""
    sim = _isolated_holder(3, 0, seed)
    sim.pause("n0", 2.8)
    sim.net.partition(["n0"], ["n1", "n2"], service=True)
    sim.run_until(6.5)
    assert len(sim.holders("g0")) == 2 and sim.stats.orphan_overlaps >= 1
    assert not sim.violations
    sim.run_until(8.0)  # resumed: the stall rule drops the expired lease and the VIP
    assert len(sim.holders("g0")) == 1 and "n0" not in sim.holders("g0")
    assert not sim.violations


@pytest.mark.parametrize("seed", range(3))
def test_l1_killed_holder_isolated_is_counted_apart_until_restarted(seed: int) -> None:
    sim = _isolated_holder(2, 1, seed)
    sim.kill_agent("n0")
    sim.net.partition(["n0"], ["n1", "w0"], service=True)
    sim.run_until(6.5)
    assert sorted(sim.holders("g0")) == ["n0", "n1"] and sim.stats.orphan_overlaps >= 1
    assert not sim.violations
    sim.heal()
    sim.restart("n0")  # it finds its VIP up, hears n1 running the group, and lets go
    sim.run_until(7.0)
    assert sim.holders("g0") == ["n1"], sim.trace[-20:]
    sim.run_until(12.0)  # then, after failback_delay, back home the normal way
    assert sim.holders("g0") == ["n0"], sim.trace[-20:]
    assert not sim.violations


@pytest.mark.parametrize("seed", range(4))
def test_holder_adopted_at_a_stale_epoch_moves_to_a_majority_lease_after_heal(seed: int) -> None:
    """The soak's seed 43004 (2 nodes, `9385fa9`): n0's agent was killed, and restarted
    while cut off from n1 on the heartbeat network. It adopted its VIP at epoch 1 (it
    knew no higher) and ran on the two-node rule. After the heal n1 refused epoch 1 as
    stale, so n0 kept running without a majority lease, and two heartbeats lost in a row
    (5 % loss) let n1 declare it dead and take over. A holder refused as stale now asks
    again at a higher epoch, keeping its group, and so settles on a majority lease."""
    sim = Sim(make_config(2, timings=CI_TIMINGS), seed)
    sim.run_until(4.0)
    assert sim.holders("g0") == ["n0"] and sim.settled()
    n1 = sim.hosts["n1"].node
    assert n1 is not None
    sim.kill_agent("n0")
    sim.net.partition(["n0"], ["n1"], service=False)
    sim.run_until(5.0)
    sim.restart("n0")
    sim.run_until(8.0)
    assert sim.holders("g0") == ["n0"], sim.trace[-20:]
    n0 = sim.hosts["n0"].node
    assert n0 is not None and n0.epoch("g0") == 1, "adopted at the only epoch it knew"
    sim.heal()
    sim.run_until(8.0 + 4 * CI_TIMINGS.lease_s)
    assert sim.holders("g0") == ["n0"] and sim.settled(), sim.trace[-20:]
    assert n0.epoch("g0") > 1
    # Now n1 wrongly believing n0 dead (its heartbeats lost for a while) moves nothing.
    starts = len(sim.stats.starts)
    sim.net.cut.add(("n0", "n1"))
    sim.run_until(sim.now_s + 4 * CI_TIMINGS.keepalive_s)
    sim.net.cut.discard(("n0", "n1"))
    sim.run_until(sim.now_s + 3.0)
    assert sim.holders("g0") == ["n0"] and len(sim.stats.starts) == starts, sim.trace[-20:]
    assert not sim.violations
