"""Health checks of a running group: HTTP (aiohttp) and command probes, and what to do about them.

Three layers, outermost last:
- `run_check` performs one probe and returns a `CheckResult`; it never raises for an unhealthy
  service, and it is bounded by the check's `timeout_s`.
- `HealthTracker` is pure: fed results, it decides (consecutive failures reach `failures`:
  restart locally; after `max_restarts` restarts: give the group up, which makes this node
  ineligible for it until a check passes again). A passing check resets both counts.
- `HealthMonitor` runs every check of one group on its interval and hands results to a sink;
  the runtime owns the task (put `monitor.run()` in its TaskGroup) and drives the tracker.
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from gossipha.aio import within
from gossipha.config.model import HealthCheck, HealthCheckKind
from gossipha.resources.services import run_process

# How much of an HTTP body is read to look for `expect_body` (the rest is ignored).
BODY_LIMIT_BYTES = 64 * 1024
DETAIL_LIMIT_CHARS = 512


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One probe of `check` for `group`: healthy or not, and why, for logs."""

    group: str
    check: str
    healthy: bool
    detail: str
    duration_s: float


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= DETAIL_LIMIT_CHARS else "..." + text[-DETAIL_LIMIT_CHARS:]


async def http_check(
    check: HealthCheck, *, group: str, session: aiohttp.ClientSession
) -> CheckResult:
    """GET `check.url`: healthy when the status is `expect_status` and, if set, the first
    BODY_LIMIT_BYTES of the body contain `expect_body`. Redirects are not followed."""
    loop = asyncio.get_running_loop()
    started = loop.time()

    def result(healthy: bool, detail: str) -> CheckResult:
        return CheckResult(group, check.name, healthy, _clip(detail), loop.time() - started)

    if check.url is None:
        return result(False, "http check without url")
    timeout = aiohttp.ClientTimeout(total=check.timeout_s)
    try:
        async with session.get(check.url, timeout=timeout, allow_redirects=False) as resp:
            if resp.status != check.expect_status:
                return result(
                    False, f"GET {check.url}: status {resp.status}, expected {check.expect_status}"
                )
            if check.expect_body is not None:
                body = await resp.content.read(BODY_LIMIT_BYTES)
                try:
                    text = body.decode(resp.charset or "utf-8", "replace")
                except LookupError:  # a charset Python does not know
                    text = body.decode("utf-8", "replace")
                if check.expect_body not in text:
                    return result(
                        False, f"GET {check.url}: body lacks {check.expect_body!r}: {text[:120]!r}"
                    )
            return result(True, f"GET {check.url}: {resp.status}")
    except TimeoutError:
        return result(False, f"GET {check.url}: timed out after {check.timeout_s:g}s")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return result(False, f"GET {check.url}: {type(exc).__name__}: {exc}")


async def command_check(
    check: HealthCheck, *, group: str, env: Mapping[str, str] | None = None
) -> CheckResult:
    """Run `check.command` (no shell): healthy when it exits 0 within `timeout_s`."""
    if not check.command:
        return CheckResult(group, check.name, False, "command check without command", 0.0)
    full_env = dict(os.environ)
    if env is not None:
        full_env.update(env)
    full_env["GOSSIPHA_GROUP"] = group
    full_env["GOSSIPHA_CHECK"] = check.name
    run = await run_process(check.command, env=full_env, timeout_s=check.timeout_s)
    if run.timed_out:
        verdict = f"timed out after {check.timeout_s:g}s"
    elif run.error is not None:
        verdict = run.error
    else:
        verdict = f"exit {run.exit_code}"
    detail = f"{check.command[0]}: {verdict}" + (f"\n{run.output}" if run.output else "")
    return CheckResult(group, check.name, run.exit_code == 0, _clip(detail), run.duration_s)


async def run_check(
    check: HealthCheck,
    *,
    group: str,
    session: aiohttp.ClientSession | None = None,
    env: Mapping[str, str] | None = None,
) -> CheckResult:
    """One probe of any kind; an HTTP check without `session` opens a short-lived one."""
    match check.kind:
        case HealthCheckKind.COMMAND:
            return await command_check(check, group=group, env=env)
        case HealthCheckKind.HTTP:
            if session is not None:
                return await http_check(check, group=group, session=session)
            async with aiohttp.ClientSession() as own:
                return await http_check(check, group=group, session=own)


class HealthDecision(enum.Enum):
    """What the runtime should do after a result (each action is returned once)."""

    HEALTHY = "healthy"  # passing; nothing to do
    FAILING = "failing"  # failing, below the threshold (or already given up): wait
    RESTART = "restart"  # restart the group's services here
    GIVE_UP = "give_up"  # restarts exhausted: release the group, become ineligible
    RECOVERED = "recovered"  # passing again after a give-up: eligible again


