"""Events to people: alert hooks (keepalived-style notify scripts) and Alertmanager.

`AlertState` is pure: notices in, firing/resolved `Alert`s out. `HookRunner` runs the
configured executables with the event in GOSSIPHA_* variables: `submit()` only queues
(bounded, drops the oldest and counts it), `run()` drains the queue with at most
`max_concurrent` children (started with ordinary scheduling by `gossipha.child`), each
killed by PID at its timeout. `AlertmanagerClient`
pushes to /api/v2/alerts: `update()` only queues (latest state per alert wins, bounded),
`run()` delivers with backoff retries while Alertmanager is down and re-sends firing
alerts every `resend_s`. Neither ever blocks the caller or raises into the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp

from gossipha.aio import within
from gossipha.child import start_child
from gossipha.config.model import Hook
from gossipha.core.types import Notice, NoticeKind
from gossipha.observe.metrics import Metrics

log = logging.getLogger(__name__)

# Alerts without a clearing event (split-brain risk, lease lost, resource failed) resolve
# by themselves after this long unless fired again.
DEFAULT_TTL_S: Final = 600.0


# ---------------------------------------------------------------------------- AlertState


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert instance; identity is (name, peer, group, link). `ends_wall` None: firing."""

    name: str
    severity: str
    summary: str
    starts_wall: float
    peer: str | None = None
    group: str | None = None
    link: str | None = None
    ends_wall: float | None = None
    notice: Notice | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str | None, str | None, str | None]:
        return (self.name, self.peer, self.group, self.link)

    @property
    def firing(self) -> bool:
        return self.ends_wall is None


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    severity: str
    summary: str


_FIRE: Final[Mapping[NoticeKind, _Rule]] = {
    NoticeKind.PEER_WARN: _Rule("GossiphaPeerWarn", "warning", "peer heartbeats are late"),
    NoticeKind.PEER_DEAD: _Rule("GossiphaPeerDead", "critical", "peer declared dead"),
    NoticeKind.LINK_DOWN: _Rule("GossiphaLinkDown", "warning", "a heartbeat link is silent"),
    NoticeKind.PING_LOST: _Rule("GossiphaPingLost", "warning", "ping node group unreachable"),
    NoticeKind.SPLIT_BRAIN_RISK: _Rule(
        "GossiphaSplitBrainRisk", "critical", "the VIP answered while we were about to claim it"
    ),
    NoticeKind.NO_HOLDER: _Rule("GossiphaNoHolder", "critical", "no node may hold the group"),
    NoticeKind.RESOURCE_FAILED: _Rule(
        "GossiphaResourceFailed", "critical", "a resource start/stop failed"
    ),
    NoticeKind.LEASE_LOST: _Rule("GossiphaLeaseLost", "warning", "the group's lease was lost"),
}
# notice kind -> alert names it resolves (matched on the notice's peer/group/link)
_RESOLVE: Final[Mapping[NoticeKind, tuple[str, ...]]] = {
    NoticeKind.PEER_RECOVERED: ("GossiphaPeerWarn", "GossiphaPeerDead"),
    NoticeKind.PEER_JOINED: ("GossiphaPeerWarn", "GossiphaPeerDead"),
    NoticeKind.REFUTED: ("GossiphaPeerWarn", "GossiphaPeerDead"),
    NoticeKind.LINK_UP: ("GossiphaLinkDown",),
    NoticeKind.PING_BACK: ("GossiphaPingLost",),
    NoticeKind.FAILOVER_COMPLETED: (
        "GossiphaNoHolder",
        "GossiphaSplitBrainRisk",
        "GossiphaResourceFailed",
        "GossiphaLeaseLost",
    ),
}
_EXPIRING: Final = frozenset(
    {"GossiphaSplitBrainRisk", "GossiphaResourceFailed", "GossiphaLeaseLost"}
)


def _alert_key_fields(notice: Notice) -> tuple[str | None, str | None, str | None]:
    """(peer, group, link) identifying the alert; a ping group travels in `detail`."""
    if notice.kind in (NoticeKind.PING_LOST, NoticeKind.PING_BACK):
        return (None, None, notice.detail or None)
    if notice.kind in (NoticeKind.LINK_DOWN, NoticeKind.LINK_UP):
        return (notice.peer, None, notice.link)
    return (notice.peer, notice.group, None)


