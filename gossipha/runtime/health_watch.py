"""Health of a held group: its configured checks, or else its services' own status.

A group with `health_checks` is watched by `resources.health.HealthMonitor`. A group
without any is watched by `ServiceStatusMonitor`: each service's own status (LSB status,
OCF monitor, systemctl is-active, resource.d status, a command's `status`) at the default
check interval, so a killed nginx is noticed. Both hand `CheckResult`s to a synchronous
sink; the agent feeds them to a `GroupHealth` (pure) and acts on its decisions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Final

from gossipha.aio import within
from gossipha.config.model import (
    HealthCheck,
    HealthCheckKind,
    ResourceGroup,
    ServiceKind,
    ServiceResource,
)
from gossipha.resources import services
from gossipha.resources.health import CheckResult, HealthMonitor, HealthSink

STATUS_CHECK_PREFIX: Final = "status:"
# A status probe is a local script: allow more than an HTTP check's 1 s (a cold Python or
# a slow init script), never more than the service's own action timeout.
STATUS_TIMEOUT_S: Final = 5.0


def has_status(res: ServiceResource) -> bool:
    """Can the service tell whether it runs? (A command service needs a `status` command.)"""
    return res.kind is not ServiceKind.COMMAND or bool(res.status)


def status_checks(group: ResourceGroup) -> tuple[tuple[ServiceResource, HealthCheck], ...]:
    """One implicit check per service with a status, named `status:<service>`; its interval,
    failures and max_restarts are the defaults of an explicit check."""
    out = []
    for res in group.resources:
        if isinstance(res, ServiceResource) and has_status(res):
            check = HealthCheck(
                name=f"{STATUS_CHECK_PREFIX}{res.name}",
                kind=HealthCheckKind.COMMAND,
                timeout_s=min(res.timeout_s, STATUS_TIMEOUT_S),
            )
            out.append((res, check))
    return tuple(out)


def checks_for(group: ResourceGroup) -> tuple[HealthCheck, ...]:
    """The checks a `GroupHealth` for `group` tracks: explicit ones, else the implicit ones."""
    if group.health_checks:
        return group.health_checks
    return tuple(check for _res, check in status_checks(group))


class ServiceStatusMonitor:
    """Asks each service for its status every check interval (start to start), one probe
    in flight per service, results to `sink`. Cancel-safe: a cancelled probe's process
    group is killed by `services.run_process`."""

    def __init__(
        self,
        group: str,
        watched: Sequence[tuple[ServiceResource, HealthCheck]],
        sink: HealthSink,
        *,
        epoch: int,
        env: Mapping[str, str] | None = None,
        initial_delay_s: float = 0.0,
    ) -> None:
        self.group = group
        self.watched = tuple(watched)
        self.sink = sink
        self.epoch = epoch
        self.env = dict(env) if env is not None else None
        self.initial_delay_s = initial_delay_s

    async def run(self) -> None:
        if not self.watched:
            return
        async with asyncio.TaskGroup() as tg:
            for res, check in self.watched:
                tg.create_task(self._loop(res, check), name=f"status:{self.group}:{res.name}")

    async def probe(self, res: ServiceResource, check: HealthCheck) -> CheckResult:
        bounded = replace(res, timeout_s=check.timeout_s)
        outcome = await services.status_service(
            bounded, epoch=self.epoch, group=self.group, env=self.env
        )
        return CheckResult(self.group, check.name, outcome.ok, outcome.detail, outcome.duration_s)

    async def _loop(self, res: ServiceResource, check: HealthCheck) -> None:
        loop = asyncio.get_running_loop()
        if self.initial_delay_s > 0:
            await asyncio.sleep(self.initial_delay_s)
        next_s = loop.time()
        while True:
            try:
                result = await within(self.probe(res, check), check.timeout_s + 1.0)
            except TimeoutError:
                result = CheckResult(
                    self.group, check.name, False, f"timed out after {check.timeout_s:g}s", 0.0
                )
            self.sink(result)
            next_s += check.interval_s
            now_s = loop.time()
            if next_s < now_s:
                next_s = now_s
            await asyncio.sleep(next_s - now_s)


def make_monitor(
    group: ResourceGroup,
    sink: HealthSink,
    *,
    epoch: int,
    env: Mapping[str, str] | None = None,
) -> HealthMonitor | ServiceStatusMonitor | None:
    """The monitor for a held group: its checks, else its services' status; None: nothing
    can be watched. The first probe waits one interval (a just-started service settles)."""
    if group.health_checks:
        delay_s = min(c.interval_s for c in group.health_checks)
        return HealthMonitor(
            group.name, group.health_checks, sink, env=env, initial_delay_s=delay_s
        )
    watched = status_checks(group)
    if not watched:
        return None
    delay_s = min(c.interval_s for _r, c in watched)
    return ServiceStatusMonitor(
        group.name, watched, sink, epoch=epoch, env=env, initial_delay_s=delay_s
    )


__all__ = [
    "STATUS_CHECK_PREFIX",
    "ServiceStatusMonitor",
    "checks_for",
    "has_status",
    "make_monitor",
    "status_checks",
]