class HealthTracker:
    """Consecutive-failure counting for one check (pure; no clock, no I/O).

    `failures` consecutive failures ask for a restart, at most `max_restarts` times; the next
    time the threshold is reached the group is given up. Any passing result resets both counts
    and, after a give-up, makes the node eligible again.
    """

    __slots__ = ("_given_up", "consecutive_failures", "failures", "max_restarts", "restarts")

    def __init__(self, failures: int, max_restarts: int) -> None:
        if failures < 1 or max_restarts < 0:
            raise ValueError(f"failures={failures} must be >= 1, max_restarts={max_restarts} >= 0")
        self.failures = failures
        self.max_restarts = max_restarts
        self.consecutive_failures = 0
        self.restarts = 0
        self._given_up = False

    @classmethod
    def for_check(cls, check: HealthCheck) -> HealthTracker:
        return cls(check.failures, check.max_restarts)

    @property
    def given_up(self) -> bool:
        return self._given_up

    @property
    def eligible(self) -> bool:
        """May this node hold the group, as far as this check knows?"""
        return not self._given_up

    def record(self, healthy: bool) -> HealthDecision:
        if healthy:
            recovered = self._given_up
            self.consecutive_failures = 0
            self.restarts = 0
            self._given_up = False
            return HealthDecision.RECOVERED if recovered else HealthDecision.HEALTHY
        if self._given_up:
            return HealthDecision.FAILING
        self.consecutive_failures += 1
        if self.consecutive_failures < self.failures:
            return HealthDecision.FAILING
        self.consecutive_failures = 0
        if self.restarts < self.max_restarts:
            self.restarts += 1
            return HealthDecision.RESTART
        self._given_up = True
        return HealthDecision.GIVE_UP

    def reset(self) -> None:
        """Forget everything (the group was released or freshly started)."""
        self.consecutive_failures = 0
        self.restarts = 0
        self._given_up = False


class GroupHealth:
    """One tracker per check of a group; the group is eligible while no check gave up."""

    __slots__ = ("group", "trackers")

    def __init__(self, group: str, checks: Sequence[HealthCheck]) -> None:
        self.group = group
        self.trackers = {c.name: HealthTracker.for_check(c) for c in checks}

    @property
    def eligible(self) -> bool:
        return all(t.eligible for t in self.trackers.values())

    def record(self, result: CheckResult) -> HealthDecision:
        """The tracker's decision for `result` (a result for an unknown check is a bug)."""
        assert result.group == self.group, (result.group, self.group)
        return self.trackers[result.check].record(result.healthy)

    def reset(self) -> None:
        for tracker in self.trackers.values():
            tracker.reset()


HealthSink = Callable[[CheckResult], None]


class HealthMonitor:
    """Runs each check of `group` every `interval_s` (start to start), one probe in flight per
    check, and passes every result to `sink`. The sink is synchronous and must not block or
    raise for back-pressure: e.g. a bounded queue's put_nowait that drops (and counts) on full.

    `await monitor.run()` until cancelled; cancellation kills any probe command and closes the
    HTTP session. An exception from `sink` ends `run` (and reaches the caller's TaskGroup).
    """

    def __init__(
        self,
        group: str,
        checks: Sequence[HealthCheck],
        sink: HealthSink,
        *,
        env: Mapping[str, str] | None = None,
        initial_delay_s: float = 0.0,
    ) -> None:
        self.group = group
        self.checks = tuple(checks)
        self.sink = sink
        self.env = dict(env) if env is not None else None
        self.initial_delay_s = initial_delay_s

    async def run(self) -> None:
        if not self.checks:
            return
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as tg:
            for check in self.checks:
                tg.create_task(self._loop(check, session), name=f"health:{self.group}:{check.name}")

    async def _loop(self, check: HealthCheck, session: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        if self.initial_delay_s > 0:
            await asyncio.sleep(self.initial_delay_s)
        next_s = loop.time()
        while True:
            # The probe bounds itself; the outer bound guards against a stuck client.
            try:
                result = await within(
                    run_check(check, group=self.group, session=session, env=self.env),
                    check.timeout_s + 1.0,
                )
            except TimeoutError:
                result = CheckResult(
                    self.group, check.name, False, f"timed out after {check.timeout_s:g}s", 0.0
                )
            self.sink(result)
            next_s += check.interval_s
            now_s = loop.time()
            if next_s < now_s:  # a slow probe: skip missed slots instead of bursting
                next_s = now_s
            await asyncio.sleep(next_s - now_s)
