"""The agent: one asyncio loop driving the pure core, performing its effects in order.

    links (UDP) --decode/verify--> MessageReceived --+
    pinger (ICMP) ------------------> PingResult ----+--> Node.step(now_s, input) -> Output
    ticker (next_wakeup_s, lag) ----> Tick/LoopLag --+        |
    signals --------------------> Shutdown/reload    |        v
                                                   actions (per group, in order), sends, notices

Every task lives in one TaskGroup. `Node.step` has no await inside, so each step is atomic;
its actions run as tasks, serialized per group (a StopGroup cancels an unfinished start,
then stops everything the start may have begun). Only this module reads time
(`loop.time()`). On the way out, whatever happens, every group this process may have
started is stopped and its VIPs removed (`_release_all`, safe to run twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, assert_never

from prometheus_client import CollectorRegistry

from gossipha.config.errors import ConfigError
from gossipha.config.load import Loaded, load
from gossipha.config.model import Config, ResourceGroup, ServiceResource, VipResource
from gossipha.core.node import Node
from gossipha.core.types import (
    AdminCommand,
    AdminKind,
    FoundRunning,
    HealthResult,
    Heartbeat,
    Input,
    LoopLag,
    Message,
    MessageReceived,
    Notice,
    NoticeKind,
    Output,
    PingResult,
    ProbeVip,
    ResourceAction,
    ResourceResult,
    Resumed,
    Send,
    Shutdown,
    Stalled,
    StartGroup,
    StopGroup,
    StopReason,
    Tick,
    VipProbeResult,
    message_from_wire,
)
from gossipha.observe.admin import AdminError, AdminServer
from gossipha.observe.api import ApiServer, make_app
from gossipha.observe.metrics import Metrics
from gossipha.resources import services, vip
from gossipha.resources.health import CheckResult, GroupHealth, HealthDecision
from gossipha.runtime import clock, logs
from gossipha.runtime.health_watch import checks_for, make_monitor
from gossipha.runtime.icmp import GroupReport, Pinger, PingEvent, PingReport
from gossipha.runtime.incarnation import incarnation_path, new_incarnation
from gossipha.runtime.links import LinkError, LinkSocket
from gossipha.runtime.logs import kv
from gossipha.runtime.memlock import lock_memory
from gossipha.runtime.notify import Notifier
from gossipha.runtime.observe_glue import STATUS_REFRESH_S, ObserveGlue
from gossipha.runtime.reload import default_pidfile, keyring_for, remove_pidfile, write_pidfile
from gossipha.runtime.respawn import Respawner
from gossipha.runtime.witness import witness_config
from gossipha.wire.codec import Decoder, Encoder, PacketTooLarge, cluster_id
from gossipha.wire.keyring import KeyringError
from gossipha.wire.reject import Reject, RejectCounter, RejectLogLimiter, RejectReason

log = logging.getLogger("gossipha.agent")

DEFAULT_STATE_DIR = Path("/var/lib/gossipha")
STATE_DIR_ENV = "GOSSIPHA_STATE_DIR"
# Body key naming the addressee: bcast/mcast/ucast-to-all reach every node, only it acts.
TO_KEY = "to"
ANNOUNCE_COUNT = 5
ANNOUNCE_INTERVAL_S = 0.2
REANNOUNCE_S = 10.0
SHUTDOWN_TIMEOUT_S = 30.0
RELOAD_TIMEOUT_S = 10.0
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
# After a group was given up for failing health checks and stopped here, this node stays
# ineligible for it this long (it cannot prove itself healthy without running it), then
# may hold it again (Pacemaker's failure-timeout).
UNHEALTHY_HOLD_S = 60.0
_ADMIN_DETAIL = {
    AdminKind.STANDBY: "standby: groups here are handed over; this node stays ineligible",
    AdminKind.TAKEOVER: "takeover: this node is now preferred for every group",
    AdminKind.MAINTENANCE_ON: "maintenance on: nobody claims or hands over groups",
    AdminKind.MAINTENANCE_OFF: "maintenance off",
}


# Stops where the lease is lost or superseded: the VIP must be down within the stop guard.
URGENT_STOPS = frozenset({StopReason.LEASE_LOST.value, StopReason.SUPERSEDED.value})


class _Stop(Exception):
    """Raised inside the TaskGroup body to leave it (cancels every task)."""


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


# ---------------------------------------------------------------------- per-group state


@dataclass(slots=True)
class _GroupRun:
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
        self._runs = {} if options.witness else {g.name: _GroupRun(g) for g in self.config.groups}
        self._respawners: list[Respawner] = []
        t = self.config.timings
        self._stall = clock.StallDetector(clock.stall_threshold_s(t.keepalive_s, t.lease_s))
        self._wakeup_s = 0.0
        self._rearm = asyncio.Event()
        self._exit = asyncio.Event()
        self._exit_status = 0
        self._closing = False
        self._shutdown_requested = False
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
        )
        log.info(
            kv(
                "agent starting",
                cluster=cfg.cluster_name,
                node=cfg.node_name,
                role="witness" if self.options.witness else "member",
                incarnation=self.incarnation,
                links=",".join(f"{lk.name}:{lk.kind.value}" for lk in cfg.links),
                groups=",".join(self._runs),
            )
        )
        try:
            async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tg:
                self._tg = tg
                await self._open_links()
                found = () if self.options.witness else await self._found_running()
                self._node = Node(
                    cfg, self.incarnation, random.Random(secrets.randbits(64)), loop.time()
                )
                self._install_signals(loop)  # Shutdown needs the core
                await self._start_observe(stack, tg)
                self._write_pidfile()  # only now: SIGHUP before the handler would kill us
                if found:
                    log.warning(kv("found running", groups=",".join(found)))
                    for name in found:
                        self._runs[name].active = True
                        self._runs[name].held = True
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
                for name in found:
                    self._start_helpers(self._runs[name])
                self.notifier.ready(f"node {cfg.node_name} running")
                log.info(kv("agent ready", node=cfg.node_name))
                await self._exit.wait()
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
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    self._loop.remove_signal_handler(sig)
        await self._release_all()
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
        """An admin socket command: one core step (atomic), answered at once."""
        if self._node is None or self._closing:
            raise RuntimeError("the agent is shutting down")
        self._feed(AdminCommand(kind))
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

    async def _found_running(self) -> tuple[str, ...]:
        """Groups whose VIP is already here: an agent killed with -9 left them up."""
        found: list[str] = []
        for g in self.config.groups:
            for v in g.vips:
                try:
                    if await vip.has_vip(v):
                        found.append(g.name)
                        break
                except vip.VipError as exc:
                    log.warning(kv("vip check failed", group=g.name, vip=v.address, error=exc))
        return tuple(found)

    # ------------------------------------------------------------------ signals

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self._on_terminate, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_terminate, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup)

    def _on_terminate(self, name: str) -> None:
        if self._shutdown_requested:
            log.warning(kv("second stop signal: stopping resources now", signal=name))
            self.stop(0)
            return
        self._shutdown_requested = True
        log.info(kv("graceful shutdown", signal=name, timeout_s=self.options.shutdown_timeout_s))
        self.notifier.stopping("handing over")
        self._spawn(self._shutdown_timer(), "shutdown-timer")
        self._feed(Shutdown())

    async def _shutdown_timer(self) -> None:
        await asyncio.sleep(self.options.shutdown_timeout_s)
        log.warning(
            kv(
                "graceful shutdown timed out: stopping resources now",
                timeout_s=self.options.shutdown_timeout_s,
            )
        )
        self.stop(0)

    def _on_hangup(self) -> None:
        self._spawn(self._reload(), "reload")

    async def _reload(self) -> None:
        opts = self.options
        try:
            loaded = await asyncio.wait_for(
                asyncio.to_thread(
                    load,
                    opts.config_path,
                    self.config.node_name,
                    allow_unauthenticated=opts.allow_unauthenticated,
                    allow_witness=opts.witness,
                ),
                RELOAD_TIMEOUT_S,
            )
            keyring = keyring_for(loaded.config.auth)
            # A witness compares like with like (its narrowed config); a node that became
            # a member needs a restart as `gossipha agent` (ConfigError).
            new = witness_config(loaded.config) if opts.witness else loaded.config
        except ConfigError as exc:
            log.error(kv("reload failed; keeping the running configuration", error=exc.render()))
            return
        except (KeyringError, OSError, TimeoutError) as exc:
            log.error(kv("reload failed; keeping the running configuration", error=exc))
            return
        for warning in loaded.warnings:
            log.warning(kv("config warning", detail=warning.render()))
        for weakness in keyring.weaknesses():
            log.warning(kv("weak authentication", detail=weakness))
        assert self._encoder is not None and self._decoder is not None
        self._encoder.keyring = keyring
        self._decoder.keyring = keyring
        for problem in logs.configure(new.logging):
            log.warning(problem)
        old = self.config
        self.config = replace(old, auth=new.auth, logging=new.logging)
        if replace(new, auth=old.auth, logging=old.logging) != old:
            log.warning(
                "reload: keys and logging applied; other changes (nodes, links, timings, "
                "resources) need a restart"
            )
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
            self._rearm.set()
        if self._node.done and not self._exit.is_set():
            log.info(kv("handed over; exiting", node=self.config.node_name))
            self.stop(0)

    async def _ticker(self) -> None:
        """Tick at the core's next_wakeup_s (at least every keepalive/4); report lag."""
        assert self._loop is not None
        loop = self._loop
        while True:
            target_s = self._wakeup_s
            self._rearm.clear()
            if target_s > loop.time():
                try:
                    async with asyncio.timeout_at(target_s):
                        await self._rearm.wait()
                    continue  # an earlier wakeup was asked for: wait for that one
                except TimeoutError:
                    pass
            late_s = clock.lag_s(loop.time(), target_s)
            self.observe.on_lag(late_s)
            self._feed(LoopLag(late_s) if late_s >= clock.LAG_REPORT_S else Tick())

    def _perform(self, out: Output) -> None:
        for action in out.actions:
            match action:
                case StopGroup(group=g, epoch=e, reason=r):
                    self._stop_group(g, e, r.value)
                case StartGroup(group=g, epoch=e):
                    self._start_group(g, e)
                case ProbeVip(group=g):
                    self._spawn(self._probe(g), f"probe:{g}")
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

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        if self._tg is None or self._closing:
            coro.close()
            return None
        return self._tg.create_task(coro, name=name)

    def _start_group(self, gname: str, epoch: int) -> None:
        run = self._runs[gname]
        prev = run.task
        run.starting = True
        run.task = self._spawn(self._do_start(run, epoch, prev), f"start:{gname}")

    def _stop_group(self, gname: str, epoch: int, reason: str) -> None:
        run = self._runs[gname]
        prev = run.task
        if prev is not None and run.starting and not prev.done():
            log.warning(kv("cancelling unfinished start", group=gname, reason=reason))
            prev.cancel()
        run.starting = False
        run.task = self._spawn(self._do_stop(run, epoch, reason, prev), f"stop:{gname}")

    async def _do_start(self, run: _GroupRun, epoch: int, prev: asyncio.Task[None] | None) -> None:
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
                    self._spawn(self._announce(res), f"announce:{res.address}")
                else:
                    outcome = await services.start_service(
                        res, epoch=epoch, group=g.name, env=self._service_env(epoch, g.name)
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
        self._feed(ResourceResult(g.name, ResourceAction.START, ok, detail))

    async def _do_stop(
        self, run: _GroupRun, epoch: int, reason: str, prev: asyncio.Task[None] | None
    ) -> None:
        if prev is not None:
            await asyncio.wait([prev])
        g = run.config
        log.info(kv("stopping group", group=g.name, epoch=epoch, reason=reason))
        ok, detail = await self._stop_resources(run, epoch, vips_first=reason in URGENT_STOPS)
        log.log(
            logging.INFO if ok else logging.ERROR,
            kv("group stopped" if ok else "group stop failed", group=g.name, detail=detail or None),
        )
        self._feed(ResourceResult(g.name, ResourceAction.STOP, ok, detail))

    async def _stop_resources(
        self, run: _GroupRun, epoch: int, vips_first: bool = False
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
        order = list(reversed(g.resources))
        if vips_first:
            order.sort(key=lambda res: not isinstance(res, VipResource))  # stable: VIPs first
        for res in order:
            try:
                if isinstance(res, VipResource):
                    await vip.remove_vip(res)
                    log.info(kv("vip removed", group=g.name, vip=res.address))
                else:
                    outcome = await services.stop_service(
                        res, epoch=epoch, group=g.name, env=self._service_env(epoch, g.name)
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

    async def _release_all(self) -> None:
        """On the way out: stop every group this process may run (idempotent)."""
        for run in self._runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
                await asyncio.wait([run.task])
            if not run.active:
                continue
            log.warning(kv("releasing on exit", group=run.config.name))
            ok, detail = await self._stop_resources(run, run.epoch)
            if not ok:
                log.error(kv("release on exit incomplete", group=run.config.name, detail=detail))

    def _service_env(self, epoch: int, group: str) -> dict[str, str]:
        env = dict(os.environ)
        env["GOSSIPHA_EPOCH"] = str(epoch)
        env["GOSSIPHA_GROUP"] = group
        env["GOSSIPHA_NODE"] = self.config.node_name
        return env

    async def _probe(self, gname: str) -> None:
        t = self.config.timings
        g = self._runs[gname].config
        answered = False
        started_s = self._loop.time() if self._loop is not None else 0.0
        # The core trusts a silence only if it is fresh (about count x interval after the
        # ProbeVip): listen one interval after the last probe, not the adapter's default.
        for v in g.vips:
            try:
                mac = await vip.probe(
                    v, t.vip_probe_count, t.vip_probe_interval_s, wait_s=t.vip_probe_interval_s
                )
            except vip.VipError as exc:
                log.error(kv("vip probe failed", group=gname, vip=v.address, error=exc))
                continue
            if mac is not None:
                log.error(kv("vip answered our probe", group=gname, vip=v.address, mac=mac))
                answered = True
        took_s = (self._loop.time() if self._loop is not None else 0.0) - started_s
        log.info(kv("vip probed", group=gname, answered=answered, took_s=f"{took_s:.3f}"))
        self._feed(VipProbeResult(gname, answered))

    async def _announce(self, v: VipResource, count: int = ANNOUNCE_COUNT) -> None:
        try:
            await vip.announce(v, count, ANNOUNCE_INTERVAL_S)
        except vip.VipError as exc:
            log.warning(kv("vip announce failed", vip=v.address, error=exc))

    # -- while a group is held: re-announce, watch for foreign claims and removal

    def _start_helpers(self, run: _GroupRun) -> None:
        self._stop_helpers(run)
        self._start_monitor(run)
        for v in run.config.vips:
            for coro, name in (
                (self._reannounce(v), f"reannounce:{v.address}"),
                (self._watch(run, v), f"watch:{v.address}"),
            ):
                task = self._spawn(coro, name)
                if task is not None:
                    run.helpers.append(task)

    def _stop_helpers(self, run: _GroupRun) -> None:
        self._stop_monitor(run)
        for task in run.helpers:
            task.cancel()
        run.helpers.clear()

    # -- health: checks (or service status) while held; restart, give up, recover

    def _start_monitor(self, run: _GroupRun) -> None:
        self._stop_monitor(run)
        g = run.config
        if run.health is None:
            run.health = GroupHealth(g.name, checks_for(g))

        def sink(result: CheckResult) -> None:
            self._on_check(run, result)

        monitor = make_monitor(g, sink, epoch=run.epoch, env=self._service_env(run.epoch, g.name))
        if monitor is not None:
            run.monitor = self._spawn(monitor.run(), f"health:{g.name}")
            log.info(
                kv(
                    "health monitor started",
                    group=g.name,
                    checks=",".join(run.health.trackers),
                )
            )

    def _stop_monitor(self, run: _GroupRun) -> None:
        if run.monitor is not None:
            run.monitor.cancel()
            run.monitor = None

    def _on_check(self, run: _GroupRun, result: CheckResult) -> None:
        """One probe result: count it, let the group's trackers decide, act on it."""
        if self._closing or not run.held or run.health is None:
            return
        g = run.config.name
        self.observe.on_health(g, result.healthy)
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

    def _recovered(self, run: _GroupRun, why: str) -> None:
        run.given_up = False
        if run.hold is not None:
            run.hold.cancel()
            run.hold = None
        if run.health is not None:
            run.health.reset()
        log.warning(kv("group eligible here again", group=run.config.name, reason=why))
        self._feed(HealthResult(run.config.name, healthy=True))

    def _restart_group(self, run: _GroupRun) -> None:
        """Restart the services in the group's action chain (after whatever runs now)."""
        prev = run.task
        run.task = self._spawn(self._do_restart(run, prev), f"restart:{run.config.name}")

    async def _do_restart(self, run: _GroupRun, prev: asyncio.Task[None] | None) -> None:
        if prev is not None:
            await asyncio.wait([prev])
        g = run.config
        if not run.held or self._closing:
            return
        self._stop_monitor(run)
        epoch = run.epoch
        env = self._service_env(epoch, g.name)
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
            self._feed(ResourceResult(g.name, ResourceAction.START, False, f"restart: {detail}"))

    def _hold_after_give_up(self, run: _GroupRun) -> None:
        if run.given_up and (run.hold is None or run.hold.done()):
            run.hold = self._spawn(self._unhealthy_hold(run), f"unhealthy:{run.config.name}")

    async def _unhealthy_hold(self, run: _GroupRun) -> None:
        await asyncio.sleep(self.options.unhealthy_hold_s)
        run.hold = None
        if run.given_up and not run.held:
            self._recovered(run, f"given up {self.options.unhealthy_hold_s:g}s ago")

    async def _reannounce(self, v: VipResource) -> None:
        while True:
            await asyncio.sleep(self.options.reannounce_s)
            await self._announce(v, 1)

    async def _watch(self, run: _GroupRun, v: VipResource) -> None:
        def sink(event: vip.VipEvent) -> None:
            if isinstance(event, vip.ForeignClaim):
                log.error(
                    kv(
                        NoticeKind.SPLIT_BRAIN_RISK.value,
                        group=run.config.name,
                        vip=event.address,
                        mac=event.mac,
                        detail="another host claims our VIP; re-announcing",
                    )
                )
                self._spawn(self._announce(v), f"announce:{v.address}")
            elif run.held:
                log.error(
                    kv(
                        "vip removed behind our back; re-adding",
                        group=run.config.name,
                        vip=event.address,
                    )
                )
                self._spawn(self._readd(run, v), f"readd:{v.address}")

        try:
            await vip.VipWatcher(v, sink).run()
        except (vip.VipError, OSError) as exc:
            log.warning(kv("vip watcher stopped", vip=v.address, error=exc))

    async def _readd(self, run: _GroupRun, v: VipResource) -> None:
        if not run.held:
            return
        try:
            await vip.add_vip(v)
        except vip.VipError as exc:
            log.error(kv("vip re-add failed", vip=v.address, error=exc))
            return
        await self._announce(v)

    # ------------------------------------------------------------------ ping, housekeeping

    async def _ping(self) -> None:
        t = self.config.timings

        groups_of: dict[str, list[str]] = {}
        for pg in self.config.ping_groups:
            for address in pg.addresses:
                groups_of.setdefault(str(address), []).append(pg.name)

        def sink(event: PingEvent) -> None:
            if isinstance(event, GroupReport):
                self.observe.on_ping(event.group, event.reachable)
                self._feed(PingResult(event.group, event.reachable))
            elif isinstance(event, PingReport) and event.reachable:
                for name in groups_of.get(str(event.address), ()):
                    self.observe.on_ping(name, True, event.rtt_s)

        pinger = Pinger(
            self.config.ping_groups,
            interval_s=t.ping_interval_s,
            deadping_s=t.deadping_s,
            sink=sink,
        )
        try:
            await pinger.run()
        except* OSError as group:
            # Opening fails with a plain OSError, a receiver inside the pinger's TaskGroup
            # with an ExceptionGroup: both must end here, not in the agent's TaskGroup.
            # Unable to ping is unable to prove we are not the isolated node: say so.
            exc = group.exceptions[0]
            log.error(kv("ping nodes unusable; treating them as unreachable", error=exc))
            for pg in self.config.ping_groups:
                self.observe.on_ping(pg.name, False)
                self._feed(PingResult(pg.name, False))

    async def _housekeeping(self) -> None:
        """Watchdog keepalives (only while the core is being stepped) and reject summaries."""
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


def res_name(res: VipResource | ServiceResource) -> str:
    return str(res.address) if isinstance(res, VipResource) else res.name


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
    for problem in logs.configure(loaded.config.logging):
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
