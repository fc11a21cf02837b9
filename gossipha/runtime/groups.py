"""Performing the core's group actions here: start, stop, restart, and what runs while held.

The core decides who holds a group; this module makes it so on this node. Actions for one
group form a chain (each waits for the previous), so a stop never overtakes a start; a
StopGroup cancels an unfinished start, then stops everything the start may have begun. On
a lost or superseded lease the VIP comes down before any service stops, so a slow service
stop cannot eat the lease's stop guard. While a group is held its VIPs are re-announced
and watched (runtime/vip_tasks.py) and its health is monitored: failing checks restart the
services, then give the group up (ineligible here) until `unhealthy_hold_s` after its stop.
Every outcome goes back to the core as an input. Services see GOSSIPHA_EPOCH, _GROUP, _NODE.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import assert_never

from gossipha.config.model import ResourceGroup, ServiceResource, Timings, VipResource
from gossipha.core.types import (
    HealthResult,
    ResourceAction,
    ResourceResult,
    StopReason,
    VipProbeResult,
)
from gossipha.resources import services, vip
from gossipha.resources.health import CheckResult, GroupHealth, HealthDecision
from gossipha.runtime import vip_tasks
from gossipha.runtime.callbacks import Feed, Spawn
from gossipha.runtime.health_watch import checks_for, make_monitor
from gossipha.runtime.logs import kv

# The agent's logger: its lines keep the name operators and bench/failover.py read.
log = logging.getLogger("gossipha.agent")

# After a group was given up for failing health checks and stopped here, this node stays
# ineligible for it this long (it cannot prove itself healthy without running it), then
# may hold it again (Pacemaker's failure-timeout).
UNHEALTHY_HOLD_S = 60.0
# Stops where the lease is lost or superseded: the VIP must be down within the stop guard.
URGENT_STOPS = frozenset({StopReason.LEASE_LOST, StopReason.SUPERSEDED})


def stop_order(
    resources: Iterable[VipResource | ServiceResource], *, vips_first: bool
) -> list[VipResource | ServiceResource]:
    """Reverse of start (haresources) order; with `vips_first`, every VIP before any
    service, the rest still reversed."""
    order = list(reversed(list(resources)))
    if vips_first:
        order.sort(key=lambda res: not isinstance(res, VipResource))  # stable sort
    return order


@dataclass(slots=True)
class GroupRun:
    """What this process does for one group: its action chain and while-held helpers."""

    config: ResourceGroup
    task: asyncio.Task[None] | None = None
    starting: bool = False
    epoch: int = 0
    # True from the first resource touched until a stop finished: cleanup must stop it.
    active: bool = False
    held: bool = False
    helpers: list[asyncio.Task[None]] = field(default_factory=list)
    # Health: trackers while held, the monitor task, and a give-up waiting to expire.
    health: GroupHealth | None = None
    monitor: asyncio.Task[None] | None = None
    given_up: bool = False
    hold: asyncio.Task[None] | None = None
    restarts: int = 0


class GroupRunner:
    """Every group this node may run: the core's StartGroup/StopGroup/ProbeVip performed."""

    def __init__(
        self,
        groups: Iterable[ResourceGroup],
        *,
        node_name: str,
        timings: Timings,
        feed: Feed,
        spawn: Spawn,
        closing: Callable[[], bool],
        clock_s: Callable[[], float],
        on_health: Callable[[str, bool], None],
        reannounce_s: float,
        unhealthy_hold_s: float = UNHEALTHY_HOLD_S,
    ) -> None:
        self.runs = {g.name: GroupRun(g) for g in groups}
        self._node_name = node_name
        self._timings = timings
        self._feed = feed
        self._spawn = spawn
        self._closing = closing
        self._clock_s = clock_s
        self._on_health = on_health
        self._reannounce_s = reannounce_s
        self._unhealthy_hold_s = unhealthy_hold_s

    # ------------------------------------------------------------------ found at start

    async def find_running(self) -> tuple[str, ...]:
        """Groups whose VIP is already here: an agent killed with -9 left them up."""
        found: list[str] = []
        for run in self.runs.values():
            g = run.config
            for v in g.vips:
                try:
                    if await vip.has_vip(v):
                        found.append(g.name)
                        break
                except vip.VipError as exc:
                    log.warning(kv("vip check failed", group=g.name, vip=v.address, error=exc))
        return tuple(found)

    def adopt(self, found: Iterable[str]) -> None:
        """Groups found running count as started here: cleanup stops them."""
        for name in found:
            self.runs[name].active = True
            self.runs[name].held = True

    def guard(self, found: Iterable[str]) -> None:
        """Re-announce, watch and monitor the adopted groups (as after a start)."""
        for name in found:
            self._start_helpers(self.runs[name])

    # ------------------------------------------------------------------ the core's actions

    def start(self, gname: str, epoch: int) -> None:
        run = self.runs[gname]
        prev = run.task
        run.starting = True
        run.task = self._spawn(self._do_start(run, epoch, prev), f"start:{gname}")

    def stop(self, gname: str, epoch: int, reason: StopReason) -> None:
        run = self.runs[gname]
        prev = run.task
        if prev is not None and run.starting and not prev.done():
            log.warning(kv("cancelling unfinished start", group=gname, reason=reason.value))
            prev.cancel()
        run.starting = False
        run.task = self._spawn(self._do_stop(run, epoch, reason, prev), f"stop:{gname}")

    def probe(self, gname: str) -> None:
        self._spawn(self._probe(gname), f"probe:{gname}")

    async def _probe(self, gname: str) -> None:
        g = self.runs[gname].config
        answered = await vip_tasks.probe(g, self._timings, self._clock_s)
        self._feed(VipProbeResult(gname, answered))

    async def _do_start(self, run: GroupRun, epoch: int, prev: asyncio.Task[None] | None) -> None:
        if prev is not None:
            await asyncio.wait([prev])
        g = run.config
        run.epoch = epoch
        run.active = True
        log.info(kv("starting group", group=g.name, epoch=epoch))
        ok, detail = True, ""
        for res in g.resources:
            try:
                if isinstance(res, VipResource):
                    placed = await vip.add_vip(res)
                    log.info(
                        kv(
                            "vip added",
                            group=g.name,
                            vip=res.address,
                            iface=placed.interface,
                            label=placed.label,
                        )
                    )
                    self._spawn(vip_tasks.announce(res), f"announce:{res.address}")
                else:
                    outcome = await services.start_service(
                        res, epoch=epoch, group=g.name, env=self.service_env(epoch, g.name)
                    )
                    log.info(
                        kv(
                            "service start",
                            group=g.name,
                            service=res.name,
                            ok=outcome.ok,
                            duration_s=f"{outcome.duration_s:.3f}",
                        )
                    )
                    if not outcome.ok:
                        ok, detail = False, f"{res.name}: {outcome.detail}"
                        break
            except vip.VipError as exc:
                ok, detail = False, f"vip {res_name(res)}: {exc}"
                break
            except Exception as exc:  # a bug in an adapter must not take the loop down
                log.exception(kv("start error", group=g.name, resource=res_name(res)))
                ok, detail = False, f"{res_name(res)}: {exc}"
                break
        run.starting = False
        if ok:
            run.held = True
            run.health = None  # a fresh start: fresh failure and restart counts
            self._start_helpers(run)
            log.info(kv("group started", group=g.name, epoch=epoch))
        else:
            # Start failure is fatal here (Pacemaker's start-failure-is-fatal): this node is
            # ineligible until UNHEALTHY_HOLD_S after the stop, so a peer takes the group
            # instead of this node reclaiming it after every start-failure backoff.
            log.error(kv("group start failed", group=g.name, epoch=epoch, detail=detail))
            run.given_up = True
            self._feed(HealthResult(g.name, healthy=False))
        self._feed(ResourceResult(g.name, ResourceAction.START, ok, epoch, detail))

    async def _do_stop(
        self, run: GroupRun, epoch: int, reason: StopReason, prev: asyncio.Task[None] | None
    ) -> None:
        if prev is not None:
            await asyncio.wait([prev])
        g = run.config
        log.info(kv("stopping group", group=g.name, epoch=epoch, reason=reason.value))
        ok, detail = await self._stop_resources(run, epoch, vips_first=reason in URGENT_STOPS)
        log.log(
            logging.INFO if ok else logging.ERROR,
            kv("group stopped" if ok else "group stop failed", group=g.name, detail=detail or None),
        )
        self._feed(ResourceResult(g.name, ResourceAction.STOP, ok, epoch, detail))

    async def _stop_resources(
        self, run: GroupRun, epoch: int, vips_first: bool = False
    ) -> tuple[bool, str]:
        """Helpers off, services in reverse, VIPs removed; every step tried, failures noted.

        `vips_first`: the lease is (about to be) gone, so the VIP comes down before any
        service is stopped: a slow service stop must not eat the stop guard (docs/design.md).
        """
        self._stop_helpers(run)
        run.held = False
        self._hold_after_give_up(run)
        g = run.config
        failures: list[str] = []
        vips_gone = True
        for res in stop_order(g.resources, vips_first=vips_first):
            try:
                if isinstance(res, VipResource):
                    await vip.remove_vip(res)
                    log.info(kv("vip removed", group=g.name, vip=res.address))
                else:
                    outcome = await services.stop_service(
                        res, epoch=epoch, group=g.name, env=self.service_env(epoch, g.name)
                    )
                    if not outcome.ok:
                        failures.append(f"{res.name}: {outcome.detail}")
            except vip.VipError as exc:
                vips_gone = False
                failures.append(f"vip {res_name(res)}: {exc}")
            except Exception as exc:
                log.exception(kv("stop error", group=g.name, resource=res_name(res)))
                if isinstance(res, VipResource):
                    vips_gone = False
                failures.append(f"{res_name(res)}: {exc}")
        if vips_gone:
            run.active = False
        return not failures, "; ".join(failures)

    async def finish_stops(self) -> None:
        """Wait for the stops under way (each service within its own timeout): on the way
        out, a stop is never cancelled, which would SIGKILL a service in mid-stop."""
        stops = [
            run.task
            for run in self.runs.values()
            if run.task is not None and not run.task.done() and not run.starting
        ]
        if stops:
            log.info(kv("waiting for stops under way", groups=len(stops)))
            await asyncio.wait(stops)

    async def release_all(self) -> None:
        """On the way out: stop every group this process may run (idempotent)."""
        for run in self.runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
                await asyncio.wait([run.task])
            if not run.active:
                continue
            log.warning(kv("releasing on exit", group=run.config.name))
            ok, detail = await self._stop_resources(run, run.epoch)
            if not ok:
                log.error(kv("release on exit incomplete", group=run.config.name, detail=detail))

    def service_env(self, epoch: int, group: str) -> dict[str, str]:
        env = dict(os.environ)
        env["GOSSIPHA_EPOCH"] = str(epoch)
        env["GOSSIPHA_GROUP"] = group
        env["GOSSIPHA_NODE"] = self._node_name
        return env

    # -- while a group is held: re-announce, watch for foreign claims and removal

    def _start_helpers(self, run: GroupRun) -> None:
        self._stop_helpers(run)
        self._start_monitor(run)

        def held() -> bool:
            return run.held

        for v in run.config.vips:
            for coro, name in (
                (vip_tasks.reannounce(v, self._reannounce_s), f"reannounce:{v.address}"),
                (vip_tasks.watch(v, run.config.name, held, self._spawn), f"watch:{v.address}"),
            ):
                task = self._spawn(coro, name)
                if task is not None:
                    run.helpers.append(task)

    def _stop_helpers(self, run: GroupRun) -> None:
        self._stop_monitor(run)
        for task in run.helpers:
            task.cancel()
        run.helpers.clear()

    # -- health: checks (or service status) while held; restart, give up, recover

    def _start_monitor(self, run: GroupRun) -> None:
        self._stop_monitor(run)
        g = run.config
        if run.health is None:
            run.health = GroupHealth(g.name, checks_for(g))

        def sink(result: CheckResult) -> None:
            self.on_check(run, result)

        monitor = make_monitor(g, sink, epoch=run.epoch, env=self.service_env(run.epoch, g.name))
        if monitor is not None:
            run.monitor = self._spawn(monitor.run(), f"health:{g.name}")
            log.info(
                kv(
                    "health monitor started",
                    group=g.name,
                    checks=",".join(run.health.trackers),
                )
            )

    def _stop_monitor(self, run: GroupRun) -> None:
        if run.monitor is not None:
            run.monitor.cancel()
            run.monitor = None

    def on_check(self, run: GroupRun, result: CheckResult) -> None:
        """One probe result: count it, let the group's trackers decide, act on it."""
        if self._closing() or not run.held or run.health is None:
            return
        g = run.config.name
        self._on_health(g, result.healthy)
        decision = run.health.record(result)
        first = result.detail.splitlines()[0] if result.detail else ""
        match decision:
            case HealthDecision.HEALTHY | HealthDecision.RECOVERED:
                if run.given_up:
                    self._recovered(run, f"check {result.check} passes")
            case HealthDecision.FAILING:
                log.log(
                    logging.DEBUG if run.given_up else logging.WARNING,
                    kv("health check failed", group=g, check=result.check, detail=first),
                )
            case HealthDecision.RESTART:
                log.error(
                    kv(
                        "health check failing; restarting the group's services here",
                        group=g,
                        check=result.check,
                        detail=first,
                    )
                )
                self._restart_group(run)
            case HealthDecision.GIVE_UP:
                log.error(
                    kv(
                        "health check still failing after restarts; giving the group up",
                        group=g,
                        check=result.check,
                        detail=first,
                    )
                )
                run.given_up = True
                self._feed(HealthResult(g, healthy=False))
            case _:
                assert_never(decision)

    def _recovered(self, run: GroupRun, why: str) -> None:
        run.given_up = False
        if run.hold is not None:
            run.hold.cancel()
            run.hold = None
        if run.health is not None:
            run.health.reset()
        log.warning(kv("group eligible here again", group=run.config.name, reason=why))
        self._feed(HealthResult(run.config.name, healthy=True))

    def _restart_group(self, run: GroupRun) -> None:
        """Restart the services in the group's action chain (after whatever runs now)."""
        prev = run.task
        run.task = self._spawn(self._do_restart(run, prev), f"restart:{run.config.name}")

    async def _do_restart(self, run: GroupRun, prev: asyncio.Task[None] | None) -> None:
        if prev is not None:
            await asyncio.wait([prev])
        g = run.config
        if not run.held or self._closing():
            return
        self._stop_monitor(run)
        epoch = run.epoch
        env = self.service_env(epoch, g.name)
        svcs = [r for r in g.resources if isinstance(r, ServiceResource)]
        run.starting = True  # a StopGroup now cancels the restart and stops everything
        run.restarts += 1
        ok, detail = True, ""
        try:
            for res in reversed(svcs):
                outcome = await services.stop_service(res, epoch=epoch, group=g.name, env=env)
                log.info(kv("service stop", group=g.name, service=res.name, ok=outcome.ok))
            for res in svcs:
                outcome = await services.start_service(res, epoch=epoch, group=g.name, env=env)
                log.info(kv("service start", group=g.name, service=res.name, ok=outcome.ok))
                if not outcome.ok:
                    ok, detail = False, f"{res.name}: {outcome.detail}"
                    break
        except Exception as exc:  # a bug in an adapter must not take the loop down
            log.exception(kv("restart error", group=g.name))
            ok, detail = False, str(exc)
        run.starting = False
        if ok:
            log.warning(kv("group restarted", group=g.name, epoch=epoch, restarts=run.restarts))
            self._start_monitor(run)
        else:
            # It cannot run here: give it up at once (ineligible, so a peer takes it rather
            # than this node claiming it again after its start-failure backoff), and report
            # the failed start (alert, metrics).
            log.error(kv("group restart failed; giving it up", group=g.name, detail=detail))
            run.given_up = True
            self._feed(HealthResult(g.name, healthy=False))
            self._feed(
                ResourceResult(g.name, ResourceAction.START, False, epoch, f"restart: {detail}")
            )

    def _hold_after_give_up(self, run: GroupRun) -> None:
        if run.given_up and (run.hold is None or run.hold.done()):
            run.hold = self._spawn(self._unhealthy_hold(run), f"unhealthy:{run.config.name}")

    async def _unhealthy_hold(self, run: GroupRun) -> None:
        await asyncio.sleep(self._unhealthy_hold_s)
        run.hold = None
        if run.given_up and not run.held:
            self._recovered(run, f"given up {self._unhealthy_hold_s:g}s ago")


def res_name(res: VipResource | ServiceResource) -> str:
    return str(res.address) if isinstance(res, VipResource) else res.name
