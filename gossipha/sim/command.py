"""`gossipha sim`: run K seeded random schedules of the real core and print one JSON object.

Exit status 1 when any safety or liveness violation was found; the seed of the first one
is printed (stderr) with a short trace, so `--seed SEED --schedules 1` replays it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from gossipha.config.model import Config, Timings
from gossipha.sim.harness import make_config, native_timings
from gossipha.sim.scenarios import ScheduleResult, percentiles, random_schedule


def _config(nodes: int | None, config_path: Path | None, node_name: str | None) -> Config:
    """The simulated cluster: `nodes` made-up nodes, or the cluster of a configuration file
    (read as `node_name` sees it, default uname -n; every node is simulated either way).
    A bad file exits 2 with the loader's file:line message, as `check-config` does."""
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
        click.echo(f"gossipha: error: {exc.render()}", err=True)
        sys.exit(2)
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
        "first_violation_seed": None if first_bad is None else first_bad.seed,
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


@click.command("sim")
@click.option(
    "--nodes", type=click.IntRange(2, 4096), default=None, help="made-up nodes (default 2)"
)
@click.option("--schedules", type=click.IntRange(1), default=100, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--loss", type=click.FloatRange(0.0, 0.9), default=0.0, show_default=True)
@click.option("--jitter", "jitter_s", type=click.FloatRange(0.0, 10.0), default=0.0)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None)
@click.option(
    "--node-name",
    metavar="NAME",
    help="read --config as this node (default: uname -n); every node is simulated",
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
    as_json: bool,
) -> None:
    """Run random fault schedules of the real cluster core in a simulator."""
    config = _config(nodes, config_path, node_name)
    report, bad = run(config, schedules, seed, loss, jitter_s)
    if as_json:
        click.echo(json.dumps(report))
    else:
        for key, value in report.items():
            click.echo(f"{key}: {value}")
    if bad is not None:
        print(
            f"violation in schedule seed {bad.seed}: {bad.safety + bad.liveness}", file=sys.stderr
        )
        print("\n".join(bad.trace), file=sys.stderr)
        cluster = f"--config {config_path}" if config_path else f"--nodes {len(config.nodes)}"
        print(f"replay: gossipha sim {cluster} --schedules 1 --seed {bad.seed}", file=sys.stderr)
        sys.exit(1)


__all__ = ["Timings", "native_timings", "run", "sim"]