class AlertState:
    """Which alerts fire, from the notices seen; pure (wall time is an argument).

    `apply` returns the alerts that changed (new firing, or resolved with ends_wall set).
    Repeated notices of a firing alert change nothing. `firing()` is what to re-send.
    """

    def __init__(self, self_name: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._self = self_name
        self._ttl_s = ttl_s
        self._firing: dict[tuple[str, str | None, str | None, str | None], Alert] = {}
        self._fired_wall: dict[tuple[str, str | None, str | None, str | None], float] = {}

    def apply(self, notice: Notice, wall_ts: float) -> list[Alert]:
        peer, group, link = _alert_key_fields(notice)
        changed: list[Alert] = []
        rule = _FIRE.get(notice.kind)
        if rule is not None:
            alert = Alert(
                rule.name,
                rule.severity,
                rule.summary + (f": {notice.detail}" if notice.detail else ""),
                wall_ts,
                peer,
                group,
                link,
                notice=notice,
            )
            self._fired_wall[alert.key] = wall_ts
            if alert.key not in self._firing:
                self._firing[alert.key] = alert
                changed.append(alert)
        names = _RESOLVE.get(notice.kind, ())
        if notice.kind is NoticeKind.REFUTED and notice.peer == self._self:
            names = ()
        for name in names:
            key: tuple[str, str | None, str | None, str | None]
            if notice.kind is NoticeKind.FAILOVER_COMPLETED:
                key = (name, None, group, None)
            else:
                key = (name, peer, group, link)
            changed.extend(self._resolve(key, wall_ts))
        return changed

    def holders(self, holders: Mapping[str, str | None], wall_ts: float) -> list[Alert]:
        """Resolve GossiphaNoHolder for every group that now has a holder (any node)."""
        out: list[Alert] = []
        for group, holder in holders.items():
            if holder is not None:
                out.extend(self._resolve(("GossiphaNoHolder", None, group, None), wall_ts))
        return out

    def expire(self, wall_ts: float) -> list[Alert]:
        """Resolve alerts with no clearing event once not re-fired for `ttl_s`."""
        out: list[Alert] = []
        for key in list(self._firing):
            if key[0] in _EXPIRING and wall_ts - self._fired_wall[key] >= self._ttl_s:
                out.extend(self._resolve(key, wall_ts))
        return out

    def _resolve(
        self, key: tuple[str, str | None, str | None, str | None], wall_ts: float
    ) -> list[Alert]:
        alert = self._firing.pop(key, None)
        self._fired_wall.pop(key, None)
        return [] if alert is None else [replace(alert, ends_wall=wall_ts)]

    def firing(self) -> list[Alert]:
        return list(self._firing.values())

    def current_notices(self) -> list[Notice]:
        """The notices behind every firing alert: what `HookRunner.reannounce` re-fires."""
        return [a.notice for a in self._firing.values() if a.notice is not None]


# ---------------------------------------------------------------------------- hooks


@dataclass(frozen=True, slots=True)
class HookJob:
    hook: Hook
    env: Mapping[str, str]


def hook_env(
    notice: Notice, *, cluster: str, node: str, epoch: int = 0, reannounce: bool = False
) -> dict[str, str]:
    """The GOSSIPHA_* variables for one event (empty string for an absent field)."""
    return {
        "GOSSIPHA_EVENT": notice.kind.value,
        "GOSSIPHA_CLUSTER": cluster,
        "GOSSIPHA_NODE": node,
        "GOSSIPHA_PEER": notice.peer or "",
        "GOSSIPHA_GROUP": notice.group or "",
        "GOSSIPHA_LINK": notice.link or "",
        "GOSSIPHA_DETAIL": notice.detail,
        "GOSSIPHA_EPOCH": str(epoch),
        "GOSSIPHA_REANNOUNCE": "1" if reannounce else "0",
    }


_BASE_ENV_KEYS: Final = ("PATH", "LANG", "LC_ALL", "TZ")


class HookRunner:
    """Runs hooks for events, off the caller's path, bounded in queue and concurrency."""

    def __init__(
        self,
        hooks: Sequence[Hook],
        max_concurrent: int,
        *,
        cluster: str,
        node: str,
        max_queue: int = 256,
        metrics: Metrics | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        if max_concurrent < 1 or max_queue < 1:
            raise ValueError("max_concurrent and max_queue must be at least 1")
        self._hooks = tuple(hooks)
        self._max_concurrent = max_concurrent
        self._cluster = cluster
        self._node = node
        self._queue: deque[HookJob] = deque()
        self._max_queue = max_queue
        self._wake = asyncio.Event()
        self._metrics = metrics
        src = os.environ if base_env is None else base_env
        self._base_env = {k: src[k] for k in _BASE_ENV_KEYS if k in src}
        self._base_env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        self.dropped = 0
        self.running = 0
        self.results: dict[str, int] = {"ok": 0, "failed": 0, "timeout": 0, "error": 0}

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, notice: Notice, epoch: int = 0, *, reannounce: bool = False) -> int:
        """Queue the hooks that want this event; returns how many were queued. Never blocks."""
        env = hook_env(
            notice, cluster=self._cluster, node=self._node, epoch=epoch, reannounce=reannounce
        )
        n = 0
        for hook in self._hooks:
            if hook.events and notice.kind.value not in hook.events:
                continue
            if len(self._queue) >= self._max_queue:
                old = self._queue.popleft()
                self.dropped += 1
                if self._metrics is not None:
                    self._metrics.hooks_dropped.inc()
                log.warning(
                    "hook queue full, dropped oldest hook=%s event=%s",
                    old.hook.path,
                    old.env["GOSSIPHA_EVENT"],
                )
            self._queue.append(HookJob(hook, {**self._base_env, **env}))
            n += 1
        if n:
            self._wake.set()
        return n

    def reannounce(
        self, notices: Iterable[Notice], epoch_of: Callable[[str], int] | None = None
    ) -> int:
        """Re-fire the current state (after a partition heals), GOSSIPHA_REANNOUNCE=1."""
        total = 0
        for notice in notices:
            epoch = epoch_of(notice.group) if epoch_of is not None and notice.group else 0
            total += self.submit(notice, epoch, reannounce=True)
        return total

    async def run(self) -> None:
        """Drain the queue forever (until cancelled); children are killed on the way out."""
        sem = asyncio.Semaphore(self._max_concurrent)
        async with asyncio.TaskGroup() as tg:
            while True:
                while not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                await sem.acquire()
                if not self._queue:  # pragma: no cover - only this task pops
                    sem.release()
                    continue
                job = self._queue.popleft()
                tg.create_task(self._run_one(job, sem))

    async def _run_one(self, job: HookJob, sem: asyncio.Semaphore) -> None:
        self.running += 1
        try:
            result = await self._exec(job)
        except Exception:  # a bug here must not end the runner's TaskGroup
            log.exception("hook runner error hook=%s", job.hook.path)
            result = "error"
        finally:
            self.running -= 1
            sem.release()
        self.results[result] += 1
        if self._metrics is not None:
            self._metrics.hook_runs.labels(result).inc()

    async def _exec(self, job: HookJob) -> str:
        path = str(job.hook.path)
        event = job.env["GOSSIPHA_EVENT"]
        try:
            # Its own session (process group): a timeout kills it all.
            proc = await start_child(
                [path],
                env=job.env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            log.warning("hook failed to start hook=%s event=%s error=%s", path, event, exc)
            return "error"
        try:
            code = await within(proc.wait(), job.hook.timeout_s)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            log.warning(
                "hook timed out hook=%s event=%s timeout_s=%g pid=%d",
                path,
                event,
                job.hook.timeout_s,
                proc.pid,
            )
            return "timeout"
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())
            raise
        if code != 0:
            log.warning("hook failed hook=%s event=%s exit=%d", path, event, code)
            return "failed"
        log.info("hook ran hook=%s event=%s", path, event)
        return "ok"


def _kill_group(pid: int) -> None:
    """SIGKILL the hook's process group (its pgid is its pid: start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------- Alertmanager


def _rfc3339(wall_ts: float) -> str:
    return datetime.fromtimestamp(wall_ts, UTC).isoformat(timespec="milliseconds")


def alert_payload(alert: Alert, *, cluster: str, node: str) -> dict[str, Any]:
    """One element of the POST /api/v2/alerts body."""
    labels = {
        "alertname": alert.name,
        "cluster": cluster,
        "node": node,
        "severity": alert.severity,
    }
    for k, v in (("peer", alert.peer), ("group", alert.group), ("link", alert.link)):
        if v:
            labels[k] = v
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": alert.summary},
        "startsAt": _rfc3339(alert.starts_wall),
    }
    if alert.ends_wall is not None:
        body["endsAt"] = _rfc3339(alert.ends_wall)
    return body


class AlertmanagerClient:
    """Pushes alerts to Alertmanager; latest state per alert wins while undelivered.

    Firing alerts are re-sent every `resend_s` (Alertmanager resolves an alert it has not
    heard of for its resolve_timeout, so we keep it alive); a resolved alert is sent with
    endsAt. Failed pushes are retried with exponential backoff up to `max_backoff_s`; the
    pending set is bounded by `max_pending` (oldest dropped and counted).
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: str,
        node: str,
        resend_s: float = 30.0,
        timeout_s: float = 5.0,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_pending: int = 512,
        wall_clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/api/v2/alerts"
        self._cluster = cluster
        self._node = node
        self._resend_s = resend_s
        self._timeout_s = timeout_s
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_pending = max_pending
        self._wall = wall_clock
        self._metrics = metrics
        self._pending: dict[tuple[str, str | None, str | None, str | None], Alert] = {}
        self._firing: dict[tuple[str, str | None, str | None, str | None], Alert] = {}
        self._wake = asyncio.Event()
        self.delivered = 0
        self.failures = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def update(self, alerts: Iterable[Alert]) -> None:
        """Queue alert changes (from AlertState). Never blocks, never raises."""
        for alert in alerts:
            self._pending.pop(alert.key, None)  # re-insert: newest last
            self._pending[alert.key] = alert
            if alert.firing:
                self._firing[alert.key] = alert
            else:
                self._firing.pop(alert.key, None)
            while len(self._pending) > self._max_pending:
                oldest = next(iter(self._pending))
                del self._pending[oldest]
                self.dropped += 1
                if self._metrics is not None:
                    self._metrics.alertmanager_dropped.inc()
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            backoff = self._min_backoff_s
            next_resend = asyncio.get_running_loop().time() + self._resend_s
            while True:
                loop_now = asyncio.get_running_loop().time()
                if loop_now >= next_resend:
                    for key, alert in self._firing.items():
                        self._pending.setdefault(key, alert)
                    next_resend = loop_now + self._resend_s
                if not self._pending:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await within(self._wake.wait(), next_resend - loop_now)
                    continue
                batch = dict(self._pending)
                if await self._post(session, list(batch.values())):
                    for key, alert in batch.items():
                        if self._pending.get(key) is alert:
                            del self._pending[key]
                    self.delivered += len(batch)
                    backoff = self._min_backoff_s
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff_s)

    async def _post(self, session: aiohttp.ClientSession, alerts: list[Alert]) -> bool:
        body = [alert_payload(a, cluster=self._cluster, node=self._node) for a in alerts]
        try:
            async with session.post(self._endpoint, json=body) as resp:
                ok = 200 <= resp.status < 300
                if not ok:
                    text = (await resp.text())[:200]
                    log.warning("alertmanager refused status=%d body=%r", resp.status, text)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ok = False
            if self.failures == 0 or self.failures % 10 == 0:
                log.warning(
                    "alertmanager unreachable url=%s error=%s failures=%d",
                    self._endpoint,
                    exc.__class__.__name__,
                    self.failures + 1,
                )
        if not ok:
            self.failures += 1
        if self._metrics is not None:
            self._metrics.alertmanager_pushes.labels("ok" if ok else "failed").inc()
        return ok
