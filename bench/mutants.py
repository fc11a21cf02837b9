"""A mutation check of the safety net: plant one plausible bug at a time in a copy of
the core, and see whether the swarm (and, separately, the tests) find it.

    python bench/mutants.py --json [--schedules 2000] [--only NAME ...] [--tests]
        [--save-scripts DIR] [--with-fault KIND ...] [--pairs]

Each mutant is one edit of one line (old text -> new text, unique in its file). The
swarm runs `gossipha sim --swarm` on the mutated copy, stopping at the first violating
schedule: `schedules_to_kill` is how many it took. `--tests` also runs the unit and
simulator tests (not the random sweep) against each mutant. `--save-scripts DIR` writes
each killing schedule as DIR/<name>.json: tests/sim/test_regressions.py replays those
fault scripts against the landed code (clean) and against their mutant (caught).
`--with-fault KIND` runs only the schedules that draw a fault kind added after an earlier
table (gossipha/sim/swarm.py LATER_KINDS): the mutants that lived through the budget
then meet just the schedules that changed.

A safety mutant that the swarm does not kill within the budget (unless `masked_by` names
the rule that covers every case the swarm can build), or landed code that the swarm finds
a violation in, exits 1. A masked mutant names in `pair` the mutants of the rules that
mask it; `--pairs` plants them together, and the swarm must kill that pair within the
budget: the guards then cover for each other, and neither is dead code. Each alone is
isolated by a unit test (`--tests`). A new rule in the core comes with a new mutant here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # under gossipha/
    old: str
    new: str
    why: str  # the rule it breaks
    kind: str = "safety"
    # Another rule covers every case the swarm can build (so only a unit test isolates it).
    masked_by: str = ""
    # The swarm does not reach it yet: what it would take.
    gap: str = ""
    # For a masked one: the mutants that break the rules masking it. Planted together
    # (`paired`), the swarm must kill them: each guard then stands for the other.
    pair: tuple[str, ...] = ()
    # Further edits (path, old, new): a pair is one mutant of several lines.
    also: tuple[tuple[str, str, str], ...] = ()

    def edits(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.path, self.old, self.new), *self.also)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "voter_grants_over_running_promise",
        "core/lease.py",
        "if renew or ((free or ours) and fresh):",
        "if renew or fresh:",
        "a voter promises a group while its promise to another node still runs",
    ),
    Mutant(
        "epoch_promised_twice",
        "core/lease.py",
        "fresh = req.epoch > p.max_epoch or (req.epoch == p.max_epoch and p.max_owner == sender)",
        "fresh = req.epoch >= p.max_epoch",
        "the same epoch can be promised to two claimants (a fencing-token bug: the promise "
        "guard alone still keeps two holders apart, so the swarm is not expected to kill it)",
        "fencing",
    ),
    Mutant(
        "holder_drift_sign",
        "core/lease.py",
        "return lease_s * (1.0 - max_drift) - lease_s * STOP_GUARD_FRACTION",
        "return lease_s * (1.0 + max_drift) - lease_s * STOP_GUARD_FRACTION",
        "the holder's drift margin has the wrong sign",
    ),
    Mutant(
        "voter_span_no_drift",
        "core/lease.py",
        "return lease_s * (1.0 + max_drift)\n",
        "return lease_s\n",
        "a voter times its promise without the drift margin",
    ),
    Mutant(
        "restarted_voter_not_quiet",
        "core/lease.py",
        "self._quiet_until_s = start_s + self._span_s",
        "self._quiet_until_s = start_s",
        "a restarted voter grants at once, forgetting promises that still run",
    ),
    Mutant(
        "claim_timed_from_reply",
        "core/lease.py",
        "view.expires_s, sent_s + holder_span_s(self.lease_s, self.max_drift)",
        "view.expires_s, now_s + holder_span_s(self.lease_s, self.max_drift)",
        "the claimant times a promise from the reply, not from its request",
    ),
    Mutant(
        "release_of_any_epoch",
        "core/lease.py",
        "if p.holder != sender or p.epoch != epoch or p.inc != inc:",
        "if p.holder != sender or p.inc != inc:",
        "a late release of an older epoch ends the holder's newer promise",
    ),
    Mutant(
        "release_of_other_run",
        "core/lease.py",
        "if p.holder != sender or p.epoch != epoch or p.inc != inc:",
        "if p.holder != sender or p.epoch != epoch:",
        "a release delayed across the holder's restart ends the promise its new run got at the "
        "same epoch (swarm seed 1536)",
    ),
    Mutant(
        "reply_of_other_run_counted",
        "core/lease.py",
        "if reply.inc != self.inc and reply.inc != 0:",
        "if False:",
        "a claimant counts a late grant to its earlier run (same epoch and seq) as its own",
    ),
    Mutant(
        "late_request_of_other_run_renews",
        "core/lease.py",
        "ours = p.holder == sender and req.inc >= p.inc",
        "ours = p.holder == sender",
        "a late request from the holder's earlier run takes the promise back to that run",
    ),
    Mutant(
        "majority_of_even_is_half",
        "core/lease.py",
        "return voters // 2 + 1",
        "return (voters + 1) // 2",
        "half of an even voter count counts as a majority",
    ),
    Mutant(
        "two_node_rule_ignores_ping",
        "core/node.py",
        "return not (self._ipfail and self._ping_count() == 0)",
        "return True",
        "a node that reaches no ping node claims on the two-node rule",
    ),
    Mutant(
        "cut_off_node_eligible",
        "core/placement.py",
        "if status.ping_count == 0 and not self.all_members_alive():",
        "if status.ping_count == 0 and not self.all_members_alive() and False:",
        "placement: a node reaching no ping node while a member is silent may claim",
        masked_by=(
            "the two-node ping clause of Node._holding_valid: a cut-off node that claims never "
            "starts; placement only decides whether it tries"
        ),
        pair=("two_node_rule_ignores_ping",),
    ),
    Mutant(
        "two_node_rule_with_live_voter",
        "core/node.py",
        "if any(self.alive(v) for v in missing if v != self.name):",
        "if any(self.alive(v) for v in missing if v == self.name):",
        "the two-node rule claims while the other voter is alive",
        masked_by=(
            "refused_for_other and the VIP probe: a live voter refuses while it promises another "
            "node, and a live one whose answer is lost is probing or holding, which the probe sees"
        ),
        pair=("refusal_for_other_ignored",),
        gap=(
            "its pair lives too (2,000 schedules at f52fe75): the VIP probe sees every live "
            "holder the two rules would let us start beside. The swarm kills them once it draws a"
            " probe that misses an answer (one-way ARP loss, the known-holes issue)"
        ),
    ),
    Mutant(
        "refusal_for_other_ignored",
        "core/node.py",
        "        if claim.refused_for_other(now_s):\n            return False",
        "        if claim.refused_for_other(now_s) and not claiming:\n            return False",
        "a claimant ignores a voter that promised someone else",
        masked_by=(
            "the live-voter clause and the VIP probe: a refusal from a voter judged dead is from a "
            "crashed host (its VIP gone) or a killed agent (its VIP seen by the probe)"
        ),
        pair=("two_node_rule_with_live_voter",),
        gap=(
            "its pair lives too (2,000 schedules at f52fe75): the VIP probe sees every live "
            "holder the two rules would let us start beside. The swarm kills them once it draws a"
            " probe that misses an answer (one-way ARP loss, the known-holes issue)"
        ),
    ),
    Mutant(
        "probe_answer_ignored",
        "core/node.py",
        "self._on_probe(now_s, gname, answered, out)",
        "self._on_probe(now_s, gname, False, out)",
        "a VIP probe that another host answered counts as silence",
    ),
    Mutant(
        "stale_probe_trusted",
        "core/node.py",
        "PROBE_FRESH_PROBES = 1.5",
        "PROBE_FRESH_PROBES = 1000.0",
        "a probe answer from before a stall or a slow loop is trusted (seed 1037)",
    ),
    Mutant(
        "holder_keeps_lost_lease",
        "core/node.py",
        "                if not self._holding_valid(now_s, g, claiming=False):\n"
        "                    out.notice(NoticeKind.LEASE_LOST",
        "                if not self._holding_valid(now_s, g, claiming=True) and False:\n"
        "                    out.notice(NoticeKind.LEASE_LOST",
        "a running holder does not stop when its lease runs out",
    ),
    Mutant(
        "handover_skips_probe_on_half",
        "core/node.py",
        "        if claim.valid_until_s() <= now_s:\n            return False  # majority only",
        "        if claim.half_until_s() <= now_s:\n            return False  # majority only",
        "the handover fast path skips the probe on the two-node half rule",
        masked_by=(
            "the live-voter clause of the two-node rule: the fast path needs every member "
            "alive and the half rule every missing voter dead, so every member grants and "
            "only witnesses are missing, which needs at least as many witnesses as members "
            "(the swarm draws at most one); and a member with a VIP up promises itself, "
            "not us"
        ),
        pair=("two_node_rule_with_live_voter",),
        gap=(
            "its pair lives too (2,000 schedules at f52fe75): the fast path on exactly half needs"
            " as many witnesses as members, and the swarm draws at most one witness"
        ),
    ),
    Mutant(
        "handover_ignores_unreleased",
        "core/node.py",
        "        return not g.unreleased and all(self.alive(m) for m in self._roster.order)",
        "        return all(self.alive(m) for m in self._roster.order)",
        "the handover fast path skips the probe beside a node we saw hold the group that "
        "never released it (seed 18,283)",
    ),
    Mutant(
        "resource_result_of_other_epoch",
        "core/node.py",
        "        current = g.claim is not None and r.epoch == g.claim.epoch\n",
        "        current = True\n",
        "a stop's result that outlived its claim counts as the next claim's stop, which then "
        "releases with the VIP still up (soak seed 14,805)",
        gap=(
            "the simulator finishes a stop under way at once when a start comes "
            "(sim/harness.py Sim._perform), so the old stop's result meets the next stop only "
            "if that comes within action_delay_s (10 ms) of the start; the runtime queues the "
            "start behind the whole stop (runtime/groups.py), a window as long as the stop. "
            "The swarm needs that queue modelled (not in 2,000 schedules at f52fe75)"
        ),
    ),
    Mutant(
        "learned_epoch_owned_by_nobody",
        "core/lease.py",
        "            p.max_epoch, p.max_owner = epoch, holder\n",
        "            p.max_epoch, p.max_owner = epoch, None\n",
        "a voter refuses the holder's renewal at the epoch it learned from its status (seed 640)",
        "liveness",
    ),
    Mutant(
        "stale_holder_never_reasks",
        "core/node.py",
        "            claim.outbid()\n            and claim.valid_until_s() <= now_s\n",
        "            False\n            and claim.valid_until_s() <= now_s\n",
        "a holder on the two-node rule refused as stale never asks again higher (soak 43004)",
        "liveness",
    ),
    Mutant(
        "stall_keeps_probe",
        "core/node.py",
        '            g.probe_sent_s = float("-inf")\n',
        "            pass\n",
        "a stall does not void a pending probe answer",
        masked_by=(
            "the probe's freshness window: an answer held up by a stall arrives more than 1.5 "
            "probes after the ProbeVip, so it is probed again anyway (a stall just past the "
            "runtime's threshold on a long probe would tell them apart)"
        ),
        pair=("stale_probe_trusted",),
    ),
)

BY_NAME = {m.name: m for m in MUTANTS}


def paired(mutant: Mutant) -> Mutant:
    """`mutant` planted with the mutants of its `pair`, named by all of them (sorted, so
    a pair named from either side is the same mutant)."""
    parts = sorted([mutant, *(BY_NAME[n] for n in mutant.pair)], key=lambda m: m.name)
    first, rest = parts[0], parts[1:]
    return Mutant(
        "+".join(m.name for m in parts),
        first.path,
        first.old,
        first.new,
        "; ".join(m.why for m in parts),
        also=tuple(e for m in rest for e in m.edits()),
    )


def by_name(name: str) -> Mutant:
    """A mutant, or a pair by its joined name."""
    names = name.split("+")
    if len(names) == 1:
        return BY_NAME[name]
    return paired(replace(BY_NAME[names[0]], pair=tuple(names[1:])))


def apply(mutant: Mutant, root: Path) -> None:
    """Apply `mutant`'s edits, in order, to the gossipha package under `root` (a copy)."""
    for rel, old, new in mutant.edits():
        path = root / "gossipha" / rel
        text = path.read_text()
        count = text.count(old)
        if count != 1:
            raise SystemExit(f"mutant {mutant.name}: {rel} has {count} matches, expected 1")
        path.write_text(text.replace(old, new))


