"""ICMP echo to the ping nodes from inside the agent (no `ping` subprocess).

One raw ICMP socket per address family (or an unprivileged SOCK_DGRAM "ping socket" when raw
is refused), optionally bound to an interface with SO_BINDTODEVICE so a ping node is checked
over the path Heartbeat would use. Each round sends one echo per address; replies are matched
on (source, identifier, sequence). A ping node is lost after `deadping_s` without a reply,
and a `PingGroup` is reachable while any member is. Loss bookkeeping is the pure
`ReachabilityTracker`; `Pinger` only does the I/O and reads `loop.time()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import secrets
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gossipha.aio import DatagramReader, within
from gossipha.config.model import IPAddress, PingGroup

log = logging.getLogger(__name__)

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
PAYLOAD = b"gossipha"
# Largest datagram read; echo replies are tiny, anything bigger is not ours.
RECV_BYTES = 2048
SOCKET_OPEN_TIMEOUT_S = 5.0
# A round goes out at the heartbeat tick nearest its due time when one comes up to this
# share of an interval before it, or after it (`Pinger.ride`): one wake-up for both, and
# rounds stay 0.5 to 1.25 intervals apart whatever the ticks do.
RIDE_EARLY = 0.5
RIDE_LATE = 0.25
# A ping node is judged lost this share of an interval before `deadping_s` is quite up
# (`Pinger._expire`): at the round nearest the deadline, not the one after it.
EXPIRE_SLACK = 0.25


@dataclass(frozen=True, slots=True)
class PingReport:
    """A reply (reachable, with its round-trip time) or a loss after deadping (no rtt)."""

    address: IPAddress
    reachable: bool
    rtt_s: float | None
    at_s: float


@dataclass(frozen=True, slots=True)
class GroupReport:
    """A ping group's reachability changed (any member reachable = reachable)."""

    group: str
    reachable: bool
    at_s: float


PingEvent = PingReport | GroupReport


class ReachabilityTracker:
    """Per address: reachable after a reply, lost after `deadping_s` with none (pure).

    An address never heard from is unknown (None) until `deadping_s` after `start_s`.
    """

    def __init__(self, addresses: Iterable[IPAddress], deadping_s: float, start_s: float) -> None:
        assert deadping_s > 0
        self.deadping_s = deadping_s
        self._since: dict[IPAddress, float] = dict.fromkeys(addresses, start_s)
        self._state: dict[IPAddress, bool | None] = dict.fromkeys(self._since)

    def reply(self, address: IPAddress, now_s: float) -> bool:
        """Record a reply; True when this makes the address reachable (a transition)."""
        if address not in self._state:
            return False
        self._since[address] = now_s
        changed = self._state[address] is not True
        self._state[address] = True
        return changed

    def tick(self, now_s: float) -> list[IPAddress]:
        """Addresses that became lost at `now_s`."""
        lost: list[IPAddress] = []
        for address, since_s in self._since.items():
            if self._state[address] is not False and now_s - since_s >= self.deadping_s:
                self._state[address] = False
                lost.append(address)
        return lost

    def reachable(self, address: IPAddress) -> bool | None:
        return self._state[address]

    def group_reachable(self, addresses: Iterable[IPAddress]) -> bool | None:
        states = [self._state[a] for a in addresses]
        if any(s is True for s in states):
            return True
        if states and all(s is False for s in states):
            return False
        return None


def icmp_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_echo(family: int, identifier: int, seq: int) -> bytes:
    """An echo request; ICMPv6 checksums are filled in by the kernel."""
    if family == socket.AF_INET6:
        return struct.pack("!BBHHH", ICMP6_ECHO_REQUEST, 0, 0, identifier, seq) + PAYLOAD
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, identifier, seq)
    csum = icmp_checksum(header + PAYLOAD)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, csum, identifier, seq) + PAYLOAD


