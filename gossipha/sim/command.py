"""`gossipha sim`: run K seeded random schedules of the real core and print one JSON object.

`--swarm`: each schedule draws its own cluster, timings and faults (gossipha/sim/swarm.py);
`--replay FILE` plays one saved fault script. Exit status 1 when any safety or liveness
violation was found; the first one is printed (stderr) with a short trace and the command
line that replays it, and in the JSON as `first_violation`.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from gossipha.config.errors import EXIT_CONFIG
from gossipha.config.model import Config, Timings
from gossipha.sim.harness import make_config, native_timings
from gossipha.sim.scenarios import ScheduleResult, percentiles, random_schedule
from gossipha.sim.swarm import FAULT_KINDS, Schedule, SwarmResult, draw
from gossipha.sim.swarm import run as run_schedule


def _config(nodes: int | None, config_path: Path | None, node_name: str | None) -> Config:
    """The simulated cluster: `nodes` made-up nodes, or the cluster of a configuration file
    (read as `node_name` sees it, default uname -n; every node is simulated either way).
    A bad file exits 78 with the loader's file:line messages, as `check-config` does."""
    if config_path is None:
        if node_name is not None:
            raise click.UsageError("--node-name needs --config")
        return make_config(2 if nodes is None else nodes)
    if nodes is not None:
        raise click.UsageError("--nodes and --config are exclusive: the file names the nodes")
    from gossipha.config import load as load_mod
    from gossipha.config.errors import ConfigError

    try:
        loaded = load_mod.load(config_path, node_name=node_name, host_addresses=frozenset())
    except ConfigError as exc:
        for error in exc.each():  # every error of the files, as check-config prints them
            click.echo(f"gossipha: error: {error.render()}", err=True)
        sys.exit(EXIT_CONFIG)
    cfg = loaded.config
    return replace(cfg, node_name=cfg.nodes[0].name)


def run(
    config: Config, schedules: int, seed: int, loss: float, jitter_s: float, measure: bool = True
) -> tuple[dict[str, object], ScheduleResult | None]:
    started = time.perf_counter()
    results = []
    first_bad: ScheduleResult | None = None
    for i in range(schedules):
        r = random_schedule(config, seed + i, loss=loss, jitter_s=jitter_s, measure_bytes=measure)
        results.append(r)
        if first_bad is None and (r.safety or r.liveness):
            first_bad = r
    wall = time.perf_counter() - started
    n = len(config.nodes)
    sim_s = sum(r.sim_s for r in results) or 1.0
    report: dict[str, object] = {
        "nodes": n,
        "schedules": schedules,
        "seed": seed,
        "loss": loss,
        "jitter_s": jitter_s,
        "safety_violations": sum(len(r.safety) for r in results),
        "liveness_violations": sum(len(r.liveness) for r in results),
        "orphan_overlaps": sum(r.orphans for r in results),
        "orphan_overlap_s": _orphan_spans([span for r in results for span in r.orphan_spans]),
        "first_violation_seed": None if first_bad is None else first_bad.seed,
        "first_violation": None,
        "swarm": None,
        "detect_s": percentiles([r.detect_s for r in results if r.detect_s is not None]),
        "detect_all_s": percentiles(
            [r.detect_all_s for r in results if r.detect_all_s is not None]
        ),
        "failover_s": percentiles([r.failover_s for r in results if r.failover_s is not None]),
        "msgs_per_node_s": round(sum(r.messages for r in results) / (n * sim_s), 3),
        "bytes_per_node_s": round(sum(r.bytes for r in results) / (n * sim_s), 1),
        "steps_per_s": round(sum(r.steps for r in results) / wall, 1) if wall else None,
        "wall_s": round(wall, 3),
    }
    return report, first_bad


def _first_violation(
    seed: int, schedule: dict[str, Any] | None, replay: str, r: ScheduleResult
) -> dict[str, Any]:
    """The JSON's `first_violation`: what failed, and the command line that replays it."""
    return {
        "seed": seed,
        "schedule": schedule,
        "replay": replay,
        "violations": r.safety + r.liveness,
    }


def _orphan_spans(spans: list[tuple[float, float]]) -> dict[str, float]:
    """L1 overlaps' lengths, and the most one outlived its orphan agent's return."""
    return {
        "total": round(sum(s for s, _ in spans), 4),
        "max": round(max((s for s, _ in spans), default=0.0), 4),
        "max_outlived": round(max((o for _, o in spans), default=0.0), 4),
    }


def _swarm_batch(
    args: tuple[int, int, int | None, frozenset[str]],
) -> list[tuple[int, Schedule, SwarmResult]]:
    first, count, members, kinds = args
    out = []
    for seed in range(first, first + count):
        schedule = draw(seed, members=members)
        if kinds and not any(f.kind in kinds for f in schedule.faults):
            continue
        out.append((seed, schedule, run_schedule(schedule)))
    return out