def mutated_copy(mutant: Mutant | None, dest: Path) -> Path:
    """A copy of the checkout (the package mutated unless None) at `dest`. Run from it,
    with `env(dest)`: Python puts the working directory (and pytest the rootdir) ahead of
    PYTHONPATH, so a run from the checkout itself would import the landed package."""
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".*_cache", "dist")
    shutil.copytree(REPO, dest, ignore=ignore)
    if mutant is not None:
        apply(mutant, dest)
    return dest


def env(root: Path) -> dict[str, str]:
    """The environment for a run from `root` (a `mutated_copy`)."""
    out = dict(os.environ)
    out["PYTHONPATH"] = str(root)
    out["PYTHONDONTWRITEBYTECODE"] = "1"
    return out


def run_swarm(
    root: Path,
    schedules: int,
    seed: int,
    save: Path | None,
    workers: int,
    with_fault: tuple[str, ...] = (),
) -> dict[str, object]:
    """The swarm against the package under `root`, stopped at the first violation; with
    `with_fault`, only the schedules that draw one of those kinds (`schedules` is then
    the seeds drawn)."""
    batch = 100
    done = 0
    while done < schedules:
        n = min(batch, schedules - done)
        cmd = [sys.executable, "-m", "gossipha", "sim", "--swarm", "--json"]
        cmd += ["--seed", str(seed + done), "--schedules", str(n), "--workers", str(workers)]
        if save is not None:
            cmd += ["--save-violation", str(save)]
        for kind in with_fault:
            cmd += ["--with-fault", kind]
        proc = subprocess.run(
            cmd, cwd=root, env=env(root), capture_output=True, text=True, timeout=3600
        )
        if proc.returncode not in (0, 1) or not proc.stdout.strip():
            raise SystemExit(f"swarm run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        report = json.loads(proc.stdout.splitlines()[0])
        if proc.returncode == 1:
            first = report["first_violation"]
            return {
                "killed": True,
                "schedules": first["seed"] - seed + 1,
                "seed": first["seed"],
                "violation": first["violations"][0],
            }
        done += n
    return {"killed": False, "schedules": schedules, "seed": None, "violation": None}


# The core's own tests: unit tests that drive the core, and the simulator's scripted tests.
# Not the two random sweeps (they are the swarm's job), not the regression scripts (the
# swarm found them), and not the runtime's asyncio tests (they test no core rule and time
# themselves by the wall clock).
CORE_TESTS = (
    "tests/unit/test_detector.py",
    "tests/unit/test_guards.py",
    "tests/unit/test_handover.py",
    "tests/unit/test_lease.py",
    "tests/unit/test_membership.py",
    "tests/unit/test_messages.py",
    "tests/unit/test_node.py",
    "tests/unit/test_node_ping.py",
    "tests/sim",
)
NOT_CORE_TESTS = (
    "not test_random_schedules_are_safe_and_live and not test_swarm_schedules_are_safe"
    " and not test_script_ and not test_every_safety_mutant_has_a_script"
)


def run_tests(root: Path) -> bool:
    """Do the core's tests (CORE_TESTS) fail on `root`'s package?"""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    cmd += [*CORE_TESTS, "-k", NOT_CORE_TESTS]
    proc = subprocess.run(
        cmd, cwd=root, env=env(root), capture_output=True, text=True, timeout=3600
    )
    return proc.returncode != 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--only", nargs="*", default=None, help="mutant names (a pair: names joined by +)"
    )
    ap.add_argument("--tests", action="store_true", help="also run the core's tests per mutant")
    ap.add_argument("--no-swarm", action="store_true", help="only the tests (with --tests)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the landed code's run")
    ap.add_argument("--save-scripts", type=Path, default=None)
    ap.add_argument(
        "--with-fault",
        action="append",
        default=[],
        help="only the schedules that draw this fault kind (repeatable): a kind added later",
    )
    ap.add_argument(
        "--pairs",
        action="store_true",
        help="also run each masked mutant planted with the mutants of its pair",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:  # a pair by its joined name runs as one mutant
        chosen = list(MUTANTS) if args.only is None else [by_name(n) for n in args.only]
    except KeyError as exc:
        known = ", ".join(m.name for m in MUTANTS)
        raise SystemExit(f"unknown mutant {exc} in {args.only}; known: {known}") from None
    started = time.perf_counter()
    rows: list[dict[str, object]] = []
    baseline: dict[str, object] | None = None
    pair_runs: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="gossipha-mutants-") as tmp:
        if not args.no_baseline and not args.no_swarm:
            root = mutated_copy(None, Path(tmp) / "landed")
            baseline = run_swarm(
                root, args.schedules, args.seed, None, args.workers, tuple(args.with_fault)
            )
            print(f"landed code: {baseline}", file=sys.stderr)
        for m in chosen:
            root = mutated_copy(m, Path(tmp) / m.name)
            save = None
            if args.save_scripts is not None:
                args.save_scripts.mkdir(parents=True, exist_ok=True)
                save = args.save_scripts.resolve() / f"{m.name}.json"
            t0 = time.perf_counter()
            if args.no_swarm:
                swarm = {"killed": False, "schedules": 0, "seed": None, "violation": None}
            else:
                swarm = run_swarm(
                    root, args.schedules, args.seed, save, args.workers, tuple(args.with_fault)
                )
            row: dict[str, object] = {
                "name": m.name,
                "kind": m.kind,
                "why": m.why,
                "file": f"gossipha/{m.path}",
                "killed_by_swarm": swarm["killed"],
                "schedules_to_kill": swarm["schedules"] if swarm["killed"] else None,
                "killing_seed": swarm["seed"],
                "violation": swarm["violation"],
                "killed_by_tests": run_tests(root) if args.tests else None,
                "masked_by": m.masked_by or None,
                "gap": m.gap or None,
                "pair": None,
                "pair_killed_by_swarm": None,
                "pair_schedules_to_kill": None,
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            if args.pairs and m.pair and not args.no_swarm:
                pm = paired(m)
                if pm.name not in pair_runs:
                    proot = mutated_copy(pm, Path(tmp) / pm.name)
                    psave = None if save is None else save.with_name(f"{pm.name}.json")
                    pair_runs[pm.name] = run_swarm(
                        proot,
                        args.schedules,
                        args.seed,
                        psave,
                        args.workers,
                        tuple(args.with_fault),
                    )
                run = pair_runs[pm.name]
                row["pair"] = pm.name
                row["pair_killed_by_swarm"] = run["killed"]
                row["pair_schedules_to_kill"] = run["schedules"] if run["killed"] else None
                row["wall_s"] = round(time.perf_counter() - t0, 1)
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    # A masked mutant stands only if its pair falls to the swarm (when pairs ran).
    survivors = [
        r["name"]
        for r in rows
        if r["kind"] == "safety"
        and not r["killed_by_swarm"]
        and (not r["masked_by"] or r["pair_killed_by_swarm"] is False)
    ]
    report = {
        "schedules_budget": args.schedules,
        "with_fault": args.with_fault or None,
        "seed": args.seed,
        "landed": baseline,
        "mutants": rows,
        "killed_by_swarm": sum(1 for r in rows if r["killed_by_swarm"]),
        "safety_survivors": survivors,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for r in rows:
            print(f"{r['name']:38} swarm={r['killed_by_swarm']} after={r['schedules_to_kill']}")
    failed = bool(survivors) or (baseline is not None and bool(baseline["killed"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