def parse_reply(family: int, data: bytes, has_ip_header: bool) -> tuple[int, int] | None:
    """(identifier, sequence) of an echo reply, or None for any other packet."""
    if has_ip_header and family == socket.AF_INET:
        if not data:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8:
        return None
    kind, code, _csum, identifier, seq = struct.unpack("!BBHHH", data[:8])
    expected = ICMP6_ECHO_REPLY if family == socket.AF_INET6 else ICMP_ECHO_REPLY
    if kind != expected or code != 0:
        return None
    return identifier, seq


def open_icmp_socket(
    family: int, *, interface: str | None = None, netns: str | None = None
) -> tuple[socket.socket, bool]:
    """A non-blocking ICMP socket and whether it is raw (blocking: call via a thread).

    Raw needs CAP_NET_RAW; otherwise the kernel's ping socket (net.ipv4.ping_group_range).
    `netns` opens it inside that named namespace (tests and the lab; the agent itself
    runs in its own namespace and passes None).
    """
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    sock: socket.socket | None = None
    raw = True
    for kind in (socket.SOCK_RAW, socket.SOCK_DGRAM):
        raw = kind == socket.SOCK_RAW
        try:
            sock = _make_socket(family, kind, proto, netns)
            break
        except PermissionError:
            continue
    if sock is None:
        raise PermissionError("neither raw nor ping sockets are allowed for ICMP")
    try:
        if interface is not None:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, raw


def _make_socket(family: int, kind: int, proto: int, netns: str | None) -> socket.socket:
    if netns is None:
        return socket.socket(family, kind, proto)
    from pyroute2 import netns as pr_netns

    sock: socket.socket = pr_netns.create_socket(
        netns, family=family, socket_type=kind, proto=proto, flags=0
    )
    return sock


@dataclass(slots=True)
class _Run:
    """One `Pinger.run`: its sockets, schedule and bounds."""

    loop: asyncio.AbstractEventLoop
    sockets: dict[tuple[int, str | None], tuple[socket.socket, bool]]
    finished: asyncio.Future[None]
    max_rounds: int | None
    end_s: float = float("inf")
    rounds: int = 0
    due_s: float = float("-inf")
    timer: asyncio.TimerHandle | None = None
    next_offer_s: float = float("-inf")  # the next wake-up `ride` was told of

    def fail(self, exc: Exception) -> None:
        """End the run with `exc` (the first one wins)."""
        if not self.finished.done():
            self.finished.set_exception(exc)


