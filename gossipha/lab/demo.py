"""`gossipha demo`: the tutorial's cluster in network namespaces, put through its tests.

Builds the lab (nothing in the root namespace), starts the tutorial's two agents, runs the
scenarios while showing who holds the VIP and what a client sees, prints the outages, and
tears everything down, also on Ctrl-C. Exit status 1 when a scenario failed.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys

import click
import orjson

TOOLS = {
    "ip": "iproute2",
    "nginx": "nginx (or nginx-light)",
    "iptables": "iptables",
    "nft": "nftables",
    "unshare": "util-linux",
}
EXIT_FAILED = 1
EXIT_UNUSABLE = 2


def preflight() -> str | None:
    """Why the demo cannot run here (with how to fix it), or None."""
    if os.geteuid() != 0:
        return (
            "the demo builds network namespaces and needs root; run it as root, e.g. "
            "`sudo gossipha demo` (nothing is changed outside the lab's namespaces)"
        )
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        packages = " ".join(sorted({TOOLS[t].split(" ")[0] for t in missing}))
        return (
            f"missing {', '.join(missing)}; install them, e.g. "
            f"`apt-get install {packages}` (Debian/Ubuntu) or `dnf install {packages}`"
        )
    return None


def tutorial_missing() -> str | None:
    """Which of the tutorial's files the installed package lacks (a wheel built without its
    package data), or None; checked before the lab is built, so it is one line, not a trace."""
    from gossipha.lab.scenarios import NODES, tutorial_source
    from gossipha.lab.topology import LabError

    try:
        for node in NODES:
            tutorial_source(node)
    except LabError as exc:
        return f"{exc} (reinstall gossipha)"
    return None


@click.command()
@click.option("--fast", is_flag=True, help="Scaled-down timings (keepalive 200ms, deadtime 2s).")
@click.option(
    "--native",
    is_flag=True,
    help="One native gossipha.toml at the native default timings instead of ha.d.",
)
@click.option(
    "--profile",
    "profile_name",
    type=click.Choice(["tutorial", "fast", "native"]),
    help="tutorial (the default), fast (= --fast) or native (= --native).",
)
@click.option(
    "--scenario",
    "names",
    multiple=True,
    metavar="NAME",
    help="Run only this scenario (repeatable). Names: see --list.",
)
@click.option(
    "--list", "list_only", is_flag=True, help="List the scenarios and exit (with --json: as JSON)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object at the end (progress: stderr)."
)
@click.option("--keep", is_flag=True, help="Keep the lab's work directory (configs, agent logs).")
@click.option(
    "--loss-seconds",
    type=click.FloatRange(1.0, 3600.0),
    default=None,
    metavar="SECONDS",
    help="How long the heartbeat-loss scenarios keep 20% loss on (default 20).",
)
def demo(
    fast: bool,
    native: bool,
    profile_name: str | None,
    names: tuple[str, ...],
    list_only: bool,
    as_json: bool,
    keep: bool,
    loss_seconds: float | None,
) -> None:
    """Run the tutorial's failure tests against two real agents in network namespaces."""
    from gossipha.lab.scenarios import NATIVE, PROFILES, SCENARIO_NAMES, SCENARIOS, run_all

    chosen_profiles = {
        n for n, on in (("fast", fast), ("native", native), (profile_name, True)) if on and n
    }
    if len(chosen_profiles) > 1:
        raise click.UsageError(f"conflicting profiles: {', '.join(sorted(chosen_profiles))}")

    if list_only:
        if as_json:
            # One object per scenario: name, title, pending (why it cannot run yet, or null).
            listing = [
                {"name": sc.name, "title": sc.title, "pending": sc.pending} for sc in SCENARIOS
            ]
            click.echo(orjson.dumps(listing).decode())
            return
        for sc in SCENARIOS:
            note = f"  (not yet: {sc.pending})" if sc.pending else ""
            click.echo(f"{sc.name:20} {sc.title}{note}")
        return
    unknown = [n for n in names if n not in SCENARIO_NAMES]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)}; expected one of {', '.join(SCENARIO_NAMES)}",
            param_hint="--scenario",
        )
    profile = PROFILES[chosen_profiles.pop() if chosen_profiles else "tutorial"]
    # The native profile renders its own gossipha.toml; the others copy the tutorial's files.
    why = (None if profile is NATIVE else tutorial_missing()) or preflight()
    if why is not None:
        click.echo(f"gossipha demo: error: {why}", err=True)
        sys.exit(EXIT_UNUSABLE)

    from gossipha.lab.topology import Lab, LabError, sweep_stale

    if loss_seconds is not None:
        profile = dataclasses.replace(profile, loss_s=loss_seconds)

    def say(line: str) -> None:
        click.echo(line, err=as_json)

    chosen = names or SCENARIO_NAMES
    say(
        f"gossipha demo: {len(chosen)} scenario(s), {profile.name} timings "
        f"(keepalive {profile.keepalive}, warntime {profile.warntime}, "
        f"deadtime {profile.deadtime}, initdead {profile.initdead})"
    )
    sweep_stale()
    lab = Lab(keep_workdir=keep)
    try:
        with lab:
            say(f"lab built: namespaces {lab.prefix}*, work directory {lab.workdir}")
            results = run_all(lab, profile, chosen, say=say, live=True)
    except LabError as exc:
        click.echo(f"gossipha demo: error: {exc}", err=True)
        sys.exit(EXIT_UNUSABLE)
    say("")
    say(f"{'scenario':20} {'result':8} {'outage':>8} {'dual':>5}  holder before -> after")
    for r in results:
        status = "skipped" if r.passed is None else ("passed" if r.passed else "FAILED")
        say(
            f"{r.name:20} {status:8} {r.outage_s:7.2f}s {r.dual_holder_instants:5}  "
            f"{r.holder_before} -> {r.holder_after}"
            + (f"  [{r.skipped}]" if r.skipped else "")
            + (f"  [{r.error}]" if r.error else "")
        )
    if keep:
        say(f"kept: {lab.workdir}")
    failed = [r.name for r in results if r.passed is False]
    if as_json:
        payload = {
            "profile": profile.name,
            "loss_s": profile.loss_s,
            "passed": not failed,
            "scenarios": [r.as_json() for r in results],
        }
        click.echo(orjson.dumps(payload).decode())
    if failed:
        sys.exit(EXIT_FAILED)
