"""The agent: one asyncio loop driving the pure core, performing its effects in order.

    links (UDP) --decode/verify--> MessageReceived --+
    pinger (ICMP) ------------------> PingResult ----+--> Node.step(now_s, input) -> Output
    ticker (next_wakeup_s, lag) ----> Tick/LoopLag --+        |
    signals --------------------> Shutdown/reload    |        v
                                                   actions (per group, in order), sends, notices

This module is the orchestration: it opens the links, owns the TaskGroup, steps the core
(`_feed`) and performs each Output (sends on the links, group actions through the
GroupRunner, notices to the log and observe_glue). Each concern around it has its module:

    groups.py       per-group start/stop/restart chains, health, give-up hold, release
    vip_tasks.py    VIP probe before a claim, gratuitous ARP, watch and re-add while held
    signals.py      SIGTERM/SIGINT graceful handover and its bound; SIGHUP
    reload.py       pid file; what a reload reads and applies (keys, logging)
    ping_feed.py    ping nodes to PingResults
    incarnation.py  the persisted, only-rising incarnation; memlock.py: mlockall

Every task lives in one TaskGroup. `Node.step` has no await inside, so each step is atomic;
its actions run as tasks, serialized per group (a StopGroup cancels an unfinished start,
then stops everything the start may have begun). Only this module reads the loop's time
(`loop.time()`; helpers are handed `_clock_s`). On the way out, whatever happens, every
group this process may have started is stopped and its VIPs removed
(`GroupRunner.release_all`, safe to run twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_never

from prometheus_client import CollectorRegistry

from gossipha.child import check_reset
from gossipha.config.load import Loaded
from gossipha.config.model import Config
from gossipha.core.node import Node
from gossipha.core.types import (
    AdminCommand,
    AdminKind,
    FoundRunning,
    Heartbeat,
    Input,
    LoopLag,
    Message,
    MessageReceived,
    Notice,
    NoticeKind,
    Output,
    ProbeVip,
    Resumed,
    Send,
    Shutdown,
    Stalled,
    StartGroup,
    StopGroup,
    Tick,
    message_from_wire,
)
from gossipha.observe.admin import AdminError, AdminServer
from gossipha.observe.api import ApiServer, make_app
from gossipha.observe.metrics import Metrics
from gossipha.runtime import clock, logs
from gossipha.runtime.groups import UNHEALTHY_HOLD_S, GroupRun, GroupRunner
from gossipha.runtime.incarnation import incarnation_path, new_incarnation
from gossipha.runtime.links import LinkError, LinkSocket
from gossipha.runtime.logs import kv
from gossipha.runtime.memlock import lock_memory, trim_heap
from gossipha.runtime.notify import Notifier
from gossipha.runtime.observe_glue import STATUS_REFRESH_S, ObserveGlue
from gossipha.runtime.ping_feed import feed_pings
from gossipha.runtime.reload import (
    default_pidfile,
    keyring_for,
    load_for_reload,
    reloaded,
    remove_pidfile,
    write_pidfile,
)
from gossipha.runtime.respawn import Respawner
from gossipha.runtime.signals import AgentSignals
from gossipha.runtime.stop_bound import stop_bound_s
from gossipha.runtime.witness import witness_config
from gossipha.wire.codec import Decoder, Encoder, PacketTooLarge, cluster_id
from gossipha.wire.reject import Reject, RejectCounter, RejectLogLimiter, RejectReason
from gossipha.wire.replay import window_for

log = logging.getLogger("gossipha.agent")

DEFAULT_STATE_DIR = Path("/var/lib/gossipha")
STATE_DIR_ENV = "GOSSIPHA_STATE_DIR"
# Body key naming the addressee: bcast/mcast/ucast-to-all reach every node, only it acts.
TO_KEY = "to"
REANNOUNCE_S = 10.0
SHUTDOWN_TIMEOUT_S = 30.0
HOUSEKEEPING_S = 10.0
REJECT_LOG_INTERVAL_S = 60.0
# Rejects that are expected traffic, not alarms: our own bcast/mcast echo.
_QUIET_REJECTS = frozenset({RejectReason.LOOPBACK})
_WARN_NOTICES = frozenset(
    {
        NoticeKind.PEER_WARN,
        NoticeKind.PEER_DEAD,
        NoticeKind.LINK_DOWN,
        NoticeKind.PING_LOST,
        NoticeKind.LEASE_LOST,
        NoticeKind.RESOURCE_FAILED,
        NoticeKind.NO_HOLDER,
    }
)
_ERROR_NOTICES = frozenset({NoticeKind.SPLIT_BRAIN_RISK})
_ADMIN_DETAIL = {
    AdminKind.STANDBY: "standby: groups here are handed over; this node stays ineligible",
    AdminKind.TAKEOVER: "takeover: this node is now preferred for every group",
    AdminKind.MAINTENANCE_ON: "maintenance on: nobody claims or hands over groups",
    AdminKind.MAINTENANCE_OFF: "maintenance off",
}


class _Stop(Exception):
    """Raised inside the TaskGroup body to leave it (cancels every task)."""


async def warn_if_children_keep_priority() -> list[str]:
    """Once, at start: can a child drop the agent's realtime priority and OOM protection?
    If not, services still start, with them: one warning now, not one per child."""
    try:
        failures = await check_reset()
    except OSError as exc:
        failures = [f"check: {exc}"]
    if failures:
        log.warning(kv("children keep the agent's priority", detail="; ".join(failures)))
    return failures


@dataclass(frozen=True, slots=True)
class AgentOptions:
    config_path: Path
    node_name: str | None = None
    allow_unauthenticated: bool = False
    state_dir: Path = DEFAULT_STATE_DIR
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S
    reannounce_s: float = REANNOUNCE_S
    mlock: bool = True
    # Observe overrides (None: the configuration's observe.listen_*/admin_socket).
    listen: tuple[str, int] | None = None
    admin_socket: Path | None = None
    unhealthy_hold_s: float = UNHEALTHY_HOLD_S
    pidfile: Path | None = None  # None: <state_dir>/gossipha.pid (read by `gossipha reload`)
    # `gossipha witness`: links and the core only (runtime/witness.py); no VIP, services,
    # ping nodes, health checks or respawns.
    witness: bool = False
    # --log-level (a logging level); None: the configuration's (`debug` means DEBUG).
    log_level: int | None = None


# ---------------------------------------------------------------------- framing


def frame(send: Send) -> dict[str, Any]:
    """The packet body for a Send: the message's wire form (its "t" tags the type) plus
    the addressee, since bcast, mcast and ucast-to-every-peer also reach other nodes."""
    body: dict[str, Any] = send.message.to_wire()
    body[TO_KEY] = send.to
    return body


def unframe(body: dict[str, Any], me: str) -> Message | None:
    """The message in a verified body; None when addressed to another node; ValueError
    for a body that is no valid message (counted as bad_body)."""
    to = body.get(TO_KEY)
    if to is not None and to != me:
        if not isinstance(to, str):
            raise ValueError(f"{TO_KEY}: expected a node name")
        return None
    return message_from_wire(body)


@dataclass(slots=True)
class Counters:
    """For tests and metrics."""

    steps: int = 0
    stalls: int = 0
    packets_in: int = 0
    packets_out: int = 0
    too_large: int = 0
    bad_messages: int = 0
    not_for_us: int = 0


class Agent:
    """One node's runtime. `await run()` returns the exit status."""

    def __init__(
        self,
        loaded: Loaded,
        options: AgentOptions,
        notifier: Notifier | None = None,
        *,
        registry: CollectorRegistry | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config: Config = witness_config(loaded.config) if options.witness else loaded.config
        self.options = options
        self.notifier = notifier or Notifier()
        # No registry: /metrics serves an empty one of our own (never a global default).
        self.registry = registry if registry is not None else CollectorRegistry()
        self.observe = ObserveGlue(self.config, metrics)
        self.api_port: int | None = None
        self.admin_path: Path | None = None
        self.counters = Counters()
        self.rejects = RejectCounter()
        self._reject_log = RejectLogLimiter(REJECT_LOG_INTERVAL_S)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._node: Node | None = None
        self._encoder: Encoder | None = None
        self._decoder: Decoder | None = None
        self._links: dict[str, LinkSocket] = {}
        # A witness holds nothing: no group runs here, so nothing to start, stop or release.
        self.groups = GroupRunner(
            () if options.witness else self.config.groups,
            node_name=self.config.node_name,
            timings=self.config.timings,
            feed=self._feed,
            spawn=self._spawn,
            closing=lambda: self._closing,
            clock_s=self._clock_s,
            on_health=self.observe.on_health,
            reannounce_s=options.reannounce_s,
            unhealthy_hold_s=options.unhealthy_hold_s,
        )
        self._signals = AgentSignals(
            timeout_s=options.shutdown_timeout_s,
            hand_over=self._hand_over,
            stop_now=self.stop,
            reload=self._reload,
            spawn=self._spawn,
        )
        self._respawners: list[Respawner] = []
        t = self.config.timings
        self._stall = clock.StallDetector(clock.stall_threshold_s(t.keepalive_s, t.lease_s))
        self._wakeup_s = 0.0
        # The ticker's timer for `_wakeup_s` (None while it runs a step, or no ticker).
        self._tick_timer: asyncio.TimerHandle | None = None
        # Set while the ticker runs; a step that raised in the timer's callback fails it.
        self._tick_failed: asyncio.Future[None] | None = None
        # Periodic work that takes its turn at a tick when due near it (`Pinger.ride`):
        # one wake-up of the loop for both. Called with (now, the next tick's time).
        self._tick_riders: list[Callable[[float, float], None]] = []
        self._exit = asyncio.Event()
        self._exit_status = 0
        self._closing = False
        self.incarnation = 0

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        cfg = self.config
        keyring = keyring_for(cfg.auth)
        for weakness in keyring.weaknesses():
            log.warning(kv("weak authentication", detail=weakness))
        if self.options.mlock:
            log.info(kv("memory lock", result=lock_memory()))
        await warn_if_children_keep_priority()
        inc_path = incarnation_path(self.options.state_dir, cfg.cluster_name, cfg.node_name)
        self.incarnation = await asyncio.to_thread(new_incarnation, inc_path)
        cid = cluster_id(cfg.cluster_name)
        self._encoder = Encoder(
            cluster=cid, node=cfg.node_name, incarnation=self.incarnation, keyring=keyring
        )
        self._decoder = Decoder(
            cluster=cid,
            node=cfg.node_name,
            incarnation=self.incarnation,
            senders=[n.name for n in cfg.nodes],
            keyring=keyring,
            window=window_for(len(cfg.links), len(cfg.nodes) - 1),
        )
        log.info(
            kv(
                "agent starting",
                cluster=cfg.cluster_name,
                node=cfg.node_name,
                role="witness" if self.options.witness else "member",
                incarnation=self.incarnation,
                stop_bound_s=f"{self.stop_bound_s:g}",
                links=",".join(f"{lk.name}:{lk.kind.value}" for lk in cfg.links),
                groups=",".join(self.groups.runs),
            )
        )
        try:
            async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tg:
                self._tg = tg
                await self._open_links()
                found = () if self.options.witness else await self.groups.find_running()
                self._node = Node(
                    cfg, self.incarnation, random.Random(secrets.randbits(64)), loop.time()
                )
                self._signals.install(loop)  # Shutdown needs the core
                await self._start_observe(stack, tg)
                self._write_pidfile()  # only now: SIGHUP before the handler would kill us
                if found:
                    log.warning(kv("found running", groups=",".join(found)))
                    self.groups.adopt(found)
                    self._feed(FoundRunning(found))
                self._feed(Tick())
                tg.create_task(self._ticker(), name="ticker")
                tg.create_task(self._housekeeping(), name="housekeeping")
                if cfg.ping_groups and not self.options.witness:
                    tg.create_task(self._ping(), name="pinger")
                for spec in cfg.respawns:
                    r = Respawner(spec)
                    self._respawners.append(r)
                    tg.create_task(r.run(), name=f"respawn:{spec.command[0]}")
                self.groups.guard(found)
                self.notifier.ready(f"node {cfg.node_name} running")
                log.info(kv("agent ready", node=cfg.node_name))
                await self._exit.wait()
                # Leaving the TaskGroup cancels every task, and a cancelled stop SIGKILLs
                # the service it is stopping: a stop under way ends first, within its
                # services' timeouts (a start under way is cancelled, then stopped).
                await self.groups.finish_stops()
                raise _Stop
        except* _Stop:
            pass
        finally:
            await self._cleanup()
        return self._exit_status

    async def _cleanup(self) -> None:
        """Stop what we may run, close links, remove handlers. Safe to run twice."""
        self._closing = True
        if self._loop is not None:
            self._signals.remove(self._loop)
        await self.groups.release_all()
        for r in self._respawners:
            await r.stop()
        for ls in self._links.values():
            ls.close()
        remove_pidfile(self._pidfile, os.getpid())
        counts = {r.value: n for r, n in self.rejects.snapshot().items() if n}
        if counts:
            log.info(kv("rejected packets", **counts))
        self.notifier.stopping("stopped")
        log.info(kv("agent stopped", node=self.config.node_name, status=self._exit_status))

    @property
    def stop_bound_s(self) -> float:
        """The longest a stop of this agent can take: TimeoutStopSec must be above it."""
        runs = [run.config for run in self.groups.runs.values()]  # none for a witness
        return stop_bound_s(runs, self.config.respawns, self.options.shutdown_timeout_s)

    @property
    def _pidfile(self) -> Path:
        return self.options.pidfile or default_pidfile(self.options.state_dir)

    def _write_pidfile(self) -> None:
        try:
            write_pidfile(self._pidfile, os.getpid())
        except OSError as exc:
            log.warning(kv("pid file not written; use reload --pid", path=self._pidfile, error=exc))

    # ------------------------------------------------------------------ observe

    async def _start_observe(self, stack: contextlib.AsyncExitStack, tg: asyncio.TaskGroup) -> None:
        """HTTP API, admin socket, hooks, Alertmanager. A part that cannot start is logged
        and left out: observability never keeps the agent from running its groups."""
        obs = self.config.observe
        self._refresh_status()  # /status answers from the first request
        host, port = self.options.listen or (obs.listen_address, obs.listen_port)
        api = ApiServer(make_app(self.observe.status, self.registry), host, port)
        try:
            await stack.enter_async_context(api)
            self.api_port = api.port
        except OSError as exc:
            log.error(kv("observe api not started", address=host, port=port, error=exc))
        path = self.options.admin_socket or obs.admin_socket
        admin = AdminServer(path, self._admin)
        try:
            await stack.enter_async_context(admin)
            self.admin_path = path
        except (AdminError, OSError) as exc:
            log.error(kv("admin socket not started", path=path, error=exc))
        tg.create_task(self._observe_loop(), name="observe")
        if self.observe.hook_runner is not None:
            tg.create_task(self.observe.hook_runner.run(), name="hooks")
        if self.observe.am_client is not None:
            tg.create_task(self.observe.am_client.run(), name="alertmanager")

    async def _admin(self, kind: AdminKind) -> str:
        """An admin socket command: one core step (atomic), answered at once, and the
        status API refreshed with it, so a `gossipha status` right after the command
        already shows it (the periodic refresh could lag a second behind)."""
        if self._node is None or self._closing:
            raise RuntimeError("the agent is shutting down")
        self._feed(AdminCommand(kind))
        self._refresh_status()
        return _ADMIN_DETAIL[kind]

    async def _observe_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_REFRESH_S)
            self._refresh_status()

    def _refresh_status(self) -> None:
        if self._node is None or self._loop is None:
            return
        try:
            self.observe.refresh(self._node, self._loop.time(), time.time(), self.rejects)
        except Exception:  # a bug in a gauge must not take the groups down with it
            log.exception("status refresh failed")

    def _epoch_of(self, group: str) -> int:
        """The epoch a hook sees for `group`: ours if we claim it, else the holder's."""
        if self._node is None:
            return 0
        try:
            epoch = self._node.epoch(group)
        except KeyError:  # a witness keeps no group state
            epoch = 0
        return epoch or self._node.holder_epoch(group)

    def stop(self, status: int = 0) -> None:
        """Leave now (after cleanup); for fatal errors and the forced shutdown."""
        self._exit_status = status
        self._exit.set()

    async def _open_links(self) -> None:
        for link in self.config.links:
            ls = LinkSocket(link, self._on_datagram)
            try:
                await ls.open()
            except (LinkError, OSError, TimeoutError) as exc:
                log.error(kv("link failed", link=link.name, error=exc))
                continue
            self._links[link.name] = ls
            log.info(
                kv(
                    "link up",
                    link=link.name,
                    kind=link.kind.value,
                    iface=link.interface,
                    port=link.port,
                )
            )
        if not self._links and self.config.links:
            raise LinkError("no heartbeat link could be opened")

    # ------------------------------------------------------------------ signals

    def _hand_over(self) -> None:
        """The first stop signal: tell systemd, then ask the core to hand the groups over."""
        self.notifier.stopping("handing over")
        self._feed(Shutdown())

    async def _reload(self) -> None:
        """SIGHUP: new keys and logging from the files; anything else waits for a restart."""
        opts = self.options
        got = await load_for_reload(
            opts.config_path,
            self.config.node_name,
            allow_unauthenticated=opts.allow_unauthenticated,
            witness=opts.witness,
        )
        if got is None:
            return
        new, keyring = got
        assert self._encoder is not None and self._decoder is not None
        self._encoder.keyring = keyring
        self._decoder.keyring = keyring
        for problem in logs.configure(new.logging, level=opts.log_level):
            log.warning(problem)
        self.config = reloaded(self.config, new)
        log.info(
            kv("reloaded", keys=len(keyring.keys), active=keyring.active, mode=keyring.mode.value)
        )

    # ------------------------------------------------------------------ the core

    def _feed(self, event: Input) -> None:
        """Step the core with `event` and perform its output; a stall is reported first."""
        if self._closing or self._node is None or self._loop is None:
            return
        now_s = self._loop.time()
        stalled_s = self._stall.check(now_s)
        if stalled_s is not None:
            self.counters.stalls += 1
            log.warning(
                kv("loop stalled; dropping expired leases first", stalled_s=f"{stalled_s:.3f}")
            )
            self._step(now_s, Stalled(stalled_s))
            self._step(now_s, Resumed())
        self._step(now_s, event)

    def _step(self, now_s: float, event: Input) -> None:
        assert self._node is not None
        out = self._node.step(now_s, event)
        self.counters.steps += 1
        self._perform(out)
        if out.notices or out.actions:
            self.observe.on_output(out, self._epoch_of, time.time())
        wake_s = clock.next_wakeup_s(now_s, out.next_wakeup_s, self.config.timings.keepalive_s)
        self._stall.armed(now_s, wake_s)
        if wake_s != self._wakeup_s:
            self._wakeup_s = wake_s
            if self._tick_timer is not None:
                self._tick_timer.cancel()
                self._arm_tick()
        if self._node.done and not self._exit.is_set():
            log.info(kv("handed over; exiting", node=self.config.node_name))
            self.stop(0)

    async def _ticker(self) -> None:
        """Tick at the core's next_wakeup_s (its next deadline; capped at a keepalive);
        report lag.

        The Tick is stepped in the loop timer's own callback (`_tick_fired`), which a
        step re-arms (`_step`: cancel + call_at; a cancelled timer does not wake the
        loop). No task is woken per tick: a timer that resolved a future for this task
        cost a second pass of the event loop each time. This task owns the timer for the
        TaskGroup's life, and a step that raises in the callback ends it with that error.
        """
        assert self._loop is not None
        failed: asyncio.Future[None] = self._loop.create_future()
        self._tick_failed = failed
        self._arm_tick()
        try:
            await failed
        finally:
            self._tick_failed = None
            if self._tick_timer is not None:
                self._tick_timer.cancel()
                self._tick_timer = None

    def _arm_tick(self) -> None:
        assert self._loop is not None
        self._tick_timer = self._loop.call_at(self._wakeup_s, self._tick_fired, self._wakeup_s)

    def _tick_fired(self, target_s: float) -> None:
        assert self._loop is not None
        self._tick_timer = None
        failed = self._tick_failed
        if failed is None or failed.done():
            return
        try:
            late_s = clock.lag_s(self._loop.time(), target_s)
            self.observe.on_lag(late_s)
            self._feed(LoopLag(late_s) if late_s >= clock.LAG_REPORT_S else Tick())
        except Exception as exc:
            failed.set_exception(exc)
            return
        # `_step` re-arms only a timer that is set, and this one has fired: arm it here,
        # at the wakeup the step named (unless we are closing: no step moves it then).
        if self._tick_timer is None and not self._closing:
            self._arm_tick()
        # After the heartbeats have gone, with when the next tick comes: a rider reports
        # its own errors to its own task.
        for ride in self._tick_riders:
            ride(self._loop.time(), self._wakeup_s)

    def _perform(self, out: Output) -> None:
        for action in out.actions:
            match action:
                case StopGroup(group=g, epoch=e, reason=r):
                    self.groups.stop(g, e, r)
                case StartGroup(group=g, epoch=e):
                    self.groups.start(g, e)
                case ProbeVip(group=g):
                    self.groups.probe(g)
                case _:
                    assert_never(action)
        for send in out.sends:
            self._send(send)
        for notice in out.notices:
            self._log_notice(notice)

    def _log_notice(self, n: Notice) -> None:
        level = (
            logging.ERROR
            if n.kind in _ERROR_NOTICES
            else logging.WARNING
            if n.kind in _WARN_NOTICES
            else logging.INFO
        )
        log.log(
            level,
            kv(n.kind.value, peer=n.peer, group=n.group, link=n.link, detail=n.detail or None),
        )

    # ------------------------------------------------------------------ wire

    def _send(self, send: Send) -> None:
        assert self._encoder is not None
        body = frame(send)
        if send.link is not None:
            targets = [(send.link, self._links[send.link])] if send.link in self._links else []
        else:
            targets = list(self._links.items())
        for link_name, ls in targets:
            # One packet per link (own sequence number): each copy is accepted, so the
            # receiver sees the message on every link and tracks each link's health.
            try:
                data = self._encoder.encode(body)
            except PacketTooLarge as exc:
                self.counters.too_large += 1
                log.error(
                    kv("message too large; not sent", to=send.to, type=body.get("t"), error=exc)
                )
                return
            for address in ls.targets(send.to, self.config.nodes):
                if ls.send(data, address):
                    self.counters.packets_out += 1
                    self.observe.on_packet(link_name, "sent", len(data))

    def _on_datagram(self, link: str, data: bytes, addr: tuple[str, int]) -> None:
        if self._closing or self._decoder is None or self._loop is None:
            return
        now_s = self._loop.time()
        result = self._decoder.decode(data, now_s)
        if isinstance(result, Reject):
            self._rejected(result, link, addr, now_s)
            return
        self.counters.packets_in += 1
        self.observe.on_packet(link, "received", len(data))
        try:
            message = unframe(result.body, self.config.node_name)
        except ValueError as exc:
            self.counters.bad_messages += 1
            self._rejected(
                Reject(RejectReason.BAD_BODY, result.sender, result.key_id),
                link,
                addr,
                now_s,
                str(exc),
            )
            return
        if message is None:
            self.counters.not_for_us += 1
            return
        if isinstance(message, Heartbeat):
            self.observe.on_heartbeat(result.sender, link, now_s)
        self._feed(MessageReceived(link, result.sender, message))

    def _rejected(
        self, reject: Reject, link: str, addr: tuple[str, int], now_s: float, why: str = ""
    ) -> None:
        self.rejects.add(reject)
        line = self._reject_log.observe(reject, now_s)
        if line is None:
            return
        level = logging.DEBUG if reject.reason in _QUIET_REJECTS else logging.WARNING
        log.log(
            level,
            line.render() + " " + kv("", link=link, source=addr[0], detail=why or None).strip(),
        )

    # ------------------------------------------------------------------ resources

    @property
    def _runs(self) -> dict[str, GroupRun]:
        """The groups' run state by name (tests/unit/test_witness.py reads it)."""
        return self.groups.runs

    def _clock_s(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        if self._tg is None or self._closing:
            coro.close()
            return None
        return self._tg.create_task(coro, name=name)

    # ------------------------------------------------------------------ ping, housekeeping

    async def _ping(self) -> None:
        await feed_pings(
            self.config.ping_groups,
            self.config.timings,
            feed=self._feed,
            observe=self.observe,
            riders=self._tick_riders,
        )

    async def _housekeeping(self) -> None:
        """Watchdog keepalives (only while the core is being stepped), reject summaries and
        a heap trim (memlock.trim_heap) every HOUSEKEEPING_S."""
        assert self._loop is not None
        loop = self._loop
        wd_s = self.notifier.watchdog_s
        every_s = min(HOUSEKEEPING_S, wd_s / 2) if wd_s else HOUSEKEEPING_S
        last_flush_s = loop.time()
        while True:
            await asyncio.sleep(every_s)
            now_s = loop.time()
            if wd_s and now_s - self._stall.last_step_s < wd_s / 2:
                self.notifier.watchdog()
            if now_s - last_flush_s >= HOUSEKEEPING_S:
                last_flush_s = now_s
                for line in self._reject_log.flush(now_s):
                    log.warning(line.render())
                # Freed C heap back to the kernel: what start-up (and a failover) left
                # behind. About 1 ms each time; RSS 46.2 -> 44.3 MiB on the idle agent.
                trim_heap()


def state_dir_from_env(default: Path = DEFAULT_STATE_DIR) -> Path:
    value = os.environ.get(STATE_DIR_ENV)
    return Path(value) if value else default


async def run_agent(
    loaded: Loaded,
    options: AgentOptions,
    *,
    registry: CollectorRegistry | None = None,
    metrics: Metrics | None = None,
) -> int:
    """Entry point for the CLI: logs configured, agent run, logs closed."""
    for problem in logs.configure(loaded.config.logging, level=options.log_level):
        log.warning(problem)
    agent = Agent(loaded, options, registry=registry, metrics=metrics)
    status = 1
    try:
        status = await agent.run()
    except* LinkError as group:
        for exc in group.exceptions:
            log.error(kv("cannot start", error=exc))
    finally:
        logs.close()
    return status


__all__ = ["Agent", "AgentOptions", "run_agent"]