def swarm_results(
    first_seed: int,
    schedules: int,
    members: int | None,
    workers: int = 1,
    kinds: frozenset[str] = frozenset(),
) -> list[tuple[int, Schedule, SwarmResult]]:
    """(seed, schedule, result) of `schedules` swarm schedules from `first_seed`; with
    `kinds`, only those whose draw has a fault of one of these kinds (the rest are drawn,
    not run: a soak of a new kind, beside an earlier soak of the schedules without it)."""
    chunk = 25
    jobs = [
        (s, min(chunk, first_seed + schedules - s), members, kinds)
        for s in range(first_seed, first_seed + schedules, chunk)
    ]
    if workers <= 1:
        batches = [_swarm_batch(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            batches = list(pool.map(_swarm_batch, jobs))
    return [run for batch in batches for run in batch]


def swarm_report(
    runs: list[tuple[int, Schedule, SwarmResult]],
    seed: int,
    members: int | None,
    wall_s: float,
    replay_file: Path | None = None,
    drawn: int | None = None,
    kinds: frozenset[str] = frozenset(),
) -> tuple[dict[str, object], tuple[int, Schedule, SwarmResult] | None]:
    """The JSON of a swarm run (today's keys of `gossipha sim`, plus the swarm's)."""
    results = [r for _, _, r in runs]
    bad = next(((s, sch, r) for s, sch, r in runs if r.safety or r.liveness), None)
    spans = [span for r in results for span in r.orphan_spans]
    nodes: Counter[int] = Counter(sch.members for _, sch, _ in runs)
    faults: Counter[str] = Counter(f.kind for _, sch, _ in runs for f in sch.faults)
    ratio = [sch.timings["lease_s"] / sch.timings["deadtime_s"] for _, sch, _ in runs]
    node_s = sum(r.sim_s * (sch.members + sch.witnesses) for _, sch, r in runs) or 1.0
    first: dict[str, Any] | None = None
    if bad is not None:
        bseed, bsch, br = bad
        if replay_file is not None:
            replay = f"gossipha sim --replay {replay_file}"
        else:
            fixed = f" --nodes {members}" if members else ""
            replay = f"gossipha sim --swarm{fixed} --seed {bseed} --schedules 1"
        first = _first_violation(bseed, bsch.to_json(), replay, br)
    report: dict[str, object] = {
        "nodes": members,
        "schedules": len(runs),
        "seed": seed,
        "loss": None,
        "jitter_s": None,
        "safety_violations": sum(len(r.safety) for r in results),
        "liveness_violations": sum(len(r.liveness) for r in results),
        "orphan_overlaps": sum(r.orphans for r in results),
        "orphan_overlap_s": _orphan_spans(spans),
        "first_violation_seed": None if bad is None else bad[0],
        "first_violation": first,
        "detect_s": percentiles([]),
        "detect_all_s": percentiles([]),
        "failover_s": percentiles([]),
        "msgs_per_node_s": round(sum(r.messages for r in results) / node_s, 3),
        "bytes_per_node_s": None,
        "steps_per_s": round(sum(r.steps for r in results) / wall_s, 1) if wall_s else None,
        "wall_s": round(wall_s, 3),
        "swarm": {
            "nodes": {str(k): v for k, v in sorted(nodes.items())},
            "with_witness": sum(1 for _, sch, _ in runs if sch.witnesses),
            "faults": dict(sorted(faults.items())),
            "lease_over_deadtime": {
                "min": round(min(ratio, default=0.0), 3),
                "max": round(max(ratio, default=0.0), 3),
            },
            # Seeds drawn, and the fault kinds a schedule needed to be run (--with-fault).
            "drawn": len(runs) if drawn is None else drawn,
            "with_fault": sorted(kinds) or None,
        },
    }
    return report, bad


@click.command("sim")
@click.option(
    "--nodes", type=click.IntRange(2, 4096), default=None, help="made-up nodes (default 2)"
)
@click.option(
    "--schedules",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="random fault schedules to run, each from its own seed",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="seed of the first schedule; the next ones use seed+1, seed+2, ...",
)
@click.option(
    "--loss",
    type=click.FloatRange(0.0, 0.9),
    default=0.0,
    show_default=True,
    help="chance that any packet is lost, on every path",
)
@click.option(
    "--jitter",
    "jitter_s",
    type=click.FloatRange(0.0, 10.0),
    default=0.0,
    help="seconds of random extra delay per packet, up to this",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="simulate the cluster of this /etc/ha.d or gossipha.toml instead of made-up nodes",
)
@click.option(
    "--node-name",
    metavar="NAME",
    help="read --config as this node (default: uname -n); every node is simulated",
)
@click.option(
    "--swarm",
    is_flag=True,
    help="each schedule draws its own cluster (2-7 nodes unless --nodes), timings and faults",
)
@click.option(
    "--replay",
    "replay_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="play one saved swarm fault script (JSON: a schedule, or a report's first_violation)",
)
@click.option(
    "--save-violation",
    "save_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="with --swarm: write the first violating schedule's fault script here",
)
@click.option(
    "--with-fault",
    "with_faults",
    multiple=True,
    type=click.Choice(FAULT_KINDS),
    help="with --swarm: run only the schedules whose draw has this fault kind (repeatable)",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="with --swarm: processes running schedules in parallel",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def sim(
    nodes: int | None,
    schedules: int,
    seed: int,
    loss: float,
    jitter_s: float,
    config_path: Path | None,
    node_name: str | None,
    swarm: bool,
    replay_path: Path | None,
    save_path: Path | None,
    with_faults: tuple[str, ...],
    workers: int,
    as_json: bool,
) -> None:
    """Run random fault schedules of the real cluster core in a simulator."""
    if with_faults and not swarm:
        raise click.UsageError("--with-fault needs --swarm")
    if swarm or replay_path is not None:
        if config_path is not None or node_name is not None:
            raise click.UsageError("--swarm and --replay draw their own clusters: no --config")
        if loss or jitter_s:
            raise click.UsageError(
                "--swarm and --replay draw their own network: no --loss/--jitter"
            )
        if swarm and replay_path is not None:
            raise click.UsageError("--swarm and --replay are exclusive")
        _swarm(
            nodes, schedules, seed, replay_path, save_path, frozenset(with_faults), workers, as_json
        )
        return
    if save_path is not None:
        raise click.UsageError("--save-violation needs --swarm")
    config = _config(nodes, config_path, node_name)
    report, bad = run(config, schedules, seed, loss, jitter_s)
    if bad is not None:
        cluster = f"--config {config_path}" if config_path else f"--nodes {len(config.nodes)}"
        replay = f"gossipha sim {cluster} --schedules 1 --seed {bad.seed}"
        report["first_violation"] = _first_violation(bad.seed, None, replay, bad)
    _emit(report, as_json)
    if bad is not None:
        print(
            f"violation in schedule seed {bad.seed}: {bad.safety + bad.liveness}", file=sys.stderr
        )
        print("\n".join(bad.trace), file=sys.stderr)
        print(f"replay: {replay}", file=sys.stderr)
        sys.exit(1)


def _emit(report: dict[str, object], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report))
    else:
        for key, value in report.items():
            if key not in ("first_violation",):
                for line in _text_lines(key, value):
                    click.echo(line)


def _text_lines(key: str, value: object) -> list[str]:
    """`key: value` lines for people and grep: nested tables as `a.b: v`, None as `-`
    (the key stays, so every report has the same lines), no Python reprs."""
    if isinstance(value, dict) and value:
        return [line for k, v in value.items() for line in _text_lines(f"{key}.{k}", v)]
    return [f"{key}: {_text_value(value)}"]


def _text_value(value: object) -> str:
    if value is None or value == {} or value == []:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(_text_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def load_script(path: Path) -> Schedule:
    """A fault script from `path`: a schedule's JSON, or a report whose first_violation
    holds one. Bad input exits 78 (a configuration error) naming the file."""
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("first_violation"), dict):
            data = data["first_violation"]["schedule"]
        if isinstance(data, dict) and "schedule" in data and "faults" not in data:
            data = data["schedule"]
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return Schedule.from_json(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        click.echo(f"gossipha: error: {path}: not a fault script: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


def _swarm(
    nodes: int | None,
    schedules: int,
    seed: int,
    replay_path: Path | None,
    save_path: Path | None,
    kinds: frozenset[str],
    workers: int,
    as_json: bool,
) -> None:
    started = time.perf_counter()
    if replay_path is not None:
        schedule = load_script(replay_path)
        runs = [(schedule.seed, schedule, run_schedule(schedule))]
        nodes = schedule.members
    else:
        runs = swarm_results(seed, schedules, nodes, workers, kinds)
    wall = time.perf_counter() - started
    drawn = 1 if replay_path is not None else schedules
    report, bad = swarm_report(runs, seed, nodes, wall, replay_path, drawn, kinds)
    if bad is not None and save_path is not None:
        save_path.write_text(bad[1].dumps() + "\n")
    _emit(report, as_json)
    if bad is not None:
        bseed, _, br = bad
        print(f"violation in swarm schedule {bseed}: {br.safety + br.liveness}", file=sys.stderr)
        print("\n".join(br.trace), file=sys.stderr)
        first = report["first_violation"]
        assert isinstance(first, dict)
        print(f"replay: {first['replay']}", file=sys.stderr)
        sys.exit(1)


__all__ = ["Timings", "native_timings", "run", "sim", "swarm_report", "swarm_results"]