class Pinger:
    """Sends one echo per `interval_s` to every ping-node address and reports to `sink`.

    `sink` gets a `PingReport` for every reply and for every loss (after `deadping_s`
    without a reply), and a `GroupReport` whenever a group's reachability changes.
    `run` is bounded by `max_rounds` and/or `duration_s` when given; the agent runs it
    unbounded inside its TaskGroup and cancels it on shutdown.
    """

    def __init__(
        self,
        groups: Sequence[PingGroup],
        *,
        interval_s: float,
        deadping_s: float,
        sink: Callable[[PingEvent], None],
        netns: str | None = None,
        identifier: int | None = None,
    ) -> None:
        assert interval_s > 0 and deadping_s > 0
        self.groups = tuple(groups)
        self.interval_s = interval_s
        self.deadping_s = deadping_s
        self._sink = sink
        self._netns = netns
        self._identifier = secrets.randbits(16) if identifier is None else identifier & 0xFFFF
        seen: dict[IPAddress, str | None] = {}
        for group in self.groups:
            for address in group.addresses:
                seen.setdefault(address, group.interface)
        self.addresses: tuple[IPAddress, ...] = tuple(seen)
        self._interface = seen
        self._pending: dict[tuple[IPAddress, int], float] = {}
        self._group_state: dict[str, bool | None] = {g.name: None for g in self.groups}
        self._tracker: ReachabilityTracker | None = None
        self._seq = 0
        self._run: _Run | None = None

    @classmethod
    def for_addresses(
        cls,
        addresses: Sequence[str | IPAddress],
        *,
        interface: str | None = None,
        **kwargs: object,
    ) -> Pinger:
        """One group per address, as Heartbeat's plain `ping ADDR` lines."""
        groups = [PingGroup(str(a), (ipaddress.ip_address(a),), interface) for a in addresses]
        return cls(groups, **kwargs)  # type: ignore[arg-type]

    def reachable(self, address: IPAddress) -> bool | None:
        return None if self._tracker is None else self._tracker.reachable(address)

    async def run(self, *, max_rounds: int | None = None, duration_s: float | None = None) -> None:
        """Ping until cancelled, or for `max_rounds` rounds and/or `duration_s`.

        Rounds are taken by a loop timer's callback (`_fire`), or earlier by `ride`, and
        replies are read in the sockets' readiness callbacks: an exception in any of them
        (a sink that raised) ends this call with it.
        """
        loop = asyncio.get_running_loop()
        sockets = await self._open_sockets()
        try:
            start_s = loop.time()
            self._tracker = ReachabilityTracker(self.addresses, self.deadping_s, start_s)
            run = self._run = _Run(loop, sockets, loop.create_future(), max_rounds)
            if duration_s is not None:
                run.end_s = start_s + duration_s
            with contextlib.ExitStack() as readers:
                for (family, _iface), (sock, raw) in sockets.items():
                    handler = functools.partial(self._on_datagram, loop, family, raw)
                    reader = DatagramReader(sock, RECV_BYTES, handler, on_failure=run.fail)
                    readers.enter_context(reader)
                self._fire()
                await run.finished
        finally:
            if self._run is not None and self._run.timer is not None:
                self._run.timer.cancel()
            self._run = None
            for sock, _raw in sockets.values():
                sock.close()

    def ride(self, now_s: float, next_s: float) -> None:
        """Another wake-up of the loop at `now_s` (the agent's heartbeat tick), whose next
        one is due at `next_s`: take the round now if this is the offer nearest its due
        time, so the two share one pass of the loop.

        At native timings the pinger and the ticker both run every 200 ms; apart, each
        round cost a wake-up of its own. A round may come up to RIDE_EARLY of an interval
        early, or RIDE_LATE late while offers come (`_arm`). Rounds thus fall in with the
        ticks when the two intervals match, and keep their own interval, at the tick
        nearest it, when ticks come more often.
        """
        run = self._run
        if run is None or run.timer is None or run.finished.done():
            return
        run.next_offer_s = next_s
        early_s = run.due_s - now_s
        if early_s > RIDE_EARLY * self.interval_s or (
            early_s > 0
            and next_s - run.due_s < early_s
            and self._offer_within(run, RIDE_LATE * self.interval_s)
        ):
            # Too early, or the next offer comes nearer the due time, and in time: wait.
            self._arm(run)
            return
        run.timer.cancel()
        self._fire()

    def _arm(self, run: _Run) -> None:
        """The own timer: at the due time, or RIDE_LATE past it while an offer comes before
        the round after this one would be due. Each late round moves the rounds' phase
        towards the offers', so within a few rounds one falls in the window."""
        soon = self._offer_within(run, self.interval_s)
        wait_s = RIDE_LATE * self.interval_s if soon else 0.0
        when_s = run.due_s + wait_s
        if run.timer is not None:
            if run.timer.when() == when_s:
                return
            run.timer.cancel()
        run.timer = run.loop.call_at(when_s, self._fire)

    def _offer_within(self, run: _Run, late_s: float) -> bool:
        """Is the next offer expected from RIDE_EARLY before the due time to `late_s` after?"""
        return run.due_s - RIDE_EARLY * self.interval_s <= run.next_offer_s <= run.due_s + late_s

    def _fire(self) -> None:
        """One round: expire the last one's unanswered echoes, send the next, re-arm."""
        run = self._run
        assert run is not None
        run.timer = None
        try:
            now_s = run.loop.time()
            if run.rounds:
                self._expire(now_s)
            if (run.max_rounds is not None and run.rounds >= run.max_rounds) or now_s >= run.end_s:
                run.finished.set_result(None)
                return
            self._round(run.sockets, now_s)
        except Exception as exc:
            run.fail(exc)
            return
        run.rounds += 1
        run.due_s = now_s + self.interval_s
        self._arm(run)

    async def _open_sockets(self) -> dict[tuple[int, str | None], tuple[socket.socket, bool]]:
        wanted = {(_family(a), self._interface[a]) for a in self.addresses}
        opened: dict[tuple[int, str | None], tuple[socket.socket, bool]] = {}
        try:
            for family, iface in sorted(wanted, key=lambda k: (k[0], k[1] or "")):
                opened[(family, iface)] = await within(
                    asyncio.to_thread(open_icmp_socket, family, interface=iface, netns=self._netns),
                    SOCKET_OPEN_TIMEOUT_S,
                )
        except BaseException:
            for sock, _raw in opened.values():
                sock.close()
            raise
        return opened

    def _round(
        self,
        sockets: dict[tuple[int, str | None], tuple[socket.socket, bool]],
        now_s: float,
    ) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        horizon_s = now_s - self.deadping_s - self.interval_s
        for key in [k for k, sent_s in self._pending.items() if sent_s < horizon_s]:
            del self._pending[key]
        for address in self.addresses:
            family = _family(address)
            sock, _raw = sockets[(family, self._interface[address])]
            packet = build_echo(family, self._identifier, self._seq)
            try:
                sock.sendto(packet, (str(address), 0))
            except BlockingIOError:
                continue  # queue full: this round counts as unanswered
            except OSError as exc:
                # Unreachable network, link down, or an OUTPUT drop: no reply will come.
                if exc.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EPERM):
                    log.debug("icmp send failed address=%s error=%s", address, exc)
                continue
            self._pending[(address, self._seq)] = now_s

    def _on_datagram(
        self,
        loop: asyncio.AbstractEventLoop,
        family: int,
        raw: bool,
        data: bytes,
        peer: tuple[str, int],
    ) -> None:
        now_s = loop.time()
        parsed = parse_reply(family, data, has_ip_header=raw)
        if parsed is None:
            return
        identifier, seq = parsed
        if raw and identifier != self._identifier:
            return  # another pinger's reply (ping sockets filter by id in the kernel)
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(peer[0].split("%")[0])
            sent_s = self._pending.pop((address, seq), None)
            if sent_s is not None:
                self._on_reply(address, now_s, now_s - sent_s)

    def _on_reply(self, address: IPAddress, now_s: float, rtt_s: float) -> None:
        assert self._tracker is not None
        self._tracker.reply(address, now_s)
        self._sink(PingReport(address, True, rtt_s, now_s))
        self._update_groups(now_s)

    def _expire(self, now_s: float) -> None:
        """Lost: silent for `deadping_s`, judged at the round nearest that deadline.

        Rounds that ride the ticks fall on the heartbeat's exact grid, and a reply comes a
        round trip after its echo: judged at this round's own time, an address silent
        since the round `deadping_s` ago would be short by that round trip (and the ticks'
        jitter) about half the time, and wait a whole round more (+200 ms on a lost ping
        node at native timings). EXPIRE_SLACK of an interval absorbs both.
        """
        assert self._tracker is not None
        for address in self._tracker.tick(now_s + EXPIRE_SLACK * self.interval_s):
            self._sink(PingReport(address, False, None, now_s))
        self._update_groups(now_s)

    def _update_groups(self, now_s: float) -> None:
        assert self._tracker is not None
        for group in self.groups:
            state = self._tracker.group_reachable(group.addresses)
            if state is not None and state != self._group_state[group.name]:
                self._group_state[group.name] = state
                self._sink(GroupReport(group.name, state, now_s))


def _family(address: IPAddress) -> int:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET
